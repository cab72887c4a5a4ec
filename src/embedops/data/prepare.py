"""`prepare`: read, clean, drop empties, dedupe, chunk, and write a cleaned dataset plus a report of what changed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.data.beir import read_beir_corpus
from embedops.data.chunk import chunk_text
from embedops.data.clean import CleanOptions, clean_text
from embedops.data.dedupe import find_duplicates
from embedops.data.documents import duplicate_message, is_content_id
from embedops.data.outputs import atomic_output, remove_stale_temps
from embedops.data.readers import read_documents
from embedops.data.records import Document
from embedops.errors import InputError


@dataclass
class PrepareOptions:
    """What `prepare` does; defaults are the safe ones."""

    clean: CleanOptions = field(default_factory=CleanOptions)
    drop_empty: bool = False
    min_chars: int = 1
    dedupe: str = "near"  # none | exact | near
    near_threshold: float = 0.9
    chunk_tokens: int | None = None
    chunk_overlap: int = 32
    text_field: str | None = None
    id_field: str | None = None


@dataclass
class PrepareReport:
    """Counts and examples of every change, written next to the output."""

    source: str
    output: str
    read: int = 0
    changed_by_cleaning: int = 0
    dropped_empty: list[str] = field(default_factory=list)
    dropped_exact_duplicates: dict[str, str] = field(default_factory=dict)
    dropped_near_duplicates: dict[str, str] = field(default_factory=dict)
    chunked_documents: int = 0
    renamed_chunks: dict[str, str] = field(default_factory=dict)
    removed_temp_files: list[str] = field(default_factory=list)
    written: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (duplicate maps: dropped id -> kept id)."""
        return {
            "source": self.source,
            "output": self.output,
            "read": self.read,
            "changed_by_cleaning": self.changed_by_cleaning,
            "dropped_empty": len(self.dropped_empty),
            "dropped_empty_ids": self.dropped_empty[:50],
            "dropped_exact_duplicates": len(self.dropped_exact_duplicates),
            "dropped_near_duplicates": len(self.dropped_near_duplicates),
            "duplicate_examples": dict(list({**self.dropped_exact_duplicates,
                                             **self.dropped_near_duplicates}.items())[:50]),
            "chunked_documents": self.chunked_documents,
            "renamed_chunks": dict(list(self.renamed_chunks.items())[:50]),
            "removed_temp_files": self.removed_temp_files,
            "written": self.written,
            "seconds": round(self.seconds, 2),
        }


def read_any(path: Path, options: PrepareOptions) -> list[Document]:
    """Documents from a file (JSONL/CSV/Parquet) or a BEIR folder's corpus."""
    if not path.exists():
        raise InputError("input not found", where=str(path))
    if path.is_dir():
        for name in ("corpus.jsonl", "corpus.jsonl.gz"):
            if (path / name).is_file():
                return list(read_beir_corpus(path / name, allow_empty=True).values())
        raise InputError("folder has no corpus.jsonl (expected a BEIR folder or a data file)", where=str(path))
    return read_documents(path, text_field=options.text_field, id_field=options.id_field, allow_empty=True)


def prepare(source: str | Path, output: str | Path, options: PrepareOptions | None = None,
            tokenizer=None, progress=None) -> PrepareReport:
    """Run the preparation pipeline; the output JSONL and `<output>.report.json` appear only on success."""
    opts = options or PrepareOptions()
    started = time.perf_counter()
    src, out = Path(source), Path(output)
    # A killed earlier run left its temp files behind: nobody holds their locks any more.
    removed = [p.name for p in remove_stale_temps(out)]
    docs = read_any(src, opts)
    report = PrepareReport(source=str(src), output=str(out), read=len(docs), removed_temp_files=removed)
    seen: dict[str, Document] = {}
    kept: list[Document] = []
    for doc in docs:
        first = seen.get(doc.id)
        if first is not None:
            # The same text without an id twice: an exact duplicate, which dedupe drops (and reports).
            if opts.dedupe != "none" and is_content_id(doc) and (doc.title, doc.text) == (first.title, first.text):
                report.dropped_exact_duplicates[f"{doc.id} ({doc.source})"] = first.id
                continue
            raise InputError(duplicate_message(doc, first.source), where=doc.source)
        seen[doc.id] = doc
        text, title = clean_text(doc.text, opts.clean), clean_text(doc.title, opts.clean) if doc.title else ""
        if text != doc.text or title != doc.title:
            report.changed_by_cleaning += 1
        if len((title + " " + text).strip()) < opts.min_chars:
            if not opts.drop_empty:
                raise InputError("empty or whitespace-only text after cleaning", where=doc.source,
                                 hint="pass --drop-empty to drop such records and list them in the report")
            report.dropped_empty.append(doc.id)
            continue
        kept.append(Document(id=doc.id, text=text, title=title, metadata=doc.metadata, source=doc.source))
        if progress is not None:
            progress()
    if opts.dedupe != "none":
        result = find_duplicates([d.full_text for d in kept], near=opts.dedupe == "near",
                                 threshold=opts.near_threshold)
        for i, j in result.exact.items():
            report.dropped_exact_duplicates[kept[i].id] = kept[j].id
        for i, j in result.near.items():
            report.dropped_near_duplicates[kept[i].id] = kept[j].id
        kept = [kept[i] for i in result.keep]
    records = _records(kept, opts, tokenizer, report, taken=set(seen))
    with atomic_output(out) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    report.written = len(records)
    report.seconds = time.perf_counter() - started
    with atomic_output(report_path(out)) as fh:
        fh.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n")
    return report


def _records(kept: list[Document], opts: PrepareOptions, tokenizer, report: PrepareReport,
             taken: set[str]) -> list[dict[str, Any]]:
    """Output rows; a chunk id never equals another id of the file (`a#0` beside a document `a#0` gets `a#0-1`)."""
    records: list[dict[str, Any]] = []
    for doc in kept:
        if opts.chunk_tokens:
            if tokenizer is None:
                raise InputError("chunking needs a tokenizer (load the model first)")
            pieces = chunk_text(doc.full_text, tokenizer, max_tokens=opts.chunk_tokens, overlap=opts.chunk_overlap)
            if len(pieces) > 1:
                report.chunked_documents += 1
                for i, piece in enumerate(pieces):
                    chunk_id = wanted = f"{doc.id}#{i}"
                    suffix = 0
                    while chunk_id in taken:
                        suffix += 1
                        chunk_id = f"{wanted}-{suffix}"
                    if suffix:
                        report.renamed_chunks[wanted] = chunk_id
                    taken.add(chunk_id)
                    records.append({"_id": chunk_id, "title": "", "text": piece,
                                    "metadata": {**doc.metadata, "parent_id": doc.id, "chunk": i}})
                continue
        records.append(doc.to_json())
    return records


def report_path(output: Path) -> Path:
    """Where the report of `output` goes."""
    return output.with_name(output.name + ".report.json")
