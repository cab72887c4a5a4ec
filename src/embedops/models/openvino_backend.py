"""The openvino backend: our cached ONNX export converted to OpenVINO IR and run by the OpenVINO Runtime on the CPU.

The IR is cached beside the ONNX export, in `cache_root()/openvino/<export fingerprint>/{fp32,int8}/`, keyed by the
same content fingerprint and never written into the model folder. fp32 IR records the hash of the ONNX file and the
OpenVINO version it was converted with (either changing converts again, ~1 s); an int8 IR exists only once
`quantize_openvino` accepted it through the quality gate, and its hash is part of the encoder's fingerprint.

Compiled with the LATENCY hint (one stream over all cores: a batch encode is one request at a time; THROUGHPUT splits
the cores into streams and ran a synchronous batch loop at ~0.55x) and an explicit f32 inference precision: on CPUs
with AMX the default is bf16, which changes the vectors (cosine ~0.9999) and so is not the fp32 model.

Thread safety: an OpenVINO infer request serves one call at a time, so each calling thread gets its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from embedops._io import atomic_dir, atomic_write_json, cache_root
from embedops._optional import require
from embedops.errors import ModelError
from embedops.models.base import physical_cores
from embedops.models.export import FP32_FILE, ExportedModel, ensure_export
from embedops.models.exported_base import ExportedTextEncoder
from embedops.models.identity import cached_file_sha256
from embedops.models.loading import ModelSource, resolve_model

log = logging.getLogger(__name__)

IR_XML, IR_BIN, INFO = "model.xml", "model.bin", "info.json"
HINTS = ("LATENCY", "THROUGHPUT")


def openvino():
    """The openvino module, or a MissingDependencyError naming the extra."""
    return require("openvino", "openvino")


def ir_root(exported: ExportedModel) -> Path:
    """`cache_root()/openvino/<export fingerprint>`: the IR of one export, outside every model folder."""
    return cache_root() / "openvino" / exported.fingerprint


def ir_hash(folder: Path) -> str:
    """Combined sha256 of an IR's graph and weights files."""
    return hashlib.sha256(f"{cached_file_sha256(folder / IR_XML)}:{cached_file_sha256(folder / IR_BIN)}".encode()
                          ).hexdigest()


def read_ir_info(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """The info of an intact IR folder; else (None, the reason)."""
    try:
        info = json.loads((folder / INFO).read_text())
    except FileNotFoundError:
        return None, "no IR yet"
    except (OSError, ValueError) as exc:
        return None, f"unreadable {INFO} ({exc})"
    if not (folder / IR_XML).is_file() or not (folder / IR_BIN).is_file():
        return None, "IR files are missing"
    if info.get("ir_hash") != ir_hash(folder):
        return None, "the IR does not match its recorded hash (damaged or not accepted by the gate)"
    return info, "ok"


def write_ir(ov_model: Any, folder: Path, info: dict[str, Any]) -> None:
    """Save an IR (full fp32 weights: no fp16 compression) with its info, into place atomically."""
    ov = openvino()
    with atomic_dir(folder) as tmp:
        ov.save_model(ov_model, str(tmp / IR_XML), compress_to_fp16=False)
        atomic_write_json(tmp / INFO, {**info, "ir_hash": ir_hash(tmp), "openvino": ov.__version__})


def ensure_fp32_ir(exported: ExportedModel, *, force: bool = False) -> Path:
    """The fp32 IR of this export (converted with `openvino.convert_model` when missing, stale or damaged)."""
    ov = openvino()
    folder = ir_root(exported) / "fp32"
    onnx_hash = exported.manifest.get("files", {}).get(FP32_FILE)
    if not force:
        info, reason = read_ir_info(folder)
        if info is not None and info.get("onnx_sha256") == onnx_hash and info.get("openvino") == ov.__version__:
            return folder / IR_XML
        if info is not None:
            reason = "the ONNX export or the OpenVINO version changed"
        if reason != "no IR yet":
            log.warning("converting %s to OpenVINO IR again: %s", exported.folder, reason)
    write_ir(ov.convert_model(str(exported.fp32_path)), folder, {"onnx_sha256": onnx_hash})
    return folder / IR_XML


def int8_ir_status(exported: ExportedModel) -> tuple[dict[str, Any] | None, str]:
    """The info of the accepted, intact int8 IR of this export; else (None, why not)."""
    info, reason = read_ir_info(ir_root(exported) / "int8")
    if info is None:
        return None, "no int8 OpenVINO model yet" if reason == "no IR yet" else reason
    return info, "ok"


def compile_ir(path: str | Path, *, threads: int, hint: str = "LATENCY") -> Any:
    """Compile an IR for the CPU: fp32 arithmetic where not int8, `threads` threads, one stream under LATENCY."""
    ov = openvino()
    if hint not in HINTS:
        raise ModelError(f"unknown performance hint {hint!r}; choose one of {', '.join(HINTS)}")
    config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "f32"}
    return ov.Core().compile_model(str(path), "CPU", config)


class OpenVinoEncoder(ExportedTextEncoder):
    """OpenVINO Runtime encoder, fp32 or NNCF static int8, with the same outputs as the sentence-transformers model."""

    backend = "openvino"
    batch_overhead_tokens = 12  # measured like the onnx backend's: a call costs about as much as a dozen tokens

    def __init__(
        self,
        model: str | ModelSource | None = None,
        *,
        quantization: str = "none",
        threads: int | None = None,
        hint: str = "LATENCY",
        truncate_dim: int | None = None,
        max_tokens: int | None = None,
    ):
        super().__init__()
        openvino()
        tokenizers = require("tokenizers", "openvino")
        if quantization not in ("none", "int8"):
            raise ModelError(f"unknown quantization {quantization!r}; choose 'none' or 'int8'")
        self.source = resolve_model(model)
        spec = model.location if isinstance(model, ModelSource) else model
        self._quantize_hint = ("run: embedops quantize --backend openvino --sts <STS file>"
                               + (f" --model {spec}" if spec else ""))
        self.name = self.source.name
        self.quantization = quantization
        self.hint = hint
        self.threads = threads or physical_cores()
        self.init_from_export(ensure_export(self.source), max_tokens=max_tokens, truncate_dim=truncate_dim)
        self._int8_info: dict[str, Any] | None = None
        self.ir_path = self._open()
        self.load_tokenizer(tokenizers)

    def _open(self) -> Path:
        """Compile the IR; a damaged fp32 IR is converted again, a missing or bad int8 IR is a clear error."""
        if self.quantization == "int8":
            info, reason = int8_ir_status(self.exported)
            if info is None:
                raise ModelError(f"no usable int8 OpenVINO model for {self.name!r}: {reason}", hint=self._quantize_hint)
            self._int8_info = info
            path = ir_root(self.exported) / "int8" / IR_XML
            try:
                self.use_ir(path)
            except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for unreadable IR
                raise ModelError(f"cannot load the int8 OpenVINO model {path}: {exc}",
                                 hint=self._quantize_hint) from exc
            return path
        path = ensure_fp32_ir(self.exported)
        try:
            self.use_ir(path)
        except Exception as exc:  # noqa: BLE001 - a file that hashes right but does not load: convert again
            log.warning("cached OpenVINO IR %s failed to load (%s); converting again", path, exc)
            path = ensure_fp32_ir(self.exported, force=True)
            self.use_ir(path)
        return path

    def use_ir(self, path: str | Path) -> None:
        """Compile and run the IR at `path` from now on (the quality gate uses it to try a candidate)."""
        self.compiled = compile_ir(path, threads=self.threads, hint=self.hint)
        self._local = threading.local()  # requests belong to one compiled model: start afresh

    def int8_hash(self) -> str:
        """Hash of the accepted int8 IR ('' for fp32)."""
        return str(self._int8_info.get("ir_hash") or "") if self._int8_info else ""

    def infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Run this thread's infer request on one padded feed (the result is copied out of its reused buffer)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return np.array(request.infer(feed, share_inputs=True)[0], dtype=np.float32, copy=True)

    def describe(self) -> dict[str, Any]:
        """What this encoder is, for manifests and reports."""
        info = super().describe()
        info.update({"quantization": self.quantization, "hint": self.hint, "threads": self.threads,
                     "ir": str(self.ir_path), "openvino": openvino().__version__})
        if self._int8_info:
            info["int8"] = self._int8_info.get("gate")
        return info
