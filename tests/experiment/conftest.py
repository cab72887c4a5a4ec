"""A small simulated search world: queries with judged relevant documents and rankers of chosen quality."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from embedops.experiment import Arm, Experiment


@dataclass
class World:
    """Queries, qrels and a ranker factory: quality q adds q to a relevant document's score before Gaussian noise."""

    queries: list[str]
    docs: dict[str, list[str]]
    qrels: dict[str, dict[str, int]]

    def ranker(self, quality: float, name: str) -> Callable[[str], list[str]]:
        """A deterministic ranker: the same query always gets the same ranking (like a fixed model + index)."""
        cache: dict[str, list[str]] = {}

        def rank(query: str) -> list[str]:
            if query not in cache:
                rng = random.Random(f"{name}:{query}")
                rel = self.qrels[query]
                score = {d: (quality if d in rel else 0.0) + rng.gauss(0, 1) for d in self.docs[query]}
                cache[query] = sorted(self.docs[query], key=lambda d: -score[d])
            return cache[query]

        return rank


@pytest.fixture(scope="session")
def world() -> World:
    """200 queries over 30 candidate documents each, 1-3 relevant per query."""
    rng = random.Random(7)
    queries = [f"q{i}" for i in range(200)]
    docs = {q: [f"{q}-d{j}" for j in range(30)] for q in queries}
    qrels = {q: {f"{q}-d{j}": 1 for j in rng.sample(range(30), rng.randint(1, 3))} for q in queries}
    return World(queries, docs, qrels)


def _make_experiment(mode: str = "ab", name: str = "exp", **options) -> Experiment:
    return Experiment.new(name, Arm("base@v1", "docs_v1"), Arm("tuned@v2", "docs_v2"), mode=mode, **options)


@pytest.fixture(scope="session")
def make_experiment() -> Callable[..., Experiment]:
    """Build an experiment between two arms with distinct collections: make_experiment(mode, name, **options)."""
    return _make_experiment
