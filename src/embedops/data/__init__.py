"""Data: readers (JSONL, CSV, Parquet, BEIR, STS), cleaning, dedupe, chunking, preparation."""

from embedops.data.beir import BeirDataset, corpus_fingerprint, load_beir, sample_beir
from embedops.data.documents import as_documents, content_id, document_from_row
from embedops.data.readers import iter_rows, read_documents
from embedops.data.records import Document, Qrels
from embedops.data.sts import StsPairs, load_sts

__all__ = [
    "BeirDataset",
    "Document",
    "Qrels",
    "StsPairs",
    "as_documents",
    "content_id",
    "corpus_fingerprint",
    "document_from_row",
    "iter_rows",
    "load_beir",
    "load_sts",
    "read_documents",
    "sample_beir",
]
