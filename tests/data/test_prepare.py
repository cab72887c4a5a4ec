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


def test_chunk_ids_never_collide_with_other_ids(tmp_path, encoder):
    # Issue 9: document "a" chunked beside a document "a#0" gave two records with the id "a#0".
    src, out = tmp_path / "raw.jsonl", tmp_path / "chunks.jsonl"
    _write(src, [{"id": "a", "text": " ".join(["alpha beta gamma delta"] * 60)},
                 {"id": "a#0", "text": "I am a document whose id looks like a chunk id."},
                 {"id": "a#0-1", "text": "So am I, a second one."}])
    report = prepare(src, out, PrepareOptions(dedupe="none", chunk_tokens=64, chunk_overlap=8),
                     tokenizer=encoder.tokenizer)
    ids = [json.loads(line)["_id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) and "a#0" in ids and "a#0-1" in ids
    assert ids[:3] == ["a#0-2", "a#1", "a#2"]
    assert report.renamed_chunks == {"a#0": "a#0-2"}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["metadata"]["parent_id"] for r in rows if "parent_id" in r["metadata"]} == {"a"}


def test_a_killed_runs_temp_files_are_removed_by_the_next_run(tmp_path):
    # Issue 9: a killed prepare left its *.tmp file behind forever.
    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    _write(src, [{"id": "1", "text": "fine"}])
    stale = [tmp_path / ".clean.jsonl.k1ll3d.tmp", tmp_path / ".clean.jsonl.report.json.x.tmp"]
    for p in stale:
        p.write_text("half a file")
    other = tmp_path / ".other.jsonl.abc.tmp"  # another output's temp file is not ours to touch
    other.write_text("x")
    report = prepare(src, out)
    assert not any(p.exists() for p in stale) and other.exists()
    assert sorted(report.removed_temp_files) == sorted(p.name for p in stale)


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    from embedops.data.outputs import atomic_output, remove_stale_temps

    out = tmp_path / "clean.jsonl"
    with atomic_output(out) as fh:
        fh.write("being written")
        (live,) = tmp_path.glob(".clean.jsonl.*.tmp")
        assert remove_stale_temps(out) == [] and live.exists()
    assert out.read_text() == "being written" and not live.exists()


def test_empty_metadata_key_and_nul_survive_prepare(tmp_path):
    # Issue 9: prepare dropped an empty key; a NUL joined two words.
    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    _write(src, [{"id": "1", "text": "left\u0000right", "": "empty key", "a.b": 2}])
    prepare(src, out)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["text"] == "left right" and row["metadata"] == {"": "empty key", "a.b": 2}


def test_rows_without_ids_get_content_ids_and_duplicates_are_deduped(tmp_path):
    from embedops.data.documents import content_id

    src, out = tmp_path / "raw.jsonl", tmp_path / "clean.jsonl"
    _write(src, [{"text": "same words"}, {"text": "other words"}, {"text": "same words"}])
    report = prepare(src, out, PrepareOptions(dedupe="exact"))
    ids = [json.loads(line)["_id"] for line in out.read_text().splitlines()]
    assert ids == [content_id("same words"), content_id("other words")]
    assert len(report.dropped_exact_duplicates) == 1
    with pytest.raises(InputError, match="same text and no id"):
        prepare(src, out, PrepareOptions(dedupe="none"))
