"""The torch backend: a sentence-transformers model run by our own length-sorted batching loop.

Thread safety: a Hugging Face fast tokenizer keeps truncation and padding as mutable state that each call may flip
(sentence-transformers' `preprocess` turns them on, a plain count turns them off), so two threads sharing one tokenizer
see "Already borrowed" or ragged batches ("Unable to create tensor"). The model's own tokenizer is therefore used only
under a per-encoder lock, together with the forward pass (one forward at a time also avoids oversubscribing the
intra-op pool); counting and chunking use a private clone whose state is fixed once at load and never changes.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings

import numpy as np

from embedops.errors import ModelError
from embedops.models.base import BaseEncoder
from embedops.models.loading import ModelSource, resolve_model
from embedops.models.tokenizer import InputClipper

log = logging.getLogger(__name__)


def load_sentence_transformer(source: ModelSource, device: str = "cpu"):
    """Load a SentenceTransformer from a folder or hub id, with a clear error on failure."""
    from sentence_transformers import SentenceTransformer

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SentenceTransformer(
                source.location, device=device, local_files_only=offline or source.path is not None
            )
    except Exception as exc:  # sentence-transformers raises many types (OSError, ValueError, HTTP errors)
        where = "local folder" if source.path else "Hugging Face id"
        hint = "HF_HUB_OFFLINE=1 is set and the model is not in the local cache" if offline else None
        raise ModelError(f"cannot load model {source.name!r} ({where}): {exc}", hint=hint) from exc


class TorchEncoder(BaseEncoder):
    """sentence-transformers model (its own Transformer/Pooling/Normalize modules) under our batching."""

    backend = "torch"
    batch_overhead_tokens = 48  # a CPU forward call costs ~6 ms beyond its tokens (python and dispatch)

    def __init__(
        self,
        model: str | ModelSource | None = None,
        *,
        device: str = "cpu",
        fp16: bool = False,
        truncate_dim: int | None = None,
        max_tokens: int | None = None,
    ):
        super().__init__()
        import torch

        self.source = resolve_model(model)  # a ModelSource passes through (load_encoder resolves with its resolver)
        self.name = self.source.name
        self.device = device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device {device!r} requested but CUDA is not available")
        self.model = load_sentence_transformer(self.source, device=device)
        if fp16:
            if not device.startswith("cuda"):
                raise ModelError("fp16 is only supported on a CUDA device")
            self.model.half()
        self.model.eval()
        if device.startswith("cuda"):  # on a GPU a call's launch cost dwarfs a few padded tokens: pad freely
            self.batch_overhead_tokens = 4096
        if max_tokens:
            self.model.max_seq_length = max_tokens
        self.max_tokens = int(self.model.max_seq_length or 512)
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        if not dim:
            raise ModelError(f"model {self.name!r} does not report an embedding dimension")
        self.dimension = int(dim)
        self.truncate_dim = truncate_dim
        self._torch = torch
        self._model_lock = threading.Lock()  # the model's tokenizer and forward: one call at a time
        self.tokenizer = copy.deepcopy(self.model.tokenizer)
        # Fix the clone's state (no truncation, no padding: what counting and chunking ask for) now, so that no
        # later call from any thread needs to change it.
        self.tokenizer("warm up", truncation=False, padding=False, verbose=False)
        self.clipper = self._make_clipper()

    def _make_clipper(self) -> InputClipper | None:
        """A clipper over a private copy of the model's Rust tokenizer (None for a slow tokenizer: no cutting)."""
        backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        from tokenizers import Tokenizer

        rust = Tokenizer.from_str(backend.to_str())
        rust.no_truncation()
        rust.no_padding()
        self._n_special = int(rust.num_special_tokens_to_add(False))
        first = self.model[0] if len(self.model) else None
        self._lower = bool(getattr(first, "do_lower_case", False))
        return InputClipper(rust)

    def clip(self, texts: list[str]) -> list[str]:
        """Cut each huge text to one with the same first max_tokens + 1 tokens, before any tokenisation (see
        InputClipper): a 50 MB text then costs what a few kB cost, with the same vector and truncation flag."""
        if self.clipper is None:
            return texts
        if self._lower:  # sentence-transformers lowercases before its tokenizer: cut the text it will tokenise
            texts = [t.lower() if len(t) > self.clipper.min_window else t for t in texts]
        return self.clipper.clip_all(texts, self.max_tokens - self._n_special + 1)

    @property
    def prompts(self) -> dict[str, str]:
        """The prompts the model defines (e.g. {'query': 'query: '})."""
        return dict(getattr(self.model, "prompts", {}) or {})

    def set_intra_op_threads(self, threads: int) -> None:
        """torch's intra-op pool is process-wide: set it once (a model worker calls this at start)."""
        if self._torch.get_num_threads() != threads:
            self._torch.set_num_threads(threads)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Untruncated token count per text (special tokens included)."""
        enc = self.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))

    def tokenize_all(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        """Cut huge texts, then count tokens for planning; the cut texts are what each batch runs."""
        clipped = self.clip(texts)
        return self.token_lengths(clipped), clipped

    def run_batch(self, texts: list[str], indices: np.ndarray, prepared: list[str] | None) -> np.ndarray:
        """Embed the (already cut) texts at `indices`."""
        if prepared is None:
            return self.encode_core([texts[i] for i in indices])
        return self._forward([prepared[i] for i in indices])

    def encode_core(self, texts: list[str]) -> np.ndarray:
        """Cut huge texts, tokenise (truncating at max_tokens), run the model's modules, return the pooled vectors."""
        return self._forward(self.clip(texts))

    def _forward(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        with self._model_lock:
            features = prep(texts)
            features = {k: v.to(self.model.device) for k, v in features.items() if hasattr(v, "to")}
            with torch.inference_mode():
                out = self.model.forward(features)
            emb = out["sentence_embedding"]
            return emb.float().cpu().numpy()
