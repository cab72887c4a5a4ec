"""Fusion rules and the BM25 keyword index."""

import numpy as np
import pytest

from embedops.errors import InputError
from embedops.index.bm25 import KeywordIndex
from embedops.index.hybrid import fuse, minmax, rrf


def test_rrf_matches_formula():
    fused = dict(rrf([[("a", 9.0), ("b", 5.0)], [("b", 0.3), ("c", 0.2)]], rrf_k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61) and fused["c"] == pytest.approx(1 / 62)
    assert next(iter(dict(rrf([[("a", 1.0), ("b", 0.5)], [("b", 1.0), ("a", 0.5)]])))) == "a"  # tie: by key


def test_minmax_uses_score_gaps():
    dense = [("a", 0.90), ("b", 0.89), ("c", 0.10)]
    keyword = [("c", 20.0), ("b", 19.0), ("a", 1.0)]
    fused = minmax([dense, keyword])
    assert fused[0][0] == "b"  # near the top of both lists
    assert dict(fused)["a"] == pytest.approx(1.0)
    assert dict(minmax([[("x", 2.0), ("y", 2.0)]])) == {"x": 1.0, "y": 1.0}
    with pytest.raises(InputError, match="unknown fusion"):
        fuse([dense], "sum")


def test_keyword_index_stems_drops_stopwords_and_masks():
    texts = ["The cats are running in the garden", "A dog runs", "Quantum physics of particles", "the the the"]
    index = KeywordIndex.build([0, 1, 2, 3], texts, epoch=0, slot_count=4)
    top = index.search(["running cat"], 3)[0]
    assert [s for s, _ in top][:1] == [0] and {s for s, _ in top} == {0, 1}  # 'runs' stems like 'running'
    assert index.search(["the of a"], 3) == [[]]  # stopwords only
    masked = index.search(["running cat"], 3, mask=np.array([False, True, True, True]))[0]
    assert [s for s, _ in masked] == [1]


def test_keyword_index_round_trip(tmp_path):
    index = KeywordIndex.build([4, 7], ["alpha beta", "gamma delta"], epoch=2, slot_count=8)
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    assert loaded.matches(2, 8) and not loaded.matches(2, 9)
    assert loaded.search(["delta"], 2)[0][0][0] == 7


def test_a_collection_without_any_keyword_terms_reopens_and_searches(tmp_path, encoder):
    """Texts of only digits/stopwords leave BM25 no vocabulary: the collection must still open (found by fuzzing)."""
    from embedops.index import Collection

    col = Collection.create(tmp_path / "c", encoder)
    col.add([{"id": "a", "text": "0"}, {"id": "b", "text": "the of"}])
    col.close()
    again = Collection.open(tmp_path / "c", encoder=encoder)
    assert again.search("0", k=2, mode="keyword") == []
    assert {h.id for h in again.search("zero", k=2, mode="dense")} == {"a", "b"}
    again.close()
