"""FAISS indexes by spec: exact Flat, HNSW, IVF-PQ, int8 (scalar quantiser) and binary codes.

All float indexes use inner product (cosine for the normalised vectors encoders return). Binary codes are the sign
bits of each component (sentence-transformers' `ubinary` convention), searched by hamming distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedops._optional import require
from embedops.errors import InputError
from embedops.index.base import IndexSpec

# IVF-PQ needs enough points to train both the coarse clustering and 256 PQ centroids per sub-quantiser.
IVFPQ_MIN_TRAIN = 1_000


def faiss_module():
    """Import faiss or name the extra to install."""
    return require("faiss", "index")


@dataclass(frozen=True)
class Plan:
    """What is actually built for a spec at a given size: effective kind, factory string, binary or not."""

    kind: str
    factory: str
    binary: bool
    rescore: int
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        """Plain dict for manifests and info()."""
        return {"kind": self.kind, "factory": self.factory, "binary": self.binary, "rescore": self.rescore,
                "note": self.note}


def plan_index(spec: IndexSpec, dimension: int, count: int) -> Plan:
    """Choose the index for `count` live vectors: auto means Flat up to hnsw_threshold, HNSW above."""
    kind = spec.kind
    note = ""
    if kind == "auto":
        kind = "hnsw" if count > spec.hnsw_threshold else "flat"
    if kind == "ivfpq":
        if spec.vectors != "float32":
            raise InputError(f"IVF-PQ already compresses vectors; it cannot be combined with {spec.vectors} codes",
                             where="index spec")
        if count < IVFPQ_MIN_TRAIN:
            note = f"ivfpq needs >= {IVFPQ_MIN_TRAIN} vectors to train; exact flat search until then"
            kind = "flat"
        else:
            nlist = spec.ivf_nlist or max(1, min(int(4 * math.sqrt(count)), count // 39))
            m = spec.pq_m or _pq_m(dimension)
            if dimension % m:
                raise InputError(f"pq_m={m} must divide the dimension {dimension}", where="index spec")
            return Plan("ivfpq", f"IVF{nlist},PQ{m}", False, spec.oversample or 4, note)
    if spec.vectors == "binary":
        if dimension % 8:
            raise InputError(f"binary codes need a dimension divisible by 8, got {dimension}", where="index spec")
        factory = f"BHNSW{spec.hnsw_m}" if kind == "hnsw" else "BFlat"
        return Plan(kind, factory, True, spec.rescore_oversample, note)
    code = "SQ8" if spec.vectors == "int8" else "Flat"
    factory = f"HNSW{spec.hnsw_m},{code}" if kind == "hnsw" else code
    return Plan(kind, factory, False, spec.rescore_oversample, note)


def _pq_m(dimension: int) -> int:
    # 8 dimensions per sub-quantiser (48 bytes for 384-d); fall back to any divisor when 8 does not divide.
    for per in (8, 4, 6, 12, 16, 2, 3, 1):
        if dimension % per == 0:
            return dimension // per
    return 1


def to_bits(vectors: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte (big-endian within a byte, like numpy.packbits)."""
    return np.packbits(vectors > 0, axis=1)


class AnnIndex:
    """One FAISS index plus the knowledge of how to search it (search parameters, selectors, codes)."""

    def __init__(self, plan: Plan, dimension: int, spec: IndexSpec, index=None):
        self.faiss = faiss_module()
        self.plan = plan
        self.dimension = dimension
        self.spec = spec
        if index is None:
            if plan.binary:
                index = self.faiss.index_binary_factory(dimension, plan.factory)
            else:
                index = self.faiss.index_factory(dimension, plan.factory, self.faiss.METRIC_INNER_PRODUCT)
            if plan.kind == "hnsw":
                index.hnsw.efConstruction = spec.ef_construction
        self.index = index
        # How many vectors the quantiser was fitted on (a loaded index counts as trained on all it holds).
        self.trained_on = int(index.ntotal) if index.is_trained else 0
        self._ef = None
        if plan.kind == "hnsw":
            self.set_ef(spec.ef_search)
        if plan.kind == "ivfpq":
            self.index.nprobe = spec.nprobe

    @property
    def ntotal(self) -> int:
        """Vectors in the index."""
        return int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        """Whether the index can take vectors."""
        return bool(self.index.is_trained)

    def set_ef(self, ef: int) -> None:
        """HNSW efSearch for the next searches (kept on the index: a parameter object per call costs time)."""
        if ef != self._ef:
            self.index.hnsw.efSearch = int(ef)
            self._ef = ef

    def train(self, vectors: np.ndarray) -> None:
        """Train quantisers (IVF-PQ, SQ8) on a sample; no-op for indexes that need none."""
        if self.plan.binary or self.index.is_trained:
            return
        sample = vectors
        if len(sample) > 100_000:
            rng = np.random.default_rng(0)
            sample = vectors[np.sort(rng.choice(len(vectors), 100_000, replace=False))]
        self.index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self.trained_on = len(vectors)

    @property
    def needs_training_data(self) -> bool:
        """Whether the codes depend on a trained quantiser (SQ8, IVF-PQ)."""
        return not self.plan.binary and ("SQ" in self.plan.factory or "PQ" in self.plan.factory)

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors; their positions continue from ntotal."""
        if len(vectors) == 0:
            return
        if not self.index.is_trained:
            self.train(vectors)
        codes = to_bits(vectors) if self.plan.binary else np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add(codes)

    def search(self, queries: np.ndarray, k: int, selector=None, ef: int | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search; returns (scores or negative hamming distances, positions), -1 where empty."""
        f = self.faiss
        x = to_bits(queries) if self.plan.binary else queries
        k = max(1, min(k, max(self.ntotal, 1)))
        params = None
        kind = self.plan.kind
        if kind == "hnsw":
            if selector is not None or (ef is not None and ef != self._ef):
                params = f.SearchParametersHNSW(efSearch=int(ef or self._ef), sel=selector)
        elif kind == "ivfpq":
            if selector is not None or nprobe is not None:
                params = f.SearchParametersIVF(nprobe=int(nprobe or self.spec.nprobe), sel=selector)
        elif selector is not None:
            params = f.SearchParameters(sel=selector)
        dist, pos = self.index.search(x, k) if params is None else self.index.search(x, k, params=params)
        if self.plan.binary:
            # Hamming: smaller is closer; negate so every index reports "higher is better".
            dist = -dist.astype(np.float32)
        return dist, pos

    def bytes_per_vector(self) -> float:
        """Serialised index size divided by the vector count (close to its resident memory)."""
        if self.ntotal == 0:
            return 0.0
        return len(self.serialize()) / self.ntotal

    def serialize(self) -> bytes:
        """The index as bytes (FAISS' own format)."""
        f = self.faiss
        data = f.serialize_index_binary(self.index) if self.plan.binary else f.serialize_index(self.index)
        return bytes(data)

    def write(self, path: Path) -> None:
        """Write to `path` (the caller renames it into place)."""
        f = self.faiss
        if self.plan.binary:
            f.write_index_binary(self.index, str(path))
        else:
            f.write_index(self.index, str(path))

    @classmethod
    def read(cls, path: Path, plan: Plan, dimension: int, spec: IndexSpec) -> AnnIndex:
        """Read an index file; a damaged file is an InputError naming it."""
        f = faiss_module()
        try:
            index = f.read_index_binary(str(path)) if plan.binary else f.read_index(str(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise InputError(f"the FAISS index file is corrupted or truncated ({first[:200]})", where=str(path),
                             hint="Collection.open(path, repair=True) or `embedops index rebuild` rebuilds it "
                                  "from the stored vectors; the SQLite data was not touched") from exc
        if index.d != dimension:
            raise InputError(f"the FAISS index has dimension {index.d}, the collection {dimension}",
                             where=str(path), hint="rebuild the index (repair=True)")
        return cls(plan, dimension, spec, index=index)
