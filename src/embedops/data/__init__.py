"""Data: readers (JSONL, CSV, Parquet, BEIR, STS), cleaning, dedupe, chunking, preparation."""

from embedops.data.beir import BeirDataset, corpus_fingerprint, load_beir, sample_beir
from embedops.data.readers import iter_rows, read_documents
from embedops.data.records import Document, Qrels
from embedops.data.sts import StsPairs, load_sts

__all__ = [
    "BeirDataset",
    "Document",
    "Qrels",
    "StsPairs",
    "corpus_fingerprint",
    "iter_rows",
    "load_beir",
    "load_sts",
    "read_documents",
    "sample_beir",
]
