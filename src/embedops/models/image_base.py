"""The shared part of every image encoder: inputs read safely, preprocessed on the caller's thread, batched forward.

An image encoder is a `BaseEncoder` whose inputs are images (a `pathlib.Path`, bytes, a PIL image or a
`data:image/...;base64` URL) and, for CLIP-style models, also texts (a plain `str` is always text, never a path), so
it fits the same `Encoder` protocol, `ModelWorker` and collections as the text encoders:

- `prepare` (caller's thread) reads and preprocesses each image into its model input array (see
  `embedops.data.images`), and tokenises texts; a bad input is an `InputError` naming its index, before anything
  is queued. Images count as 0 tokens, so the worker's batch planner cuts batches by count only.
- `run_batch` (model thread) stacks the arrays of a batch and runs the image tower (texts: the text tower).
- identity: the weights hash, architecture and input recipe (size, mean/std) decide the vectors, so the fingerprint
  hashes all of them; `spec()` records them so a collection reopens with the same encoder.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from embedops.data.images import DEFAULT_MAX_PIXELS, Preprocess, is_data_url, is_image_input
from embedops.errors import InputError, ModelError
from embedops.models.base import BaseEncoder, Prepared
from embedops.protocols import InputKind

IMAGE_PLACEHOLDER = "<image>"


def state_dict_hash(state: dict[str, Any]) -> str:
    """Content hash of a torch state dict (names, shapes, dtypes and bytes), for weights without one file."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        if not isinstance(t, torch.Tensor):
            continue
        arr = t.detach().cpu().contiguous()
        h.update(f"{key}\0{tuple(arr.shape)}\0{arr.dtype}\n".encode())
        h.update(arr.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ImageEncoder(BaseEncoder):
    """Base of the image backends; a subclass sets the model and implements `forward_images` (and texts for CLIP)."""

    modality = "image"
    backend = "torch"
    library = "image"
    reads_text = False
    max_tokens = 0
    batch_overhead_tokens = 0

    def __init__(self, *, name: str, location: str, architecture: str, preprocess: Preprocess,
                 device: str = "cpu", truncate_dim: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        super().__init__()
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device {device!r} requested but CUDA is not available")
        if max_pixels < 1:
            raise InputError("max_pixels must be >= 1", where="max_pixels")
        self._torch = torch
        self.name = name
        self.location = location
        self.architecture = architecture
        self.preprocess = preprocess
        self.device = device
        self.truncate_dim = truncate_dim
        self.max_pixels = int(max_pixels)
        self._model_lock = threading.Lock()  # one forward at a time (and no oversubscribed intra-op pool)

    def check_truncate_dim(self) -> None:
        """Refuse a truncate_dim beyond the model's dimension (call once `dimension` is known)."""
        if self.truncate_dim is not None and not 1 <= self.truncate_dim <= self.dimension:
            raise ModelError(f"truncate_dim {self.truncate_dim} is outside 1..{self.dimension} for {self.name!r}")

    # -- what a subclass provides ------------------------------------------------------------------------
    def forward_images(self, pixels: Any) -> Any:
        """Pooled embedding of a float tensor [n, 3, size, size] (already on the device); a tensor [n, dimension]."""
        raise NotImplementedError

    def forward_texts(self, ids: list[list[int]]) -> Any:
        """Text-tower embedding of token id lists (CLIP-style models only)."""
        raise InputError(f"{self.name} embeds images only, not text")

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
        """Untruncated token counts and the ids the model runs (cut at max_tokens); CLIP-style models only."""
        raise InputError(f"{self.name} embeds images only, not text")

    def weights_identity(self) -> str:
        """Content hash of the weights (a file hash, or a state-dict hash)."""
        raise NotImplementedError

    # -- the pipeline ------------------------------------------------------------------------------------
    def set_intra_op_threads(self, threads: int) -> None:
        """torch's intra-op pool is process-wide: set it once (a model worker calls this at start)."""
        if self._torch.get_num_threads() != threads:
            self._torch.set_num_threads(threads)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Token counts of texts (0 for an image-only model: it has no tokens)."""
        return self.tokenize(texts)[0] if self.reads_text else np.zeros(len(texts), dtype=np.int64)

    def prepare(self, inputs: Sequence[Any], kind: InputKind | None = None) -> Prepared:
        """Read and preprocess every image, tokenise every text; a bad input is an InputError naming its index."""
        if isinstance(inputs, str | bytes) or is_image_input(inputs):
            raise InputError("encode() takes a list of inputs, got a single one", hint="wrap it in a list")
        items = list(inputs)
        payload: list[Any] = [None] * len(items)
        labels: list[str] = [IMAGE_PLACEHOLDER] * len(items)
        lengths = np.zeros(len(items), dtype=np.int64)
        text_at: list[int] = []
        for i, item in enumerate(items):
            if isinstance(item, str) and not is_data_url(item):
                if not self.reads_text:
                    raise InputError(f"input {i} is text, but {self.name} embeds images only",
                                     hint="pass images (a pathlib.Path, bytes, a PIL image or a data:image/...;"
                                          "base64 URL); to search images by text, use a CLIP model")
                if not item.strip():
                    raise InputError(f"input {i} is empty or whitespace-only")
                text_at.append(i)
                labels[i] = item
            else:
                payload[i] = self.preprocess.load(item, max_pixels=self.max_pixels, where=f"input {i}")
        if text_at:
            counts, ids = self.tokenize([items[i] for i in text_at])
            for j, i in enumerate(text_at):
                payload[i] = ids[j]
                lengths[i] = counts[j]
        return Prepared(labels, lengths, payload, self.max_tokens)

    def run_batch(self, texts: list[str], indices: np.ndarray, prepared: Any) -> np.ndarray:
        """Embed the prepared inputs at `indices` (image arrays and/or token ids)."""
        if prepared is None:
            prepared = self.prepare(texts).items
        return self.encode_core([prepared[i] for i in indices])

    def encode_core(self, texts: list[Any]) -> np.ndarray:
        """Embed prepared inputs (image arrays [3, size, size] and token id lists), in their order."""
        rows = texts
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        images = [j for j, r in enumerate(rows) if isinstance(r, np.ndarray)]
        words = [j for j, r in enumerate(rows) if not isinstance(r, np.ndarray)]
        torch = self._torch
        with self._model_lock, torch.inference_mode():
            if images:
                pixels = torch.from_numpy(np.stack([rows[j] for j in images])).to(self.device)
                out[images] = self.forward_images(pixels).float().cpu().numpy()
            if words:
                out[words] = self.forward_texts([rows[j] for j in words]).float().cpu().numpy()
        return out

    # -- identity ----------------------------------------------------------------------------------------
    @cached_property
    def weights_hash(self) -> str:
        """Content hash of the weights (path- and mtime-independent)."""
        return self.weights_identity()

    @property
    def fingerprint(self) -> str:
        """Hash of what decides the vectors: weights, library, architecture, input recipe, truncate_dim."""
        parts = {"weights": self.weights_hash, "backend": self.backend, "library": self.library,
                 "architecture": self.architecture, "preprocess": self.preprocess.as_dict(),
                 "truncate_dim": self.truncate_dim, "max_tokens": int(self.max_tokens), "modality": self.modality}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def spec(self) -> dict[str, Any]:
        """JSON identity from which `embedops.models.encoder_from_spec` loads the same encoder again."""
        out: dict[str, Any] = {
            "name": self.name, "location": self.location, "backend": self.backend, "quantization": "none",
            "truncate_dim": self.truncate_dim, "max_tokens": self.max_tokens, "prompts": {},
            "dimension": self.dimension, "output_dimension": self.output_dimension, "modality": self.modality,
            "fingerprint": self.fingerprint, "weights_hash": self.weights_hash, "library": self.library,
            "architecture": self.architecture, "preprocess": self.preprocess.as_dict(),
            "reads_text": self.reads_text,
        }
        with self._ranges_lock:
            if self._ranges is not None:
                out["output_ranges"] = self._ranges.tolist()
        return out

    def describe(self) -> dict[str, Any]:
        """What this encoder is, for manifests and reports."""
        out = super().describe()
        out.update({"library": self.library, "architecture": self.architecture, "reads_text": self.reads_text})
        return out


def warmup_inputs(encoder: Any) -> list[Any]:
    """Inputs that run every tower of an encoder once: a text, or a small grey image (and a text for CLIP)."""
    if getattr(encoder, "modality", "text") != "image":
        return ["warm up the model worker"]
    from embedops.data.images import pil

    image = pil().new("RGB", (64, 64), (128, 128, 128))
    return [image, "warm up the model worker"] if getattr(encoder, "reads_text", False) else [image]
