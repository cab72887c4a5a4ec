"""Token-aware chunking with overlap, and folding chunk scores back to their documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    A text over `_WINDOW_CHARS` characters is tokenised a window at a time (see `_Windows`): the same chunks, in
    time linear in its size and memory bounded by a window, where tokenising it whole kept ~150 bytes per character.
    """
    if max_tokens < 8:
        raise InputError(f"chunk size must be at least 8 tokens, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise InputError(f"overlap must be in [0, {max_tokens}), got {overlap}")
    view = _Windows.over(text, tokenizer) if len(text) > _WINDOW_CHARS else None
    if view is None:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        try:
            words = enc.word_ids()
        except (AttributeError, ValueError):  # slow tokenizers have no word ids: whitespace alone decides
            words = None
        view = _Whole([tuple(o) for o in enc["offset_mapping"]], words)
    if not view.has(max_tokens):  # at most max_tokens tokens: the text is one chunk
        return [text]
    chunks: list[str] = []
    start = 0
    while True:
        view.keep_from(start)
        end = start + max_tokens
        if not view.has(end):
            end = view.count()
        else:
            end = _boundary(view, end, lo=start + max(1, max_tokens // 2), hi=end)
        piece = text[view.offset(start)[0] : view.offset(end - 1)[1]].strip()
        if piece:
            chunks.append(piece)
        if not view.has(end):
            break
        target = max(end - overlap, start + 1)
        start = _boundary(view, target, lo=start + 1, hi=end)
    return chunks


def _boundary(view: _Whole | _Windows, near: int, *, lo: int, hi: int) -> int:
    """The token index closest to `near` in [lo, hi] that starts a new word: after whitespace first, then after a
    pre-tokenizer word; `near` itself when there is none."""
    order = sorted(range(max(lo, 1), hi + 1), key=lambda b: (abs(b - near), -b))
    for b in order:
        if view.offset(b)[0] > view.offset(b - 1)[1]:
            return b
    if view.has_words:
        for b in order:
            if view.word(b) != view.word(b - 1):
                return b
    return near


class _Whole:
    """Every token of a text, tokenised in one call."""

    def __init__(self, offsets: list[tuple[int, int]], words: list[int | None] | None):
        self.offsets, self.words, self.has_words = offsets, words, words is not None

    def has(self, i: int) -> bool:
        return i < len(self.offsets)

    def count(self) -> int:
        return len(self.offsets)

    def offset(self, i: int) -> tuple[int, int]:
        return self.offsets[i]

    def word(self, i: int) -> int | None:
        return self.words[i] if self.words is not None else None

    def keep_from(self, i: int) -> None:
        return None


# Over this many characters a text is tokenised a window at a time.
_WINDOW_CHARS = 1 << 16
# Normalisers that map each character on its own and pre-tokenizers that split at whitespace and decide every other
# word boundary from neighbouring characters (the same class models.tokenizer.InputClipper accepts; data may not
# import models): for them tokens(text) = tokens(text[:b]) + tokens(text[b:]) at every word start b.
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
_LOCAL_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits"}


def _types(node: Any) -> list[str] | None:
    """Component types of a tokenizer.json node (a Sequence flattened); None for a shape not known."""
    if node is None:
        return []
    if not isinstance(node, dict) or "type" not in node:
        return None
    if node["type"] != "Sequence":
        return [node["type"]]
    out: list[str] = []
    for child in node.get("normalizers") or node.get("pretokenizers") or []:
        sub = _types(child)
        if sub is None:
            return None
        out += sub
    return out


class _Windows:
    """A huge text's tokens, tokenised one window of characters at a time; only the current window is held.

    A window's tokens are final up to its last word (and any token ending in its last `margin` characters, where an
    added token may straddle the edge); the next window starts at the start of the word holding the lowest token
    still needed, a word start, so its tokens are the whole text's tokens from there.
    """

    def __init__(self, text: str, rust: Any, margin: int, has_words: bool):
        self.text, self.rust, self.margin, self.has_words = text, rust, margin, has_words
        self.base = 0  # global index of the window's first token
        self.floor = 0  # lowest global index still needed
        self._load(0, 0, _WINDOW_CHARS)

    @classmethod
    def over(cls, text: str, tokenizer: Any) -> _Windows | None:
        """Windows over `text` for a fast tokenizer of the local class; None otherwise (tokenise it whole)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or not hasattr(backend, "to_str"):
            return None
        spec = json.loads(backend.to_str())
        norms, pres = _types(spec.get("normalizer")), _types(spec.get("pre_tokenizer"))
        if norms is None or not pres or not set(norms) <= _LOCAL_NORMALIZERS or not set(pres) <= _LOCAL_PRE_TOKENIZERS:
            return None
        from tokenizers import Tokenizer

        rust = Tokenizer.from_str(backend.to_str())  # a private copy: truncation and padding off, never changed
        rust.no_truncation()
        rust.no_padding()
        margin = max([len(str(t.get("content", ""))) for t in spec.get("added_tokens") or []] + [1]) + 1
        # What the caller's tokenizer offers: a Hugging Face fast tokenizer gives word ids, our adapter does not.
        probe = tokenizer("a b", add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                          verbose=False)
        try:
            has_words = probe.word_ids() is not None
        except (AttributeError, ValueError):
            has_words = False
        return cls(text, rust, margin, has_words)

    def _load(self, char_start: int, base: int, size: int) -> None:
        n = len(self.text)
        end = min(char_start + size, n)
        enc = self.rust.encode(self.text[char_start:end], add_special_tokens=False)
        self.offsets = [(a + char_start, b + char_start) for a, b in enc.offsets]
        self.words = list(enc.word_ids)
        self.base, self.char_start, self.size, self.done = base, char_start, size, end == n
        self.stable = len(self.offsets) if self.done else self._first_open(end - self.margin)

    def _first_open(self, limit: int) -> int:
        """Index of the first token of the first word that may continue past the window."""
        j = len(self.offsets) - 1
        for i, (_, stop) in enumerate(self.offsets):
            if stop > limit:
                j = i
                break
        while j > 0 and self.words[j - 1] == self.words[j]:
            j -= 1
        return max(j, 0)

    def _ensure(self, i: int) -> bool:
        """Load windows until global token `i` is final; False when the text has no token `i`."""
        while i >= self.base + self.stable:
            if self.done:
                return False
            w0 = max(self.floor - self.base, 0)
            while 0 < w0 < len(self.words) and self.words[w0 - 1] == self.words[w0]:
                w0 -= 1
            w0 = min(w0, self.stable)
            if w0 == 0 or w0 >= len(self.offsets):  # nothing to drop yet: read a bigger window from the same start
                self._load(self.char_start, self.base, self.size * 2)
            else:
                self._load(self.offsets[w0][0], self.base + w0, _WINDOW_CHARS)
        return True

    def has(self, i: int) -> bool:
        return self._ensure(i)

    def count(self) -> int:
        while not self.done:
            self._ensure(self.base + self.stable)
        return self.base + len(self.offsets)

    def offset(self, i: int) -> tuple[int, int]:
        self._ensure(i)
        return self.offsets[i - self.base]

    def word(self, i: int) -> int | None:
        self._ensure(i)
        return self.words[i - self.base]

    def keep_from(self, i: int) -> None:
        self.floor = i


def fold_scores(
    chunk_scores: dict[str, float], reduce: Callable[[list[float]], float] = max
) -> dict[str, float]:
    """Fold {'doc#i': score} back to {'doc': score} (max by default: a document is as relevant as its best part)."""
    grouped: dict[str, list[float]] = {}
    for chunk_id, score in chunk_scores.items():
        doc_id = chunk_id.rsplit("#", 1)[0] if "#" in chunk_id else chunk_id
        grouped.setdefault(doc_id, []).append(score)
    return {d: reduce(s) for d, s in grouped.items()}
