"""Vector index: the FAISS + SQLite store (`VectorStore` of embedops.protocols), hybrid search, text collections."""

from embedops.index.background import BackgroundError
from embedops.index.base import Hit, IndexSpec, Record, VectorStore, spec_from_config
from embedops.index.collection import Collection
from embedops.index.faiss_store import FaissStore
from embedops.index.filters import parse_filter
from embedops.index.hybrid import DEFAULT_FUSION, fuse, minmax, rrf

__all__ = ["DEFAULT_FUSION", "BackgroundError", "Collection", "FaissStore", "Hit", "IndexSpec", "Record",
           "VectorStore", "fuse", "minmax", "parse_filter", "rrf", "spec_from_config"]
