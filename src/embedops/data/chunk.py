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
    """Split `text` into windows of at most `max_tokens` tokens (no special tokens), overlapping by about `overlap`.

    Cuts on token offsets so each chunk is an exact substring of the original text, and at word boundaries: a
    window ends (and the next starts) where whitespace separates two tokens, else between two pre-tokenizer words
    (punctuation), and inside a word only when no boundary lies in the window's second half (one huge "word").
    """
    if max_tokens < 8:
        raise InputError(f"chunk size must be at least 8 tokens, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise InputError(f"overlap must be in [0, {max_tokens}), got {overlap}")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    n = len(offsets)
    if n <= max_tokens:
        return [text]
    try:
        words = enc.word_ids()
    except (AttributeError, ValueError):  # slow tokenizers have no word ids: whitespace alone decides
        words = None
    chunks: list[str] = []
    start = 0
    while True:
        end = start + max_tokens
        if end >= n:
            end = n
        else:
            end = _boundary(offsets, words, end, lo=start + max(1, max_tokens // 2), hi=end)
        piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
        if piece:
            chunks.append(piece)
        if end >= n:
            break
        target = max(end - overlap, start + 1)
        start = _boundary(offsets, words, target, lo=start + 1, hi=end)
    return chunks


def _boundary(offsets: list[tuple[int, int]], words: list[int | None] | None, near: int, *, lo: int,
              hi: int) -> int:
    """The token index closest to `near` in [lo, hi] that starts a new word: after whitespace first, then after a
    pre-tokenizer word; `near` itself when there is none."""
    order = sorted(range(max(lo, 1), hi + 1), key=lambda b: (abs(b - near), -b))
    for b in order:
        if offsets[b][0] > offsets[b - 1][1]:
            return b
    if words is not None:
        for b in order:
            if words[b] != words[b - 1]:
                return b
    return near


def fold_scores(
    chunk_scores: dict[str, float], reduce: Callable[[list[float]], float] = max
) -> dict[str, float]:
    """Fold {'doc#i': score} back to {'doc': score} (max by default: a document is as relevant as its best part)."""
    grouped: dict[str, list[float]] = {}
    for chunk_id, score in chunk_scores.items():
        doc_id = chunk_id.rsplit("#", 1)[0] if "#" in chunk_id else chunk_id
        grouped.setdefault(doc_id, []).append(score)
    return {d: reduce(s) for d, s in grouped.items()}
