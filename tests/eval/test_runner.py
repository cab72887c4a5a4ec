"""Real model on real data samples: STS correlation and retrieval on a SciFact sample."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from embedops.data import load_beir, load_sts
from embedops.data.sts import StsPairs
from embedops.eval import evaluate_retrieval, evaluate_sts, retrieve_exact
from embedops.eval.cache import encode_cached, encode_cached_with_usage, model_fingerprint


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


def test_full_stsb_test_reproduces_the_published_spearman(encoder, shared_data):
    res = evaluate_sts(encoder, load_sts(shared_data / "stsbenchmark", "test"))
    assert res["pairs"] == 1379 and res["split"] == "test"
    assert res["spearman"] == pytest.approx(0.8203246731235654, abs=5e-5)  # MTEB's all-MiniLM-L6-v2: 82.03
    assert res["truncated_inputs"] == 0


def test_concurrent_evaluations_report_their_own_truncations(encoder, shared_data, small_beir):
    # One shared encoder, two threads: retrieval over long SciFact abstracts (most are cut at 256 tokens) and STS
    # over short sentences (none is). Each must report its own count, not whatever the encoder counted meanwhile.
    ds = load_beir(small_beir, "test")
    pairs = load_sts(shared_data / "stsbenchmark", "test")
    short = StsPairs(pairs.sentences1[:100], pairs.sentences2[:100], pairs.scores[:100])
    expected = retrieve_exact(encoder, ds, use_cache=False)[1]["truncated_inputs"]
    assert expected > 50
    retrieval_counts: list[int] = []
    sts_counts: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()
    start = threading.Barrier(2)

    def retrieval() -> None:
        try:
            start.wait()
            retrieval_counts.append(retrieve_exact(encoder, ds, use_cache=False)[1]["truncated_inputs"])
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            done.set()

    def sts() -> None:
        try:
            start.wait()
            while not done.is_set() or len(sts_counts) < 2:
                sts_counts.append(evaluate_sts(encoder, short, use_cache=False)["truncated_inputs"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=retrieval), threading.Thread(target=sts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert retrieval_counts == [expected]
    assert len(sts_counts) >= 2 and set(sts_counts) == {0}, sts_counts


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "embeddings").glob("*.npz"))


def test_cache_hits_report_the_recorded_usage_without_touching_the_encoder(encoder, small_beir, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("EMBEDOPS_CACHE", str(tmp_path))
    abstract = max((d.full_text for d in load_beir(small_beir, "test").corpus.values()), key=len)
    texts = ["A plane is taking off.", abstract, "An air plane is taking off."]
    first, usage = encode_cached_with_usage(encoder, texts)
    assert (usage.inputs, usage.truncated, usage.truncated_indices) == (3, 1, (1,))
    state = _encoder_state(encoder)
    second, again = encode_cached_with_usage(encoder, texts)
    assert _encoder_state(encoder) == state  # a hit reads the cache only
    assert (again.inputs, again.tokens, again.truncated, again.truncated_indices) == \
        (usage.inputs, usage.tokens, usage.truncated, usage.truncated_indices)
    assert np.array_equal(first, second)
    assert np.array_equal(encode_cached(encoder, texts), first)  # the vectors-only face reads the same entry
    assert len(_cache_files(tmp_path)) == 1


def _encoder_state(encoder) -> dict:
    stats = getattr(encoder, "stats", None)
    return {"truncated": getattr(encoder, "truncated_count", None),
            "stats": stats.as_dict() if hasattr(stats, "as_dict") else repr(stats)}


def test_a_copied_model_folder_reuses_the_cache(encoder, shared_data, tmp_path, monkeypatch):
    from embedops.models import bundled_default_path, load_encoder

    monkeypatch.setenv("EMBEDOPS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "moved" / "all-MiniLM-L6-v2"
    shutil.copytree(bundled_default_path(), copy)
    moved = load_encoder(str(copy))
    texts = load_sts(shared_data / "stsbenchmark", "dev").sentences1[:40]
    original = encode_cached(encoder, texts)
    assert len(_cache_files(tmp_path / "cache")) == 1
    assert model_fingerprint(moved) == model_fingerprint(encoder)
    from_copy = encode_cached(moved, texts)
    assert len(_cache_files(tmp_path / "cache")) == 1  # the copy hit the entry the original wrote
    assert np.array_equal(from_copy, original)
