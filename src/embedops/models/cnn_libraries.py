"""Other pretrained image backbones by name, through timm and torchvision, when their weights are already present.

    timm:resnet50.a1_in1k          timm.create_model(..., pretrained=True, num_classes=0): pooled features
    torchvision:resnet50           torchvision.models.get_model(..., weights="DEFAULT"), classifier replaced by identity

Both need torchvision, which is not in the default install (on a CPU-only machine its wheel comes with a large CUDA
torch), so they are the `vision` extra and imported lazily: a missing one is a MissingDependencyError naming it.
Nothing is downloaded at run time: timm reads the Hugging Face cache (HF_HUB_OFFLINE is honoured), torchvision the
torch hub cache (`torch.hub.get_dir()/checkpoints`); weights that are not there are a ModelError saying where they
were looked for. The input recipe is each library's own for the weights (timm's resolved data config; torchvision's
weights' transforms), run by our Pillow pipeline so EXIF, alpha, 16-bit and size limits are handled the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from embedops._optional import require
from embedops.data.images import DEFAULT_MAX_PIXELS, Preprocess
from embedops.errors import ModelError
from embedops.models.identity import cached_file_sha256
from embedops.models.image_base import ImageEncoder, state_dict_hash

VISION_EXTRA = "vision"


def _interp(value: Any, default: str = "bicubic") -> str:
    text = str(getattr(value, "value", value) or default).lower()
    return text if text in ("bicubic", "bilinear", "lanczos", "nearest") else default


class TimmEncoder(ImageEncoder):
    """A timm model without its classifier (num_classes=0): its pooled features are the embedding."""

    library = "timm"

    def __init__(self, name: str, *, device: str = "cpu", truncate_dim: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, **_: Any):
        model_name = name.split(":", 1)[1] if name.startswith("timm:") else name
        timm = require("timm", VISION_EXTRA)
        try:
            model = timm.create_model(model_name, pretrained=True, num_classes=0)
        except Exception as exc:  # noqa: BLE001 - unknown name, weights not cached offline, hub errors
            raise ModelError(f"cannot load timm model {model_name!r} with pretrained weights: {exc}",
                             hint="the weights must be in the local Hugging Face cache (nothing is downloaded "
                                  "when HF_HUB_OFFLINE=1)") from exc
        cfg = timm.data.resolve_model_data_config(model)
        size = int(cfg["input_size"][-1])
        crop_pct = float(cfg.get("crop_pct") or 0.875)
        preprocess = Preprocess(size=size, resize=max(size, int(round(size / crop_pct))), mean=tuple(cfg["mean"]),
                                std=tuple(cfg["std"]), resample=_interp(cfg.get("interpolation")))
        super().__init__(name=f"timm:{model_name}", location=f"timm:{model_name}", architecture=model_name,
                         preprocess=preprocess, device=device, truncate_dim=truncate_dim, max_pixels=max_pixels)
        self.model = model.eval().to(device)
        self.dimension = int(model.num_features)
        self._weights_id = state_dict_hash(model.state_dict())
        self.check_truncate_dim()

    def weights_identity(self) -> str:
        """Hash of the loaded state dict (timm may read safetensors or a .bin from the hub cache)."""
        return self._weights_id

    def forward_images(self, pixels: Any) -> Any:
        """Pooled features (the model has no classifier)."""
        return self.model(pixels)


class TorchvisionEncoder(ImageEncoder):
    """A torchvision classification model with its last linear layer replaced by identity (pooled features)."""

    library = "torchvision"

    def __init__(self, name: str, *, device: str = "cpu", truncate_dim: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, **_: Any):
        model_name = name.split(":", 1)[1] if name.startswith("torchvision:") else name
        tv_models = require("torchvision.models", VISION_EXTRA)
        import torch

        try:
            weights = tv_models.get_model_weights(model_name).DEFAULT
        except Exception as exc:  # noqa: BLE001 - unknown model name
            raise ModelError(f"unknown torchvision model {model_name!r}: {exc}") from exc
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        if not cached.is_file():
            raise ModelError(f"the weights of torchvision:{model_name} ({weights}) are not in the torch hub cache",
                             where=str(cached), hint="nothing is downloaded at run time: put the file there first")
        model = tv_models.get_model(model_name, weights=weights)
        head = _replace_last_linear(model, torch.nn)
        t = weights.transforms()
        preprocess = Preprocess(size=int(t.crop_size[0]), resize=int(t.resize_size[0]), mean=tuple(t.mean),
                                std=tuple(t.std), resample=_interp(t.interpolation))
        super().__init__(name=f"torchvision:{model_name}", location=f"torchvision:{model_name}",
                         architecture=f"{model_name} ({weights})", preprocess=preprocess, device=device,
                         truncate_dim=truncate_dim, max_pixels=max_pixels)
        self.model = model.eval().to(device)
        self.dimension = int(head.in_features)
        self.weights_file = cached
        self.check_truncate_dim()

    def weights_identity(self) -> str:
        """sha256 of the cached checkpoint file."""
        return cached_file_sha256(self.weights_file)

    def forward_images(self, pixels: Any) -> Any:
        """Pooled features (the classifier's input)."""
        return self.model(pixels).flatten(1)


def _replace_last_linear(model: Any, nn: Any) -> Any:
    """Swap the model's last nn.Linear (its classifier) for identity; returns the replaced layer."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ModelError("the torchvision model has no linear classifier to remove")
    parent = model
    *path, leaf = last[0].split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, nn.Identity())
    return last[1]
