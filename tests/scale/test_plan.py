"""Planning and output shards of batch embedding, without a model: units are cut from the inputs alone, read back
exactly, and every bad input is refused naming its file (and line)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedops.errors import InputError
from embedops.scale.plan import Unit, input_files, make_plan, read_unit
from embedops.scale.shards import OutputFolder, ShardResult, read_shard, shard_name, shard_record


def _jsonl(path, n, *, blank_every=0):
    lines = []
    for i in range(n):
        lines.append(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text number {i} é"}))
        if blank_every and i % blank_every == 0:
            lines.append("   ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_units_cut_by_rows_skip_blank_lines_and_read_back(tmp_path):
    src = _jsonl(tmp_path / "docs.jsonl", 23, blank_every=4)
    plan = make_plan(src, 10)
    assert [u.rows for u in plan.units] == [10, 10, 3] and plan.documents == 23
    docs = [d for u in plan.units for d in read_unit(u)]
    assert [d.id for d in docs] == [f"d{i}" for i in range(23)]
    assert docs[12].full_text == "T12 text number 12 é"
    assert plan.units[1].line == 14  # 10 documents and 3 blank lines before it: errors name real lines
    gz = tmp_path / "more.jsonl.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    gz_plan = make_plan(gz, 10)
    assert [d.id for u in gz_plan.units for d in read_unit(u)] == [d.id for d in docs]


def test_parquet_units_span_row_groups(tmp_path):
    table = pa.table({"id": [f"p{i}" for i in range(25)], "text": [f"row {i}" for i in range(25)]})
    src = tmp_path / "docs.parquet"
    pq.write_table(table, src, row_group_size=7)
    plan = make_plan(src, 10)
    assert [(u.start, u.rows) for u in plan.units] == [(0, 10), (10, 10), (20, 5)]
    assert [d.id for d in read_unit(plan.units[1])] == [f"p{i}" for i in range(10, 20)]
    assert read_unit(plan.units[2])[0].source.endswith("docs.parquet:21")


def test_a_folder_of_shards_in_name_order_and_a_beir_folder_by_its_corpus(tmp_path):
    (tmp_path / "shards").mkdir()
    _jsonl(tmp_path / "shards" / "b.jsonl", 2)
    pq.write_table(pa.table({"id": ["x"], "text": ["y"]}), tmp_path / "shards" / "a.parquet")
    (tmp_path / "shards" / "notes.txt").write_text("ignored")
    assert [p.name for p in input_files(tmp_path / "shards")] == ["a.parquet", "b.jsonl"]
    (tmp_path / "beir").mkdir()
    _jsonl(tmp_path / "beir" / "corpus.jsonl", 3)
    _jsonl(tmp_path / "beir" / "queries.jsonl", 2)
    assert [p.name for p in input_files(tmp_path / "beir")] == ["corpus.jsonl"]


def test_bad_inputs_name_the_file_and_line(tmp_path):
    with pytest.raises(InputError, match="dataset not found") as err:
        make_plan(tmp_path / "missing.jsonl")
    assert err.value.where == str(tmp_path / "missing.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .jsonl"):
        make_plan(tmp_path / "empty")
    bad = tmp_path / "shards"
    bad.mkdir()
    _jsonl(bad / "a.jsonl", 2)
    (bad / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="not a valid Parquet file") as err:
        make_plan(bad)
    assert err.value.where == str((bad / "b.parquet").resolve())
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(InputError, match="unsupported file type"):
        make_plan(tmp_path / "x.csv")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": \n{"_id": "c", "text": ""}\n')
    units = make_plan(broken, 10).units
    with pytest.raises(InputError, match="malformed JSON") as err:
        read_unit(units[0])
    assert err.value.where == f"{broken.resolve()}:2"
    with pytest.raises(InputError, match="must be an integer"):
        make_plan(broken, 0)


def _result(unit: Unit, dim: int = 4) -> ShardResult:
    rng = np.random.default_rng(unit.index)
    return ShardResult(unit, [f"id{unit.index}-{i}" for i in range(unit.rows)],
                       rng.standard_normal((unit.rows, dim)).astype(np.float32), "node-a", "w1", 0.5)


def test_shards_are_kept_only_for_the_same_plan(tmp_path):
    src = _jsonl(tmp_path / "docs.jsonl", 5)
    plan = make_plan(src, 2)
    out = tmp_path / "out"
    folder = OutputFolder(out, plan.key("fp"), "fp", 4)
    folder.prepare({"format": "embedops-embeddings/1", "plan_key": folder.plan_key}, overwrite=False)
    written = _result(plan.units[1])
    folder.write(written)
    folder.unlock()
    ids, vectors = read_shard(out / shard_name(1))
    assert ids == written.ids and np.array_equal(vectors, written.vectors)
    assert shard_record(out / shard_name(1))["node_id"] == "node-a"
    (out / f".{shard_name(0)}.abc.tmp").write_bytes(b"half a shard of a killed writer")
    again = OutputFolder(out, plan.key("fp"), "fp", 4)
    again.prepare({"format": "embedops-embeddings/1", "plan_key": again.plan_key}, overwrite=False)
    assert list(again.finished(plan)) == [1] and again.removed_temps == [f".{shard_name(0)}.abc.tmp"]
    with pytest.raises(InputError, match="another embedding job is writing"):
        OutputFolder(out, plan.key("fp"), "fp", 4).lock()
    again.unlock()
    other = OutputFolder(out, plan.key("another model"), "another model", 4)
    with pytest.raises(InputError, match="embeddings of another job"):
        other.prepare({"format": "embedops-embeddings/1", "plan_key": other.plan_key}, overwrite=False)
    other.unlock()
    other.prepare({"format": "embedops-embeddings/1", "plan_key": other.plan_key}, overwrite=True)
    assert other.finished(plan) == {} and not (out / shard_name(1)).exists()
    other.unlock()
