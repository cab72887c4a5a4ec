"""Hard-negative mining with the real default model on a tiny BEIR folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.errors import InputError
from embedops.models import load_encoder
from embedops.train.mining import mine_hard_negatives
from embedops.train.pairs import pairs_from_beir

from .test_pairs import tiny_beir


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_negatives_are_never_relevant(tmp_path: Path, encoder) -> None:
    folder = tiny_beir(tmp_path / "beir")
    train = pairs_from_beir(folder, "train")
    relevant = {q: {train.corpus[d].full_text for d in rel} for q, rel in train.qrels.items()}
    mined, stats = mine_hard_negatives(encoder, train, num_negatives=2, relative_margin=1.0, use_cache=False)
    assert stats.examples == 3 and mined.num_negatives == 2 and stats.corpus_size == 6
    for qid, negs in zip(mined.query_ids, mined.negatives, strict=True):
        assert not set(negs) & relevant[qid]  # q2's other relevant doc (d5) is never its negative
        assert len(set(negs)) == 2
    # The hardest admissible negative for "what lowers cholesterol" is not a sleep or vitamin text.
    q2 = mined.query_ids.index("q2")
    assert "Sleep" not in mined.negatives[q2][0]


def test_margin_filter_falls_back_to_random_negative(tmp_path: Path, encoder) -> None:
    train = pairs_from_beir(tiny_beir(tmp_path / "beir"), "train")
    # A margin of 0 filters every candidate scoring above 0: the fallback still keeps each example.
    mined, stats = mine_hard_negatives(encoder, train, relative_margin=0.0, use_cache=False)
    assert stats.examples == 3 and stats.filtered_as_positive > 0 and stats.random_fallback >= 1
    with pytest.raises(InputError, match="at least 1"):
        mine_hard_negatives(encoder, train, num_negatives=0)
