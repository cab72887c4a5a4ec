"""Export a sentence-transformers model to ONNX once, cache it, and detect stale or damaged files.

Exports (and the int8 files made from them) live in `cache_root()/onnx/<fingerprint>`, keyed by the content of the
source model, never inside the model folder: writing there would change the folder, and with it the identity of a
registry version or of any collection built with it.

The exported graph is the model's whole module chain (Transformer, Pooling, Dense, Normalize ...), so pooling and
normalisation are the model's own, not a re-implementation. The tokenizer is saved as `tokenizer.json` with the
export, so the ONNX backend needs neither torch nor transformers at run time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops._io import atomic_dir, atomic_write_json, cache_root, file_sha256
from embedops.errors import ModelError
from embedops.models.identity import cached_file_sha256, source_weights_hash
from embedops.models.loading import ModelSource, resolve_model

log = logging.getLogger(__name__)

OPSET = 17
EXPORT_FORMAT = 2  # bump when the layout or the wrapper below changes: old caches then re-export
MANIFEST = "manifest.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"


@dataclass
class ExportedModel:
    """A checked ONNX export: its folder, the fp32 file and the manifest (tokenizer, dimension, prompts ...)."""

    folder: Path
    fingerprint: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def fp32_path(self) -> Path:
        """The float32 ONNX file."""
        return self.folder / FP32_FILE

    @property
    def int8_path(self) -> Path:
        """Where the int8 ONNX file lives once `embedops quantize` has accepted one."""
        return self.folder / INT8_FILE

    @property
    def tokenizer_path(self) -> Path:
        """The tokenizer saved with the export."""
        return self.folder / "tokenizer.json"


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def source_fingerprint(source: ModelSource) -> str:
    """Hash of the source model's content (weights, configs, tokenizer) + export settings + library versions."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": EXPORT_FORMAT, "opset": OPSET, "versions": _library_versions()},
                        sort_keys=True).encode())
    h.update(source_weights_hash(source).encode())
    return h.hexdigest()[:20]


def export_folder(source: ModelSource, fingerprint: str) -> Path:
    """`cache_root()/onnx/<fingerprint>`: shared by every copy of the same model, and never inside its folder."""
    return cache_root() / "onnx" / fingerprint


def verify_export(folder: Path, fingerprint: str) -> tuple[dict[str, Any] | None, str]:
    """The manifest if the export in `folder` is current and intact; else (None, the reason)."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return None, "no export yet"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable manifest ({exc})"
    if manifest.get("fingerprint") != fingerprint:
        return None, "the model or the libraries changed since the export"
    for name in (FP32_FILE, "tokenizer.json"):
        expected = manifest.get("files", {}).get(name)
        path = folder / name
        if not path.is_file():
            return None, f"{name} is missing"
        if expected != cached_file_sha256(path):
            return None, f"{name} does not match its recorded hash (damaged or edited)"
    return manifest, "ok"


def ensure_export(model: str | ModelSource | None = None, *, force: bool = False) -> ExportedModel:
    """Return a current, intact ONNX export of `model`, exporting (again) only when needed."""
    source = model if isinstance(model, ModelSource) else resolve_model(model)
    fingerprint = source_fingerprint(source)
    folder = export_folder(source, fingerprint)
    if not force:
        manifest, reason = verify_export(folder, fingerprint)
        if manifest is not None:
            return ExportedModel(folder, fingerprint, manifest)
        if reason != "no export yet":
            log.warning("re-exporting %s to ONNX: %s", source.name, reason)
    manifest = _export(source, folder, fingerprint)
    return ExportedModel(folder, fingerprint, manifest)


def _graph_class():
    import torch

    class SentenceEmbeddingGraph(torch.nn.Module):
        """The model's own modules; keyword inputs because transformers 5 reordered BertModel.forward."""

        def __init__(self, modules: list[torch.nn.Module], with_types: bool):
            super().__init__()
            self.chain = torch.nn.ModuleList(modules)
            self.with_types = with_types

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if self.with_types:
                features["token_type_ids"] = token_type_ids
            for module in self.chain:
                features = module(features)
            return features["sentence_embedding"]

    return SentenceEmbeddingGraph


def _use_eager_attention(st_model) -> None:
    """Trace plain (eager) attention rather than SDPA: SDPA exports a Where(IsNaN) guard over every score matrix
    that cost ~15% of int8 run time on 256-token inputs; eager attention computes the same values."""
    for module in st_model:
        hf = getattr(module, "auto_model", None)
        if hf is None:
            continue
        setter = getattr(hf, "set_attn_implementation", None)
        try:
            if setter is not None:
                setter("eager")
            else:
                hf.config._attn_implementation = "eager"
        except (ValueError, AttributeError) as exc:  # a model without an eager path keeps its default
            log.info("keeping the default attention implementation: %s", exc)


def _export(source: ModelSource, folder: Path, fingerprint: str) -> dict[str, Any]:
    import torch

    from embedops.models.torch_backend import load_sentence_transformer

    st = load_sentence_transformer(source, device="cpu")
    st.eval()
    _use_eager_attention(st)
    tokenizer = st.tokenizer
    backend_tok = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tok is None:
        raise ModelError(f"model {source.name!r} has no fast (Rust) tokenizer; the onnx backend needs one")
    first = st[0]
    model_inputs = set(getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask"]))
    with_types = "token_type_ids" in model_inputs
    graph = _graph_class()(list(st), with_types).eval()
    preprocess = getattr(st, "preprocess", None) or st.tokenize
    sample = preprocess(["an example sentence to trace the graph", "and a second, shorter one"])
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    args = tuple(sample[n] if n in sample else torch.zeros_like(sample["input_ids"]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"sentence_embedding": {0: "batch"}}
    dimension = int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)())
    manifest: dict[str, Any] = {
        "fingerprint": fingerprint,
        "source": source.location,
        "name": source.name,
        "opset": OPSET,
        "format": EXPORT_FORMAT,
        "versions": _library_versions(),
        "inputs": names,
        "dimension": dimension,
        "max_tokens": int(st.max_seq_length or 512),
        "do_lower_case": bool(getattr(first, "do_lower_case", False)),
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "prompts": dict(getattr(st, "prompts", {}) or {}),
        "modules": [type(m).__name__ for m in st],
    }
    log.info("exporting %s to ONNX in %s", source.name, folder)
    with atomic_dir(folder) as tmp:
        if folder.exists():  # keep an accepted int8 model only if it was made from these same weights
            old = _read_manifest(folder)
            if old and old.get("fingerprint") == fingerprint and (folder / INT8_FILE).is_file():
                shutil.copy2(folder / INT8_FILE, tmp / INT8_FILE)
                manifest["int8"] = old.get("int8")
                manifest.setdefault("files", {})[INT8_FILE] = old.get("files", {}).get(INT8_FILE)
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript exporter writes one self-contained file at exactly opset 17; the dynamo exporter
            # is the fallback for graphs it cannot trace.
            try:
                torch.onnx.export(graph, args, str(tmp / FP32_FILE), input_names=names,
                                  output_names=["sentence_embedding"], dynamic_axes=axes,
                                  opset_version=OPSET, do_constant_folding=True, dynamo=False)
            except Exception as exc:  # noqa: BLE001 - any tracing failure falls back to the other exporter
                log.info("TorchScript export failed (%s); trying the dynamo exporter", exc)
                prog = torch.onnx.export(graph, args, input_names=names, output_names=["sentence_embedding"],
                                         dynamic_axes=axes, opset_version=OPSET, dynamo=True)
                prog.save(str(tmp / FP32_FILE), external_data=False)
        backend_tok.save(str(tmp / "tokenizer.json"))
        files = manifest.setdefault("files", {})
        files[FP32_FILE] = file_sha256(tmp / FP32_FILE)
        files["tokenizer.json"] = file_sha256(tmp / "tokenizer.json")
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def record_int8(exported: ExportedModel, info: dict[str, Any]) -> None:
    """Note an accepted int8 file (its hash, recipe and gate report) in the export's manifest."""
    manifest = _read_manifest(exported.folder) or dict(exported.manifest)
    manifest.setdefault("files", {})[INT8_FILE] = file_sha256(exported.int8_path)
    manifest["int8"] = info
    atomic_write_json(exported.folder / MANIFEST, manifest)
    exported.manifest = manifest


def int8_status(exported: ExportedModel) -> tuple[bool, str]:
    """Whether an accepted, intact int8 file exists for this export, and why not."""
    path = exported.int8_path
    if not path.is_file():
        return False, "no int8 model yet"
    expected = exported.manifest.get("files", {}).get(INT8_FILE)
    if not expected or expected != cached_file_sha256(path):
        return False, f"{INT8_FILE} does not match its recorded hash (damaged or not accepted by the gate)"
    return True, "ok"
