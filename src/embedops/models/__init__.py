"""Encoders: the `Encoder` protocol's backends, loading by name or by recorded spec, and the model worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedops.errors import ModelError
from embedops.models.base import BaseEncoder, Encoder, EncodeStats, Usage, plan_batches
from embedops.models.calibration import calibrate_output, default_calibration_texts
from embedops.models.identity import weights_hash
from embedops.models.image_base import warmup_inputs
from embedops.models.image_loading import DEFAULT_IMAGE_MODEL, is_image_model, load_image_encoder
from embedops.models.loading import DEFAULT_MODEL, ModelSource, Resolver, bundled_default_path, resolve_model
from embedops.models.worker import ModelWorker, RequestCancelled, cancel_when

BACKENDS = ("torch", "onnx", "openvino")

__all__ = [
    "BACKENDS",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_MODEL",
    "BaseEncoder",
    "EncodeStats",
    "Encoder",
    "ModelSource",
    "ModelWorker",
    "RequestCancelled",
    "Resolver",
    "Usage",
    "bundled_default_path",
    "calibrate_output",
    "cancel_when",
    "default_calibration_texts",
    "encoder_from_spec",
    "is_image_model",
    "load_encoder",
    "load_image_encoder",
    "load_worker",
    "plan_batches",
    "resolve_model",
    "warmup_inputs",
    "weights_hash",
]


def load_encoder(model: str | ModelSource | None = None, *, backend: str = "torch", resolver: Resolver | None = None,
                 **options: Any) -> BaseEncoder:
    """Load an encoder by model name/path and backend name ('torch', 'onnx' or 'openvino').

    `resolver` maps registry names (`champion`, `tuned@v2`) to folders; a Project passes one built from its registry.
    """
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if is_image_model(model, resolver):  # efficientnet-lite0, timm:..., CLIP folders ... (image_loading.py)
        if backend != "torch":
            raise ModelError(f"image models run on the torch backend, not {backend}", where="backend")
        return load_image_encoder(model, resolver=resolver, **options)
    source = resolve_model(model, resolver=resolver)
    if backend == "torch":
        from embedops.models.torch_backend import TorchEncoder

        return TorchEncoder(source, **options)
    if backend == "openvino":  # a missing openvino raises MissingDependencyError naming the extra
        from embedops.models.openvino_backend import OpenVinoEncoder

        return OpenVinoEncoder(source, **options)
    try:
        from embedops.models.onnx_backend import OnnxEncoder
    except ImportError as exc:
        raise ModelError("the onnx backend is not available", hint="pip install 'embedops[onnx]'") from exc
    return OnnxEncoder(source, **options)


def load_worker(model: str | ModelSource | None = None, *, backend: str = "torch", resolver: Resolver | None = None,
                max_batch_tokens: int | None = None, max_batch_size: int | None = None,
                max_wait_ms: float | None = None, **options: Any) -> ModelWorker:
    """Load an encoder and start a `ModelWorker` that owns it (batching concurrent callers)."""
    worker_opts = {k: v for k, v in (("max_batch_tokens", max_batch_tokens), ("max_batch_size", max_batch_size),
                                     ("max_wait_ms", max_wait_ms)) if v is not None}
    return ModelWorker(load_encoder(model, backend=backend, resolver=resolver, **options), **worker_opts)


def encoder_from_spec(spec: dict[str, Any], *, resolver: Resolver | None = None, **options: Any) -> BaseEncoder:
    """Load the encoder a recorded `spec()` describes, refusing one whose weights (or vector space) changed.

    `options` adds run-time settings that are not identity (threads, device, provider).
    """
    for key in ("location", "backend"):
        if not spec.get(key):
            raise ModelError(f"the encoder spec has no {key!r}: cannot load it", hint="record encoder.spec()")
    location = spec["location"]
    if spec.get("registry_ref") and not Path(location).exists() and resolver is not None:
        location = spec["registry_ref"]  # the version folder moved: find it by its registry name
    opts: dict[str, Any] = {"truncate_dim": spec.get("truncate_dim"), "max_tokens": spec.get("max_tokens")}
    if spec["backend"] in ("onnx", "openvino"):
        opts["quantization"] = spec.get("quantization") or "none"
    elif (spec.get("quantization") or "none") != "none":
        raise ModelError(f"spec asks for quantization {spec['quantization']!r} with the {spec['backend']} backend")
    opts.update(options)
    encoder = load_encoder(location, backend=spec["backend"], resolver=resolver, **opts)
    recorded = spec.get("weights_hash")
    if recorded and recorded != encoder.weights_hash:
        raise ModelError(f"the weights of {spec.get('name') or location!r} changed: recorded weights hash {recorded}, "
                         f"found {encoder.weights_hash} at {location}",
                         hint="load the model the spec was recorded with, or rebuild what was built with it")
    if spec.get("output_ranges") is not None:
        encoder.set_output_ranges(spec["output_ranges"])
    if spec.get("fingerprint") and spec["fingerprint"] != encoder.fingerprint:
        raise ModelError(f"{spec.get('name') or location!r} loads with fingerprint {encoder.fingerprint}, but the spec "
                         f"records {spec['fingerprint']} (same weights; the int8 file, prompts or options differ)",
                         hint="quantise again with the same recipe, or rebuild what was built with it")
    return encoder
