"""End-to-end evaluations: encode a test collection, search exactly, score. Used by the CLI and Project."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from embedops.data.beir import BeirDataset, corpus_fingerprint
from embedops.data.sts import StsPairs
from embedops.eval.cache import encode_cached_with_usage
from embedops.eval.retrieval import DEFAULT_METRICS, RetrievalResult, build_run, evaluate_run, exact_search
from embedops.eval.sts import sts_scores


def retrieve_exact(
    encoder,
    dataset: BeirDataset,
    *,
    k: int = 100,
    batch_size: int = 32,
    use_cache: bool = True,
    show_progress: bool = False,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 32,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Embed corpus and queries, exact top-k search; returns the run and facts about it.

    With `chunk_tokens`, long documents are split into overlapping chunks that are searched separately, and a
    document scores as its best chunk (nothing past the model's max tokens is lost to truncation).
    """
    started = time.perf_counter()
    doc_ids = list(dataset.corpus)
    # MTEB's convention for BEIR: document = title + " " + text.
    doc_texts = [dataset.corpus[d].full_text for d in doc_ids]
    owners = None
    if chunk_tokens:
        from embedops.data.chunk import chunk_text

        chunked_ids, chunked_texts, owners = [], [], []
        for d, text in zip(doc_ids, doc_texts, strict=True):
            for piece in chunk_text(text, encoder.tokenizer, max_tokens=chunk_tokens - 2, overlap=chunk_overlap):
                chunked_ids.append(d)
                chunked_texts.append(piece)
        owners = chunked_ids
        doc_texts = chunked_texts
    query_ids = list(dataset.queries)
    query_texts = [dataset.queries[q] for q in query_ids]
    t0 = time.perf_counter()
    # This call's own usage (never a difference of the encoder's shared counter, which other threads move too).
    doc_emb, doc_usage = encode_cached_with_usage(encoder, doc_texts, kind="document", batch_size=batch_size,
                                                  show_progress=show_progress, use_cache=use_cache)
    doc_seconds = time.perf_counter() - t0
    query_emb, query_usage = encode_cached_with_usage(encoder, query_texts, kind="query", batch_size=batch_size,
                                                      show_progress=show_progress, use_cache=use_cache)
    if owners is None:
        scores, idx = exact_search(query_emb, doc_emb, k)
        run = build_run(query_ids, doc_ids, scores, idx)
    else:
        # Search deeper among chunks so that k distinct documents survive the fold.
        scores, idx = exact_search(query_emb, doc_emb, min(len(owners), k * 4))
        run = {}
        for i, qid in enumerate(query_ids):
            best: dict[str, float] = {}
            for j, sc in zip(idx[i], scores[i], strict=True):
                d = owners[j]
                if d not in best:
                    best[d] = float(sc)
            run[qid] = dict(list(best.items())[:k])
    info = {
        "model": encoder.name,
        "dataset": dataset.name,
        "split": dataset.split,
        "documents": len(doc_ids),
        "corpus_fingerprint": corpus_fingerprint(doc_ids),
        "chunks": len(owners) if owners is not None else None,
        "queries": len(query_ids),
        "k": k,
        "truncated_inputs": doc_usage.truncated + query_usage.truncated,
        "max_tokens": encoder.max_tokens,
        "corpus_encode_seconds": round(doc_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    return run, info


def evaluate_retrieval(
    encoder,
    dataset: BeirDataset,
    *,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    k: int = 100,
    batch_size: int = 32,
    use_cache: bool = True,
    show_progress: bool = False,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 32,
) -> RetrievalResult:
    """Dense retrieval with exact search, scored with trec_eval metrics."""
    depth = max([k] + [int(m.split("@")[1]) for m in metrics if "@" in m])
    run, info = retrieve_exact(encoder, dataset, k=depth, batch_size=batch_size, use_cache=use_cache,
                               show_progress=show_progress, chunk_tokens=chunk_tokens,
                               chunk_overlap=chunk_overlap)
    result = evaluate_run(dataset.qrels, run, metrics)
    result.info = info
    return result


def evaluate_sts(encoder, pairs: StsPairs, *, batch_size: int = 32, use_cache: bool = True,
                 show_progress: bool = False) -> dict[str, Any]:
    """Spearman/Pearson of cosine similarity on STS pairs."""
    started = time.perf_counter()
    uniq = list(dict.fromkeys(pairs.sentences1 + pairs.sentences2))
    emb, usage = encode_cached_with_usage(encoder, uniq, batch_size=batch_size, show_progress=show_progress,
                                          use_cache=use_cache)
    pos = {s: i for i, s in enumerate(uniq)}
    e1 = emb[np.fromiter((pos[s] for s in pairs.sentences1), dtype=np.int64)]
    e2 = emb[np.fromiter((pos[s] for s in pairs.sentences2), dtype=np.int64)]
    out: dict[str, Any] = dict(sts_scores(e1, e2, pairs.scores))
    out.update({"model": encoder.name, "wall_seconds": round(time.perf_counter() - started, 2),
                "split": pairs.split, "truncated_inputs": usage.truncated})
    return out
