"""Stable model identity: a content hash of a model's own files, and the fingerprint of the vector space it makes.

The hash reads the weights, configs and tokenizer files of the model folder (never its absolute path or mtimes), so a
copied or moved model is the same model. Hashes are memoised in-process by (path, size, mtime_ns), so asking again
costs a few `stat` calls, not a re-read of hundreds of megabytes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from embedops._io import file_sha256
from embedops.models.loading import DEFAULT_MODEL, ModelSource, bundled_default_path

IDENTITY_SUFFIXES = frozenset({".safetensors", ".bin", ".pt", ".pth"})
"""Weight files that make up a model's identity (ONNX files are derived exports, not the model itself)."""
IDENTITY_NAMES = frozenset({
    "config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
    "added_tokens.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
})
"""Config and tokenizer files: they change the vectors as surely as the weights do (pooling, vocabulary ...)."""
_DERIVED_DIRS = frozenset({"onnx", "openvino"})  # exports written beside weights by older versions or by the hub

_hashes: dict[tuple[str, int, int, int, int], str] = {}
_hashes_lock = threading.Lock()


def cached_file_sha256(path: Path) -> str:
    """sha256 of a file, memoised by (resolved path, inode, size, mtime_ns, ctime_ns): an edited file is read again."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _hashes_lock:
        found = _hashes.get(key)
    if found is None:
        found = file_sha256(path)  # outside the lock: two threads may hash the same file once each, harmlessly
        with _hashes_lock:
            _hashes[key] = found
    return found


def identity_files(folder: Path) -> list[Path]:
    """The files of a model folder that define it, in a stable order (relative paths, sorted)."""
    out = []
    for f in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        rel = f.relative_to(folder).parts
        if any(part.startswith(".") or part in _DERIVED_DIRS for part in rel[:-1]) or rel[-1].startswith("."):
            continue
        if f.is_file() and (f.suffix in IDENTITY_SUFFIXES or f.name in IDENTITY_NAMES):
            out.append(f)
    return out


def weights_hash(folder: str | Path) -> str:
    """Content hash of a model folder: relative name and sha256 of each weight, config and tokenizer file."""
    root = Path(folder)
    h = hashlib.sha256()
    for f in identity_files(root):
        h.update(f"{f.relative_to(root).as_posix()}\0{cached_file_sha256(f)}\n".encode())
    return h.hexdigest()


def _hub_folder(hf_id: str) -> Path | None:
    """The local snapshot folder of a hub id, when it is in the hub cache (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hf_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, no huggingface_hub, or a hub error: fall back to the id
        return None


def source_weights_hash(source: ModelSource) -> str:
    """`weights_hash` of a model's folder; for a hub id, of its cached snapshot (else a hash of the id)."""
    folder = source.path or (_hub_folder(source.hf_id) if source.hf_id else None)
    if folder is not None:
        return weights_hash(folder)
    return hashlib.sha256(f"hub:{source.hf_id}".encode()).hexdigest()


def model_location(source: ModelSource) -> str:
    """Portable location for a spec: the bundled default by name, else the folder path or the hub id."""
    if source.path is not None:
        try:
            if source.path.resolve() == bundled_default_path().resolve():
                return DEFAULT_MODEL
        except Exception:  # noqa: BLE001 - no bundled package: this cannot be it
            pass
        return str(source.path)
    return str(source.hf_id)


def encoder_fingerprint(*, weights: str, backend: str, quantization: str = "none", int8_hash: str = "",
                        truncate_dim: int | None = None, max_tokens: int, prompts: dict[str, str] | None = None
                        ) -> str:
    """Hash of what decides the vectors: weights, backend, quantisation, truncate_dim, max_tokens, prompts."""
    parts: dict[str, Any] = {"weights": weights, "backend": backend, "quantization": quantization,
                             "int8": int8_hash or "", "truncate_dim": truncate_dim, "max_tokens": int(max_tokens),
                             "prompts": dict(sorted((prompts or {}).items()))}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
