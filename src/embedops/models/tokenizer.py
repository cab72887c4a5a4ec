"""A Rust `tokenizers.Tokenizer` called the way callers call a Hugging Face fast tokenizer.

Chunking (`data.chunk.chunk_text`) and token counting call `encoder.tokenizer(text, add_special_tokens=False,
return_offsets_mapping=True, truncation=False)`; the onnx backend has no transformers tokenizer, so it offers this
adapter, which returns the same fields for the same inputs (the same Rust tokenizer is inside both).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import unicodedata
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


# -- cutting huge inputs before tokenisation ---------------------------------------------------------------------------
# Normalizers that map each character on its own (so a text cut between two words normalises to the two halves' own
# normalisations) and keep an ASCII space a space; pre-tokenizers that split words at whitespace and decide every
# other boundary from the characters beside it. Any model then tokenises each word on its own.
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
_LOCAL_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits"}


def _types(node: Any) -> list[str] | None:
    """Component types of a tokenizer.json node (a Sequence flattened); [] for none, None for a shape not known."""
    if node is None:
        return []
    if not isinstance(node, dict) or "type" not in node:
        return None
    if node["type"] == "Sequence":
        out: list[str] = []
        for child in node.get("normalizers") or node.get("pretokenizers") or []:
            sub = _types(child)
            if sub is None:
                return None
            out += sub
        return out
    return [node["type"]]


_NOT_SPACE = re.compile(r"[^ \t\n\r]")
_LETTER_CATEGORIES = re.compile(r"[LNM]")
# BERT's CJK blocks: each of their characters is a word of its own (BertNormalizer puts spaces around it).
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


@functools.cache
def _categories() -> tuple[list[tuple[int, int]], str]:
    """One scan of the assigned planes (0-3 and 14; 4-13 are unassigned, 15-16 private use): ranges of letters,
    digits and marks outside BERT's CJK blocks, and every control, format character and non-spacing mark."""
    ranges: list[tuple[int, int]] = []
    maybe_dropped: list[str] = []
    for cp in itertools.chain(range(0xD800), range(0xE000, 0x40000), range(0xE0000, 0xF0000)):
        cat = unicodedata.category(chr(cp))
        if cat in ("Cc", "Cf", "Mn"):
            maybe_dropped.append(chr(cp))
        if cat[0] not in "LNM" or any(lo <= cp <= hi for lo, hi in _CJK):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges, "".join(maybe_dropped) + "\ufffd"


@functools.cache
def _not_letters() -> re.Pattern[str]:
    """A character that is not a letter, digit or mark outside BERT's CJK blocks (built once, ~0.5 s).

    Inside a BERT word such characters can only continue it: after NFD, accent stripping and lower-casing a letter,
    digit or mark is still one (or is dropped), never whitespace, punctuation or CJK; so a giant word can only end at
    a character this matches, and the tokenizer decides from there.
    """
    esc = re.escape
    body = "".join(esc(chr(a)) if a == b else f"{esc(chr(a))}-{esc(chr(b))}" for a, b in _categories()[0])
    return re.compile(f"[^{body}]")


def _dropped_by(tokenizer: Any) -> re.Pattern[str] | None:
    """Runs of characters this tokenizer's normaliser deletes (each checked against the normaliser itself)."""
    norm = tokenizer.normalizer
    gone = [c for c in _categories()[1] if c not in "\t\n\r" and norm.normalize_str(c) == ""]
    return re.compile("[" + "".join(re.escape(c) for c in gone) + "]+") if gone else None


class InputClipper:
    """Cuts a huge text, before it is tokenised, to a short text whose tokens begin with the same `need` tokens.

    The encoder keeps `keep` = max_tokens - special tokens of a text; any text with more than `keep` tokens is cut
    there. So a text needs only to be replaced by one whose first `keep + 1` tokens are the original's: the model then
    reads the same ids, and the text still counts as truncated (it has more than `keep` tokens). Proof, for the
    tokenizers this accepts (per-character normalizers, pre-tokenizers that split at whitespace and decide every other
    word boundary from neighbouring characters; see `_LOCAL_*`):

    - tokens(text) = tokens(text[:b]) + tokens(text[b:]) at any word start b, since words are tokenised one by one
      and a boundary depends only on the characters beside it; and tokens(a + " " + b) = tokens(a) + tokens(b).
    - The text is read in windows of `window` characters. In each window the last word, and any token ending in the
      window's last `margin` characters (an added token such as "[SEP]" could straddle the edge), may continue past
      the window, so the window counts only the tokens before that word, and the next window starts at its start.
      The kept windows are joined with spaces; windows that produced no tokens (whitespace, control characters) are
      dropped, so the result is at most about `need` windows long whatever the input.
    - A window that is all one word (a "word" without whitespace of thousands of characters) cannot move on that way.
      With BERT's pre-tokenizer and WordPiece, a word of more than `max_input_chars_per_word` characters after
      normalisation is one [UNK] whatever follows, so it stands as `max_input_chars_per_word + 1` letters and the
      rest of the word is skipped: letters, digits and marks at regex speed (they can only continue a word), the rest
      window by window (an "a" is put before each window: it joins the word's continuation exactly as the word's own
      letters would, and a second word in the window marks its end). A long word that normalises to few characters
      (one letter and a million combining marks or control characters) has what BertNormalizer deletes deleted
      first. Other tokenizers double the window until the word ends: correct, at the old cost.

    A tokenizer outside this class is not cut (full tokenisation, then truncation, as before).
    """

    def __init__(self, tokenizer: Any, *, window: int = 0, min_window: int = 1024):
        self.tokenizer = tokenizer  # a Rust tokenizers.Tokenizer with truncation and padding off
        spec = json.loads(tokenizer.to_str())
        norms, pres = _types(spec.get("normalizer")), _types(spec.get("pre_tokenizer"))
        model = spec.get("model") or {}
        self.safe = (norms is not None and pres is not None and bool(pres)
                     and set(norms) <= _LOCAL_NORMALIZERS and set(pres) <= _LOCAL_PRE_TOKENIZERS)
        added = [str(t.get("content", "")) for t in spec.get("added_tokens") or []]
        self.margin = max([len(a) for a in added] + [1]) + 1
        # The [UNK] shortcut for giant words holds for BERT's pre-tokenizer (punctuation isolated, so a word is one
        # class of characters) and WordPiece's length rule.
        self.max_word = int(model.get("max_input_chars_per_word") or 0) if model.get("type") == "WordPiece" else 0
        self.unk_id = tokenizer.token_to_id(model.get("unk_token") or "[UNK]") if self.max_word else None
        self.giant_words = bool(self.max_word and self.unk_id is not None and pres == ["BertPreTokenizer"]
                                and not any(a.startswith("a") for a in added))
        self.window = window
        self.min_window = min_window
        self.added = added
        self._bert_normalizer = norms == ["BertNormalizer"]

    @functools.cached_property
    def _dropped(self) -> re.Pattern[str] | None:
        """BertNormalizer deletes controls (and, when it strips accents, marks) one character at a time, whatever
        stands beside them (it decomposes, never composes): deleting them first changes no token. Built when first
        needed (a scan of Unicode, ~1 s), not at every model load."""
        return _dropped_by(self.tokenizer) if self.giant_words and self._bert_normalizer else None

    @functools.cached_property
    def _letters(self) -> re.Pattern[str] | None:
        """Characters that may end a giant BERT word (None when an added token starts with a letter: then the
        tokenizer reads every window)."""
        if not self.giant_words or any(a and _LETTER_CATEGORIES.match(unicodedata.category(a[0])) for a in self.added):
            return None
        return _not_letters()

    def window_for(self, need: int) -> int:
        """Characters read per window: enough for `need` tokens of ordinary text in one window."""
        return self.window or max(self.min_window, 16 * need, 4 * self.margin, 4 * (self.max_word + 1))

    def clip(self, text: str, need: int) -> str:
        """`text`, or a shorter text whose first `need` tokens (no special tokens) are the same and that has at least
        `need` tokens whenever `text` has (shorter than `text` only when `text` has at least `need` tokens, or when
        dropping its whitespace runs and control characters made it so)."""
        window = self.window_for(need)
        if not self.safe or len(text) <= window or need < 1:
            return text
        n = len(text)
        segments: list[str] = []
        got = 0
        pos = 0
        size = window
        compacted = False
        while pos < n and got < need:
            end = min(pos + size, n)
            piece = text[pos:end]
            enc = self.tokenizer.encode(piece, add_special_tokens=False)
            ids, words, offsets = enc.ids, enc.word_ids, enc.offsets
            if end == n:  # the text's end: every token is final
                if ids:
                    segments.append(piece)
                    got += len(ids)
                break
            if not ids:  # only whitespace or dropped characters: no word can be open across them
                more = _NOT_SPACE.search(text, end)  # and skip a whole whitespace run at C speed
                pos, size = (more.start() if more else n), window
                continue
            j = self._first_open(words, offsets, len(piece))
            if j > 0:  # the tokens before the open word are final
                start = offsets[j][0]
                segments.append(piece[:start])
                got += j
                pos, size = pos + start, window
                continue
            # The window's first word may run past its end: a giant word.
            last = max(o[1] for o, w in zip(offsets, words, strict=True) if w == words[0])
            word_ids = [i for i, w in zip(ids, words, strict=True) if w == words[0]]
            if self.giant_words and word_ids == [self.unk_id] and self._long(piece[offsets[0][0]:last]):
                segments.append("a" * (self.max_word + 1))  # the same single [UNK]
                got += 1
                pos, size = self._skip_word(text, pos + last, window), window
                continue
            if not compacted and self._dropped is not None:
                compacted = True  # a long word that normalises to little: delete what the normaliser deletes
                rest = self._dropped.sub("", text[pos:])
                if all(rest.count(a) == text.count(a, pos) for a in self.added if a):  # no added token made
                    text = text[:pos] + rest
                    n = len(text)
                    continue
            size = min(size * 2, n - pos)  # a word whose tokens are not settled yet: read further
        return " ".join(segments)

    def _first_open(self, words: list[int | None], offsets: list[tuple[int, int]], length: int) -> int:
        """Index of the first token of the first word that may continue past the window (the last word, or a word with
        a token ending in the window's last `margin` characters)."""
        j = len(words) - 1
        for i, (_, stop) in enumerate(offsets):
            if stop > length - self.margin:
                j = i
                break
        while j > 0 and words[j - 1] == words[j]:
            j -= 1
        return j

    def _long(self, word: str) -> bool:
        """Whether `word` normalises to more than max_input_chars_per_word characters (with room for an added token
        that may start at its end), so that it is one [UNK] however it continues."""
        norm = self.tokenizer.normalizer
        length = len(norm.normalize_str(word)) if norm is not None else len(word)
        return length > self.max_word + self.margin

    def _skip_word(self, text: str, pos: int, window: int) -> int:
        """Where the next word starts after the giant word whose known part ends at `pos` (or where only whitespace
        and dropped characters are left before it): read window by window with an "a" standing for the word."""
        n = len(text)
        while pos < n:
            if self._letters is not None:  # letters, digits and marks only continue the word: skip them at C speed
                more = self._letters.search(text, pos)
                pos = more.start() if more else n
                if pos >= n:
                    return n
            end = min(pos + window, n)
            piece = "a" + text[pos:end]
            enc = self.tokenizer.encode(piece, add_special_tokens=False)
            words, offsets = enc.word_ids, enc.offsets
            limit = len(piece) - (self.margin if end < n else 0)
            for w, (start, _) in zip(words, offsets, strict=True):
                if w != words[0] and start <= limit:
                    return pos + start - 1  # a second word: the giant word ended before it
            if end == n:
                return n
            first_end = max(o[1] for o, w in zip(offsets, words, strict=True) if w == words[0])
            if first_end < limit:
                # The word ends early in this window and no other word follows in it: it is over unless everything
                # after it is dropped characters (an "a" on both sides would then join into one word).
                tail = self.tokenizer.encode("a" + text[pos + first_end - 1:end] + "a", add_special_tokens=False)
                if len(set(tail.word_ids)) > 1:
                    return pos + first_end - 1  # whitespace closed it: the next word starts after this point
                pos = end
                continue
            pos = max(pos + first_end - 1 - self.margin, pos + 1)  # the word runs on: re-read only the window's edge
        return n

    def clip_all(self, texts: list[str], need: int) -> list[str]:
        """`clip` each text (a text short enough to be read whole is returned as it is, at no cost)."""
        return [self.clip(t, need) for t in texts]
