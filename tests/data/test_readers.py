"""Readers: every bad input names the file and line; good input round-trips through JSONL, CSV and Parquet."""

from __future__ import annotations

import pytest

from embedops.data import read_documents
from embedops.data.readers import iter_jsonl
from embedops.errors import InputError


def test_jsonl_csv_parquet_read_the_same_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "a", "text": "first text", "lang": "en"}, {"id": "b", "text": "second, with comma", "lang": "de"}]
    (tmp_path / "d.jsonl").write_text("\n".join(__import__("json").dumps(r) for r in rows) + "\n")
    (tmp_path / "d.csv").write_text('id,text,lang\na,first text,en\nb,"second, with comma",de\n')
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.csv", "d.parquet"):
        docs = read_documents(tmp_path / name)
        assert [d.id for d in docs] == ["a", "b"]
        assert docs[1].text == "second, with comma"
        assert docs[1].metadata == {"lang": "de"}


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="not found") as exc:
        read_documents(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in str(exc.value)


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n\n{"id": 2, "text": "broken"\n')
    with pytest.raises(InputError) as exc:
        list(iter_jsonl(path))
    assert f"{path}:3" in str(exc.value)
    assert "malformed JSON" in str(exc.value)


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(InputError, match="invalid UTF-8") as exc:
        read_documents(path)
    assert f"{path}:2" in str(exc.value)


@pytest.mark.parametrize("text", ["", "   \t  "])
def test_empty_text_is_refused_with_line(tmp_path, text):
    path = tmp_path / "empty.jsonl"
    path.write_text('{"id": "x", "text": "fine"}\n' + __import__("json").dumps({"id": "y", "text": text}) + "\n")
    with pytest.raises(InputError, match="empty or whitespace-only") as exc:
        read_documents(path)
    assert f"{path}:2" in str(exc.value)


def test_missing_text_field_and_ragged_csv(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "x", "body_text": "no known field"}\n')
    with pytest.raises(InputError, match="missing text field"):
        read_documents(tmp_path / "a.jsonl")
    (tmp_path / "b.csv").write_text("id,text\n1,ok\n2,too,many\n")
    with pytest.raises(InputError, match="fields") as exc:
        read_documents(tmp_path / "b.csv")
    assert "b.csv:3" in str(exc.value)
