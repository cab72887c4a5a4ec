"""Encoders: the `Encoder` protocol, its backends, and loading by name."""

from __future__ import annotations

from typing import Any

from embedops.errors import ModelError
from embedops.models.base import BaseEncoder, Encoder, EncodeStats, plan_batches
from embedops.models.loading import DEFAULT_MODEL, ModelSource, bundled_default_path, resolve_model

BACKENDS = ("torch", "onnx")

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "BaseEncoder",
    "EncodeStats",
    "Encoder",
    "ModelSource",
    "bundled_default_path",
    "load_encoder",
    "plan_batches",
    "resolve_model",
]


def load_encoder(model: str | None = None, *, backend: str = "torch", **options: Any) -> BaseEncoder:
    """Load an encoder by model name/path and backend name ('torch' or 'onnx')."""
    if backend == "torch":
        from embedops.models.torch_backend import TorchEncoder

        return TorchEncoder(model, **options)
    if backend == "onnx":
        try:
            from embedops.models.onnx_backend import OnnxEncoder
        except ImportError as exc:
            raise ModelError("the onnx backend is not available", hint="pip install 'embedops[onnx]'") from exc
        return OnnxEncoder(model, **options)
    raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
