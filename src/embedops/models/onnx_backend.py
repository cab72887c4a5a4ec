"""The onnx backend: the exported module chain run by ONNX Runtime, tokenised once by the Rust `tokenizers` API.

No torch at encode time: tokenising, batch planning and padding are `ExportedTextEncoder`'s (shared with the openvino
backend). Thread safety: an ONNX Runtime session may run from several threads at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.errors import ModelError
from embedops.models.base import physical_cores
from embedops.models.export import INT8_FILE, ensure_export, int8_status
from embedops.models.exported_base import ExportedTextEncoder
from embedops.models.loading import ModelSource, resolve_model

log = logging.getLogger(__name__)

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def make_session(path: str, *, threads: int | None = None, provider: str = "cpu"):
    """An InferenceSession with explicit threads, full graph optimisation and sequential execution."""
    ort = require("onnxruntime", "onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or physical_cores()
    opts.inter_op_num_threads = 1  # one encoder graph is a chain: parallel branches buy nothing
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    name = _PROVIDERS.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if name not in available:
        raise ModelError(f"ONNX Runtime provider {name!r} is not available here (have: {', '.join(available)})",
                         hint="install onnxruntime-gpu for CUDA" if name != "CPUExecutionProvider" else None)
    providers = [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    return ort.InferenceSession(path, opts, providers=providers)


class OnnxEncoder(ExportedTextEncoder):
    """ONNX Runtime encoder, fp32 or int8, with the same outputs as the sentence-transformers model."""

    backend = "onnx"
    batch_overhead_tokens = 12  # ONNX Runtime on a CPU: ~1.4 ms per call beyond the tokens, ~0.1 ms per token

    def __init__(
        self,
        model: str | ModelSource | None = None,
        *,
        quantization: str = "none",
        threads: int | None = None,
        provider: str = "cpu",
        truncate_dim: int | None = None,
        max_tokens: int | None = None,
    ):
        super().__init__()
        require("onnxruntime", "onnx")
        tokenizers = require("tokenizers", "onnx")
        if quantization not in ("none", "int8"):
            raise ModelError(f"unknown quantization {quantization!r}; choose 'none' or 'int8'")
        self.source = resolve_model(model)
        spec = model.location if isinstance(model, ModelSource) else model
        self._quantize_hint = "run: embedops quantize --sts <STS file>" + (f" --model {spec}" if spec else "")
        self.name = self.source.name
        self.quantization = quantization
        self.provider = provider
        self.threads = threads or physical_cores()
        self.init_from_export(ensure_export(self.source), max_tokens=max_tokens, truncate_dim=truncate_dim)
        self.session = self._open_session(tokenizers)
        self.fingerprint_extra = f"onnx:{quantization}:{self.exported.fingerprint}:{self.int8_hash()}"

    def _open_session(self, tokenizers) -> Any:
        """Open the session; a file that fails to load is treated as damaged and exported again (fp32)."""
        if self.quantization == "int8":
            ok, reason = int8_status(self.exported)
            if not ok:
                raise ModelError(f"no usable int8 model for {self.name!r}: {reason}",
                                 hint=self._quantize_hint)
            path = self.exported.int8_path
        else:
            path = self.exported.fp32_path
        try:
            session = make_session(str(path), threads=self.threads, provider=self.provider)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad files
            if self.quantization == "int8":
                raise ModelError(f"cannot load the int8 model {path}: {exc}",
                                 hint=self._quantize_hint) from exc
            log.warning("cached ONNX export %s failed to load (%s); exporting again", path, exc)
            self.exported = ensure_export(self.source, force=True)
            session = make_session(str(self.exported.fp32_path), threads=self.threads, provider=self.provider)
        self.load_tokenizer(tokenizers)
        return session

    def int8_hash(self) -> str:
        """sha256 of the accepted int8 file ('' for fp32)."""
        if self.quantization != "int8":
            return ""
        return str(self.exported.manifest.get("files", {}).get(INT8_FILE) or "")

    def infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Run the session on one padded feed."""
        return self.session.run(None, feed)[0].astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        """What this encoder is, for manifests and reports."""
        info = super().describe()
        info.update({"quantization": self.quantization, "provider": self.provider, "threads": self.threads,
                     "export": str(self.exported.folder)})
        if self.quantization == "int8":
            info["int8"] = self.exported.manifest.get("int8")
        return info
