"""`prepare` end to end: cleaned output plus a report, nothing written on bad input."""

from __future__ import annotations

import json

import pytest

from embedops.data.prepare import PrepareOptions, prepare, report_path
from embedops.errors import InputError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_prepare_cleans_dedupes_and_reports(tmp_path):
    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    _write(src, [
        {"id": "1", "text": "<p>Vector search <b>finds</b> meaning.</p>"},
        {"id": "2", "text": "Vector search finds meaning."},
        {"id": "3", "text": "   "},
        {"id": "4", "text": "Another document entirely."},
    ])
    report = prepare(src, out, PrepareOptions(drop_empty=True))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["_id"] for r in rows] == ["1", "4"]
    assert rows[0]["text"] == "Vector search finds meaning."
    saved = json.loads(report_path(out).read_text())
    assert saved["read"] == 4 and saved["written"] == 2
    assert saved["dropped_empty"] == 1 and saved["dropped_exact_duplicates"] == 1
    assert report.dropped_exact_duplicates == {"2": "1"}


def test_empty_text_fails_without_writing(tmp_path):
    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    _write(src, [{"id": "1", "text": "fine"}, {"id": "2", "text": "<p> </p>"}])
    with pytest.raises(InputError, match="empty") as exc:
        prepare(src, out)
    assert f"{src}:2" in str(exc.value)
    assert not out.exists() and not report_path(out).exists()
    assert list(tmp_path.iterdir()) == [src]


def test_chunking_long_documents(tmp_path, encoder):
    src, out = tmp_path / "raw.jsonl", tmp_path / "chunks.jsonl"
    _write(src, [{"id": "long", "text": " ".join(["alpha beta gamma delta"] * 100)}, {"id": "s", "text": "short"}])
    report = prepare(src, out, PrepareOptions(dedupe="none", chunk_tokens=64, chunk_overlap=8),
                     tokenizer=encoder.tokenizer)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.chunked_documents == 1
    assert rows[0]["_id"] == "long#0" and rows[0]["metadata"]["parent_id"] == "long"
    assert rows[-1]["_id"] == "s"


def test_outputs_get_ordinary_permissions(tmp_path):
    import os
    import stat

    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    _write(src, [{"id": "1", "text": "fine"}])
    prepare(src, out)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
