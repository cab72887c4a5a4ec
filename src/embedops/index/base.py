"""The index specification; `Hit`, `Record`, `VectorStore` and `Filter` are the ground-floor contracts of
`embedops.protocols`, re-exported so `from embedops.index import Hit` keeps working."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from embedops.protocols import Filter, Hit, Record, VectorStore

__all__ = ["Filter", "Hit", "IndexKind", "IndexSpec", "Record", "VectorPrecision", "VectorStore", "spec_from_config"]

IndexKind = Literal["auto", "flat", "hnsw", "ivfpq"]
VectorPrecision = Literal["float32", "int8", "binary"]


@dataclass(frozen=True)
class IndexSpec:
    """How a collection's FAISS index is built; stored in the collection and reported by `info()`.

    `kind="auto"` is exact `Flat` search up to `hnsw_threshold` live vectors and HNSW above it (exact search
    costs O(n) per query; below ~20k vectors it is fast enough and needs no tuning). `vectors` selects the
    in-memory codes: float32, int8 (scalar quantiser) or binary (sign bits, hamming search); the quantised kinds
    rescore their top `k * oversample` candidates with the float vectors kept on disk.
    """

    kind: IndexKind = "auto"
    vectors: VectorPrecision = "float32"
    hnsw_threshold: int = 20_000
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    ivf_nlist: int | None = None
    pq_m: int | None = None
    nprobe: int = 16
    oversample: int | None = None

    def __post_init__(self) -> None:
        from embedops.errors import InputError

        if self.kind not in ("auto", "flat", "hnsw", "ivfpq"):
            raise InputError(f"unknown index kind {self.kind!r}; use auto, flat, hnsw or ivfpq", where="index spec")
        if self.vectors not in ("float32", "int8", "binary"):
            raise InputError(f"unknown vectors {self.vectors!r}; use float32, int8 or binary", where="index spec")
        for name in ("hnsw_threshold", "hnsw_m", "ef_construction", "ef_search", "nprobe"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}", where="index spec")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexSpec:
        """Inverse of as_dict; unknown keys are ignored so old collections still open."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def rescore_oversample(self) -> int:
        """Candidates per wanted hit for the quantised kinds (binary codes lose more, so look further)."""
        if self.oversample:
            return self.oversample
        return {"float32": 1, "int8": 4, "binary": 20}[self.vectors]


def spec_from_config(config: Any) -> IndexSpec:
    """An IndexSpec from the `index:` section of embedops.yaml (IndexConfig)."""
    fields = {k: getattr(config, k) for k in IndexSpec.__dataclass_fields__ if hasattr(config, k)}
    return IndexSpec(**fields)
