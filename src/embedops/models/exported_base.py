"""What the onnx and openvino backends share: the export's manifest, the Rust tokenizer, and padded batch feeds.

Texts are tokenised in one Rust batch call (without special tokens), batches are planned on those lengths, and each
batch is truncated, given its special tokens and padded only to its own longest text. A backend only says how to run
one feed (`infer`).

Thread safety: the Rust tokenizer's padding and truncation are switched off once at load and never touched again
(we pad and truncate ourselves), so any number of threads may tokenise at once.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from embedops.models.base import BaseEncoder
from embedops.models.export import ExportedModel
from embedops.models.tokenizer import InputClipper, TokenizerAdapter


class ExportedTextEncoder(BaseEncoder):
    """A text encoder over an ONNX export (or a runtime's conversion of it), tokenised by the Rust tokenizer."""

    exported: ExportedModel

    def init_from_export(self, exported: ExportedModel, *, max_tokens: int | None, truncate_dim: int | None) -> None:
        """Read dimension, limits, inputs, padding id, lower-casing and prompts from the export's manifest."""
        self.exported = exported
        manifest = exported.manifest
        self.dimension = int(manifest["dimension"])
        self.max_tokens = int(max_tokens or manifest["max_tokens"])
        self.truncate_dim = truncate_dim
        self.input_names = list(manifest["inputs"])
        self.pad_id = int(manifest.get("pad_token_id", 0))
        self.lower_case = bool(manifest.get("do_lower_case", False))
        self._prompts = dict(manifest.get("prompts", {}))

    def load_tokenizer(self, tokenizers: Any) -> None:
        """Load the export's tokenizer.json with padding and truncation off (we do both per batch)."""
        self.rust_tokenizer = tokenizers.Tokenizer.from_file(str(self.exported.tokenizer_path))
        # A saved tokenizer.json may carry fixed padding/truncation (the bundled one pads to 128): we do both ourselves.
        self.rust_tokenizer.no_padding()
        self.rust_tokenizer.no_truncation()
        self.n_special = int(self.rust_tokenizer.num_special_tokens_to_add(False))
        # Chunking and token counting call `encoder.tokenizer(...)` as they would a Hugging Face fast tokenizer.
        self.tokenizer = TokenizerAdapter(self.rust_tokenizer)
        # A huge text is cut, before it is tokenised, to one with the same first max_tokens tokens (see InputClipper).
        self.clipper = InputClipper(self.rust_tokenizer)

    @property
    def prompts(self) -> dict[str, str]:
        """The prompts the model defines (e.g. {'query': 'query: '})."""
        return dict(self._prompts)

    @abc.abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Run the graph on one padded feed; float32 [rows, dimension]."""

    def _tokenize(self, texts: list[str], *, clip: bool = True) -> list[Any]:
        if self.lower_case:  # sentence-transformers lowercases before the tokenizer when the config says so
            texts = [t.lower() for t in texts]
        if clip:  # cut after lower-casing: that is the text the tokenizer sees (lower() looks at neighbours)
            texts = self.clipper.clip_all(texts, self.max_tokens - self.n_special + 1)
        return self.rust_tokenizer.encode_batch(texts, add_special_tokens=False)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Untruncated token count per text (special tokens included): every text tokenised whole."""
        encs = self._tokenize(texts, clip=False)
        return np.fromiter((len(e.ids) + self.n_special for e in encs), dtype=np.int64, count=len(texts))

    def tokenize_all(self, texts: list[str]) -> tuple[np.ndarray, Any]:
        """Tokenise every text once; lengths for planning, encodings reused by each batch.

        A text with more than max_tokens tokens may be cut first (only past its first max_tokens + 1 tokens), so its
        length here is then more than max_tokens but not its full count: enough to plan and to flag truncation.
        """
        encs = self._tokenize(texts)
        lengths = np.fromiter((len(e.ids) + self.n_special for e in encs), dtype=np.int64, count=len(texts))
        return lengths, encs

    def run_batch(self, texts: list[str], indices: np.ndarray, prepared: Any) -> np.ndarray:
        """Truncate, add special tokens, pad to the batch's longest and run the graph."""
        return self._run([prepared[i] for i in indices])

    def encode_core(self, texts: list[str]) -> np.ndarray:
        """Embed one batch of texts (tokenising them here)."""
        return self._run(self._tokenize(texts))

    def _run(self, encs: list) -> np.ndarray:
        return self.infer(self.feed(encs))

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
