"""Optional imports that name the pip extra to install when missing (infinity's pattern)."""

from __future__ import annotations

import importlib
from types import ModuleType

from embedops.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import `module` or raise an error naming `pip install embedops[extra]`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed", hint=f"pip install 'embedops[{extra}]'"
        ) from exc
