"""The onnx backend: the exported module chain run by ONNX Runtime, tokenised once by the Rust `tokenizers` API.

No torch at encode time: texts are tokenised in one Rust batch call (without special tokens), batches are planned on
those lengths, and each batch is truncated, given its special tokens and padded only to its own longest text.

Thread safety: the Rust tokenizer's padding and truncation are switched off once at load and never touched again
(we pad and truncate ourselves), and an ONNX Runtime session may run from several threads at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.errors import ModelError
from embedops.models.base import BaseEncoder, physical_cores
from embedops.models.export import INT8_FILE, ExportedModel, ensure_export, int8_status
from embedops.models.loading import ModelSource, resolve_model
from embedops.models.tokenizer import TokenizerAdapter

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


class OnnxEncoder(BaseEncoder):
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
        self.exported: ExportedModel = ensure_export(self.source)
        manifest = self.exported.manifest
        self.dimension = int(manifest["dimension"])
        self.max_tokens = int(max_tokens or manifest["max_tokens"])
        self.truncate_dim = truncate_dim
        self.input_names = list(manifest["inputs"])
        self.pad_id = int(manifest.get("pad_token_id", 0))
        self.lower_case = bool(manifest.get("do_lower_case", False))
        self._prompts = dict(manifest.get("prompts", {}))
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
        self.rust_tokenizer = tokenizers.Tokenizer.from_file(str(self.exported.tokenizer_path))
        # A saved tokenizer.json may carry fixed padding/truncation (the bundled one pads to 128): we do both ourselves.
        self.rust_tokenizer.no_padding()
        self.rust_tokenizer.no_truncation()
        self.n_special = int(self.rust_tokenizer.num_special_tokens_to_add(False))
        # Chunking and token counting call `encoder.tokenizer(...)` as they would a Hugging Face fast tokenizer.
        self.tokenizer = TokenizerAdapter(self.rust_tokenizer)
        return session

    @property
    def prompts(self) -> dict[str, str]:
        """The prompts the model defines (e.g. {'query': 'query: '})."""
        return dict(self._prompts)

    def int8_hash(self) -> str:
        """sha256 of the accepted int8 file ('' for fp32)."""
        if self.quantization != "int8":
            return ""
        return str(self.exported.manifest.get("files", {}).get(INT8_FILE) or "")

    def _tokenize(self, texts: list[str]):
        if self.lower_case:  # sentence-transformers lowercases before the tokenizer when the config says so
            texts = [t.lower() for t in texts]
        return self.rust_tokenizer.encode_batch(texts, add_special_tokens=False)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Untruncated token count per text (special tokens included)."""
        return self.tokenize_all(texts)[0]

    def tokenize_all(self, texts: list[str]) -> tuple[np.ndarray, Any]:
        """Tokenise every text once; lengths for planning, encodings reused by each batch."""
        encs = self._tokenize(texts)
        lengths = np.fromiter((len(e.ids) + self.n_special for e in encs), dtype=np.int64, count=len(texts))
        return lengths, encs

    def run_batch(self, texts: list[str], indices: np.ndarray, prepared: Any) -> np.ndarray:
        """Truncate, add special tokens, pad to the batch's longest and run the graph."""
        encs = [prepared[i] for i in indices]
        return self._run(encs)

    def encode_core(self, texts: list[str]) -> np.ndarray:
        """Embed one batch of texts (tokenising them here)."""
        return self._run(self._tokenize(texts))

    def _run(self, encs: list) -> np.ndarray:
        return self.session.run(None, self.feed(encs))[0].astype(np.float32, copy=False)

    def feed(self, encs: list) -> dict[str, np.ndarray]:
        """Graph inputs for a batch of encodings: truncated, special tokens added, padded to the batch's longest."""
        keep = self.max_tokens - self.n_special
        post = self.rust_tokenizer.post_process
        full = []
        for e in encs:
            if len(e.ids) > keep:
                e.truncate(keep)  # in place; the special tokens are added after, as transformers does
            full.append(post(e))
        width = max(len(e.ids) for e in full)
        ids = np.full((len(full), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(full), width), dtype=np.int64)
        types = np.zeros((len(full), width), dtype=np.int64) if "token_type_ids" in self.input_names else None
        for row, e in enumerate(full):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            if types is not None:
                types[row, :n] = e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            feed["token_type_ids"] = types
        return feed

    def describe(self) -> dict[str, Any]:
        """What this encoder is, for manifests and reports."""
        info = super().describe()
        info.update({"quantization": self.quantization, "provider": self.provider, "threads": self.threads,
                     "export": str(self.exported.folder)})
        if self.quantization == "int8":
            info["int8"] = self.exported.manifest.get("int8")
        return info
