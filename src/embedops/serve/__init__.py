"""The HTTP server: an OpenAI-compatible embeddings API and a collections API over `Project` (`embedops serve`).

Needs the `serve` extra: `pip install 'embedops[serve]'`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeSettings", "ServingConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import embedops.serve` works without fastapi and the error names the extra.
    if name in __all__:
        try:
            if name == "create_app":
                from embedops.serve.app import create_app

                return create_app
            from embedops.serve import settings
        except ImportError as exc:
            from embedops.errors import MissingDependencyError

            raise MissingDependencyError(f"the server needs {exc.name}", hint="pip install 'embedops[serve]'") \
                from exc
        return getattr(settings, name)
    raise AttributeError(name)
