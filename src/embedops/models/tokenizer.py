"""A Rust `tokenizers.Tokenizer` called the way callers call a Hugging Face fast tokenizer.

Chunking (`data.chunk.chunk_text`) and token counting call `encoder.tokenizer(text, add_special_tokens=False,
return_offsets_mapping=True, truncation=False)`; the onnx backend has no transformers tokenizer, so it offers this
adapter, which returns the same fields for the same inputs (the same Rust tokenizer is inside both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embedops.errors import InputError


class TokenizerAdapter:
    """Callable like a Hugging Face fast tokenizer (no padding, no tensors), over a Rust tokenizer whose padding and
    truncation are off and are never changed here, so any number of threads may call it at once."""

    def __init__(self, tokenizer: Any):
        self.backend_tokenizer = tokenizer
        self._n_special = int(tokenizer.num_special_tokens_to_add(False))

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool | str | None = False,
        max_length: int | None = None,
        padding: bool | str = False,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = True,
        return_token_type_ids: bool = True,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> dict[str, Any]:
        """Token ids (and offsets, attention mask, token types) of one text or a list of texts, as lists."""
        if padding or return_tensors:
            raise InputError("this tokenizer returns unpadded lists only (padding and return_tensors are unsupported)")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        encs = self.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        limit = max_length if truncation and max_length else None
        rows: list[Any] = []
        for enc in encs:
            if limit is not None:
                keep = limit - (self._n_special if add_special_tokens else 0)
                if len(enc.ids) > keep:
                    enc.truncate(max(keep, 0))  # special tokens are added after truncation, as transformers does
            rows.append(self.backend_tokenizer.post_process(enc) if add_special_tokens else enc)
        out: dict[str, Any] = {"input_ids": [list(e.ids) for e in rows]}
        if return_token_type_ids:
            out["token_type_ids"] = [list(e.type_ids) for e in rows]
        if return_attention_mask:
            out["attention_mask"] = [list(e.attention_mask) for e in rows]
        if return_offsets_mapping:
            out["offset_mapping"] = [[tuple(o) for o in e.offsets] for e in rows]
        return {k: v[0] for k, v in out.items()} if single else out

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of one text."""
        return self(text, add_special_tokens=add_special_tokens)["input_ids"]

    def tokenize(self, text: str) -> list[str]:
        """Token strings of one text (no special tokens)."""
        return list(self.backend_tokenizer.encode(text, add_special_tokens=False).tokens)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of token ids."""
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def count(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[int]:
        """Untruncated token count of each text."""
        encs = self.backend_tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [len(e.ids) for e in encs]
