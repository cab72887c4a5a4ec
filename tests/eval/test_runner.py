"""Real model on real data samples: STS correlation and retrieval on a SciFact sample."""

from __future__ import annotations

from embedops.data import load_beir, load_sts
from embedops.data.sts import StsPairs
from embedops.eval import evaluate_retrieval, evaluate_sts


def test_sts_sample_correlates_well(encoder, shared_data):
    pairs = load_sts(shared_data / "stsbenchmark", "test")
    sample = StsPairs(pairs.sentences1[:300], pairs.sentences2[:300], pairs.scores[:300])
    res = evaluate_sts(encoder, sample, use_cache=False)
    assert res["pairs"] == 300
    assert res["spearman"] > 0.75


def test_retrieval_on_a_scifact_sample_is_far_above_chance(encoder, small_beir):
    ds = load_beir(small_beir, "test")
    res = evaluate_retrieval(encoder, ds)
    assert res.metrics["ndcg@10"] > 0.6
    assert res.metrics["recall@100"] > 0.9
    assert res.info["documents"] == len(ds.corpus)
    assert res.info["truncated_inputs"] > 0  # SciFact abstracts often exceed 256 tokens: reported, not silent
    # The second run reads the embedding cache and must give identical numbers.
    again = evaluate_retrieval(encoder, ds)
    assert again.metrics == res.metrics


def test_chunked_retrieval_folds_chunks_back_to_documents(encoder, small_beir):
    ds = load_beir(small_beir, "test")
    res = evaluate_retrieval(encoder, ds, chunk_tokens=128, chunk_overlap=16)
    assert res.info["chunks"] > len(ds.corpus)  # long abstracts were split
    assert res.info["truncated_inputs"] == 0  # ...so nothing was cut
    assert res.metrics["ndcg@10"] > 0.6


def test_cache_hits_still_report_truncation(encoder, tmp_path, monkeypatch):
    from embedops.eval.cache import encode_cached

    monkeypatch.setenv("EMBEDOPS_CACHE", str(tmp_path))
    texts = ["short", "long text " * 300]
    before = encoder.truncated_count
    first = encode_cached(encoder, texts)
    assert encoder.truncated_count - before == 1
    second = encode_cached(encoder, texts)
    assert encoder.truncated_count - before == 2
    assert (first == second).all()
    assert len(list((tmp_path / "embeddings").glob("*.npz"))) == 1
