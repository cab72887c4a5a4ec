"""Exact and near-duplicate detection: normalised-text hashes, then MinHash LSH (datasketch) on word shingles."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

_WORD = re.compile(r"\w+", re.UNICODE)


def _normal_form(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _shingles(text: str, n: int = 3) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class DedupeResult:
    """Which positions to keep, and for each dropped position the kept one it duplicates."""

    keep: list[int]
    exact: dict[int, int] = field(default_factory=dict)
    near: dict[int, int] = field(default_factory=dict)


def find_duplicates(
    texts: list[str], *, near: bool = True, threshold: float = 0.9, num_perm: int = 128, seed: int = 1
) -> DedupeResult:
    """First occurrence wins. Exact = same text after lowercasing and dropping punctuation/spacing;
    near = estimated Jaccard of word 3-shingles >= threshold (verified exactly before dropping)."""
    exact: dict[int, int] = {}
    first_by_hash: dict[str, int] = {}
    candidates: list[int] = []
    for i, text in enumerate(texts):
        digest = hashlib.blake2b(_normal_form(text).encode(), digest_size=16).hexdigest()
        if digest in first_by_hash:
            exact[i] = first_by_hash[digest]
        else:
            first_by_hash[digest] = i
            candidates.append(i)
    near_map: dict[int, int] = {}
    if near and len(candidates) > 1:
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        shingles: dict[int, set[str]] = {}
        for i in candidates:
            sh = _shingles(texts[i])
            shingles[i] = sh
            mh = MinHash(num_perm=num_perm, seed=seed)
            for s in sh:
                mh.update(s.encode("utf-8"))
            match = None
            for key in lsh.query(mh):
                j = int(key)
                inter = len(sh & shingles[j])
                union = len(sh | shingles[j]) or 1
                if inter / union >= threshold:
                    match = j
                    break
            if match is None:
                lsh.insert(str(i), mh)
            else:
                near_map[i] = match
    dropped = set(exact) | set(near_map)
    return DedupeResult(keep=[i for i in range(len(texts)) if i not in dropped], exact=exact, near=near_map)
