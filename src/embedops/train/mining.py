"""Hard-negative mining with the current model: near misses from the corpus, never a known-relevant document.

The corpus embeddings come from `encode_cached`, so mining with the model that was just evaluated costs
only the queries. Candidates scoring above `relative_margin` x the positive's score are dropped as probable
unlabelled positives (NV-Retriever's "TopK-PercPos" filter), which matters for sparse qrels like BEIR's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedops.errors import InputError
from embedops.eval.cache import encode_cached
from embedops.eval.retrieval import exact_search
from embedops.train.pairs import TrainingSet


@dataclass(frozen=True)
class MiningStats:
    """What mining did: examples served, negatives per example, candidates filtered as likely positives."""

    examples: int
    negatives_per_example: int
    filtered_as_positive: int
    random_fallback: int
    corpus_size: int
    seconds: float

    def as_dict(self) -> dict:
        """JSON-friendly form."""
        return dict(self.__dict__)


def mine_hard_negatives(
    encoder,
    train: TrainingSet,
    *,
    num_negatives: int = 1,
    corpus_texts: list[str] | None = None,
    depth: int = 50,
    skip_top: int = 0,
    relative_margin: float = 0.95,
    use_cache: bool = True,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[TrainingSet, MiningStats]:
    """Add `num_negatives` mined negatives per example (replacing any given); examples with none are dropped.

    The corpus is `corpus_texts`, else the training set's own corpus (BEIR), else all its positives.
    A candidate is skipped when it is the example's positive, relevant to its query in the qrels, or
    scores above `relative_margin` x the positive's score. When every near miss is filtered (the model
    ranks the positive far down: the examples it most needs), the negative is a random non-relevant
    document instead of dropping the example.
    """
    import time

    started = time.perf_counter()
    if num_negatives < 1:
        raise InputError("num_negatives must be at least 1")
    if corpus_texts is None:
        corpus_texts = ([d.full_text for d in train.corpus.values()] if train.corpus
                        else list(dict.fromkeys(train.positives)))
    if len(corpus_texts) < 2:
        raise InputError("hard-negative mining needs a corpus of at least 2 documents")
    corpus_ids = list(train.corpus) if train.corpus and len(train.corpus) == len(corpus_texts) else []
    doc_emb = encode_cached(encoder, corpus_texts, kind="document", batch_size=batch_size, use_cache=use_cache)
    uniq_q = list(dict.fromkeys(train.anchors))
    q_emb = encode_cached(encoder, uniq_q, kind="query", batch_size=batch_size, use_cache=use_cache)
    q_row = {q: i for i, q in enumerate(uniq_q)}
    uniq_p = list(dict.fromkeys(train.positives))
    p_emb = encode_cached(encoder, uniq_p, kind="document", batch_size=batch_size, use_cache=use_cache)
    p_row = {p: i for i, p in enumerate(uniq_p)}

    k = min(depth + skip_top, len(corpus_texts))
    scores, idx = exact_search(q_emb, doc_emb, k)
    # Every positive text of a query (all its rows) is off limits, not only this row's positive.
    positives_of: dict[str, set[str]] = {}
    for a, p in zip(train.anchors, train.positives, strict=True):
        positives_of.setdefault(a, set()).add(p)
    relevant_ids: dict[str, set[str]] = {}
    if train.query_ids and train.qrels:
        for a, qid in zip(train.anchors, train.query_ids, strict=True):
            relevant_ids[a] = {d for d, s in train.qrels.get(qid, {}).items() if s > 0}

    rng = np.random.default_rng(seed)
    keep, new_negs = [], []
    filtered = without = 0
    for i, (a, p) in enumerate(zip(train.anchors, train.positives, strict=True)):
        qi = q_row[a]
        pos_score = float(q_emb[qi] @ p_emb[p_row[p]])
        chosen: list[str] = []
        for rank in range(skip_top, k):
            j = int(idx[qi, rank])
            text = corpus_texts[j]
            if text in positives_of[a] or (corpus_ids and corpus_ids[j] in relevant_ids.get(a, ())):
                continue
            if float(scores[qi, rank]) > relative_margin * pos_score:
                filtered += 1
                continue
            if text not in chosen:
                chosen.append(text)
            if len(chosen) == num_negatives:
                break
        if len(chosen) < num_negatives:
            without += 1
            for j in rng.permutation(len(corpus_texts))[: 20 * num_negatives + 20]:
                text = corpus_texts[int(j)]
                relevant = corpus_ids and corpus_ids[int(j)] in relevant_ids.get(a, ())
                if text not in positives_of[a] and not relevant and text not in chosen:
                    chosen.append(text)
                if len(chosen) == num_negatives:
                    break
            if len(chosen) < num_negatives:
                continue
        keep.append(i)
        new_negs.append(chosen)
    out = train.subset(keep)
    out.negatives = new_negs
    stats = MiningStats(examples=len(keep), negatives_per_example=num_negatives, filtered_as_positive=filtered,
                        random_fallback=without, corpus_size=len(corpus_texts),
                        seconds=round(time.perf_counter() - started, 2))
    if not keep:
        raise InputError("hard-negative mining found no usable negative for any example",
                         hint="lower relative_margin or give a larger corpus")
    return out, stats
