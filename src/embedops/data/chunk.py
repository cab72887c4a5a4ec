"""Token-aware chunking with overlap, and folding chunk scores back to their documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from embedops.errors import InputError


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: `doc_id`, position `index`, and its text."""

    doc_id: str
    index: int
    text: str

    @property
    def id(self) -> str:
        """Chunk id: '<doc_id>#<index>'."""
        return f"{self.doc_id}#{self.index}"


def chunk_text(text: str, tokenizer, *, max_tokens: int, overlap: int = 32) -> list[str]:
    """Split `text` into windows of at most `max_tokens` tokens (no special tokens), overlapping by `overlap`.

    Cuts on token offsets so each chunk is an exact substring of the original text.
    """
    if max_tokens < 8:
        raise InputError(f"chunk size must be at least 8 tokens, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise InputError(f"overlap must be in [0, {max_tokens}), got {overlap}")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return [text]
    chunks: list[str] = []
    step = max_tokens - overlap
    for start in range(0, len(offsets), step):
        window = offsets[start : start + max_tokens]
        chunks.append(text[window[0][0] : window[-1][1]].strip())
        if start + max_tokens >= len(offsets):
            break
    return [c for c in chunks if c]


def chunk_documents(docs, tokenizer, *, max_tokens: int, overlap: int = 32) -> list[Chunk]:
    """Chunk each Document's full text; short documents give one chunk."""
    out: list[Chunk] = []
    for doc in docs:
        for i, piece in enumerate(chunk_text(doc.full_text, tokenizer, max_tokens=max_tokens, overlap=overlap)):
            out.append(Chunk(doc_id=doc.id, index=i, text=piece))
    return out


def fold_scores(
    chunk_scores: dict[str, float], reduce: Callable[[list[float]], float] = max
) -> dict[str, float]:
    """Fold {'doc#i': score} back to {'doc': score} (max by default: a document is as relevant as its best part)."""
    grouped: dict[str, list[float]] = {}
    for chunk_id, score in chunk_scores.items():
        doc_id = chunk_id.rsplit("#", 1)[0] if "#" in chunk_id else chunk_id
        grouped.setdefault(doc_id, []).append(score)
    return {d: reduce(s) for d, s in grouped.items()}
