"""STS readers: STS-B unchanged, and the MTEB / SentEval / SICK / BIOSSES layouts in TSV, CSV, JSONL and Parquet.

Every file written here holds real sentence pairs taken from the STS Benchmark, quotes and commas included.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from embedops.data import StsPairs, load_sts
from embedops.errors import InputError


def _raw_stsb(shared_data: Path, split: str) -> list[tuple[str, str, float]]:
    """The reference: stsbenchmark.tsv split on tabs by hand, as SOURCES.md says it was made."""
    lines = (shared_data / "stsbenchmark" / "stsbenchmark.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(f[2], f[3], float(f[1])) for f in (line.split("\t") for line in lines) if f[0] == split]


@pytest.fixture(scope="module")
def real_pairs(shared_data) -> list[tuple[str, str, float]]:
    """Real STS-B pairs that trip careless parsers: quotes (one unbalanced), commas, apostrophes."""
    train = _raw_stsb(shared_data, "train")
    quoted = [p for p in train if '"' in p[0] + p[1]][:4]
    unbalanced = [p for p in train if p[0].count('"') % 2 == 1]
    commas = [p for p in _raw_stsb(shared_data, "test") if "," in p[0] + p[1]][:2]
    pairs = quoted + unbalanced[:1] + commas
    assert len(pairs) == 7 and unbalanced
    return pairs


def _as_tuples(pairs: StsPairs) -> list[tuple[str, str, float]]:
    return list(zip(pairs.sentences1, pairs.sentences2, pairs.scores, strict=True))


def _write_tsv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    # Raw tab joining, as STS files are made: no quoting, whatever the sentence holds.
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def test_stsb_layout_is_read_exactly_as_before(shared_data):
    for split in ("train", "dev", "test"):
        pairs = load_sts(shared_data / "stsbenchmark", split)
        assert _as_tuples(pairs) == _raw_stsb(shared_data, split)
        assert pairs.split == split
    assert len(load_sts(shared_data / "stsbenchmark" / "stsbenchmark.tsv", "test").scores) == 1379


def test_original_stsb_files_are_read_headerless_and_unquoted(shared_data):
    # sts-*.csv (what SentEval reads) are tab-separated despite the name: genre, file, year, id, score, s1, s2, ...
    original = shared_data / "stsbenchmark" / "original"
    for split in ("train", "dev", "test"):
        assert _as_tuples(load_sts(original / f"sts-{split}.csv")) == _raw_stsb(shared_data, split)
    by_folder = load_sts(original, "dev")
    assert _as_tuples(by_folder) == _raw_stsb(shared_data, "dev") and by_folder.split == "dev"


def test_every_layout_reads_the_same_pairs(tmp_path, real_pairs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [[a, b, s] for a, b, s in real_pairs]
    files = [
        _write_tsv(tmp_path / "mteb.tsv", ["sentence1", "sentence2", "score"], rows),
        _write_tsv(tmp_path / "upper.tsv", ["Score", "Sentence1", "SENTENCE2"], [[s, a, b] for a, b, s in rows]),
        _write_tsv(tmp_path / "SICK_test_annotated.txt",
                   ["pair_ID", "sentence_A", "sentence_B", "relatedness_score", "entailment_judgment"],
                   [[i, a, b, s, "NEUTRAL"] for i, (a, b, s) in enumerate(rows)]),
    ]
    with open(tmp_path / "biosses.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence1", "sentence2", "score"])
        writer.writerows(rows)
    files.append(tmp_path / "biosses.csv")
    with gzip.open(tmp_path / "test.jsonl.gz", "wt", encoding="utf-8") as fh:
        for a, b, s in real_pairs:
            fh.write(json.dumps({"split": "test", "sentence1": a, "sentence2": b, "score": s}) + "\n")
    files.append(tmp_path / "test.jsonl.gz")
    pq.write_table(pa.Table.from_pylist([{"sentence1": a, "sentence2": b, "score": s} for a, b, s in real_pairs]),
                   tmp_path / "pairs.parquet")
    files.append(tmp_path / "pairs.parquet")
    for path in files:
        assert _as_tuples(load_sts(path)) == real_pairs, path.name


def test_tab_separated_files_never_unquote(tmp_path, real_pairs):
    # A sentence opening a quote it never closes: CSV quoting would swallow the following lines into it.
    unbalanced = next(p for p in real_pairs if p[0].count('"') % 2 == 1)
    path = _write_tsv(tmp_path / "pairs.tsv", ["sentence1", "sentence2", "score"],
                      [[a, b, s] for a, b, s in [unbalanced, *real_pairs]])
    pairs = load_sts(path)
    assert len(pairs.scores) == len(real_pairs) + 1
    assert pairs.sentences1[0] == unbalanced[0] and pairs.sentences1[0].startswith('"')


def test_a_file_without_a_split_column_is_one_split(tmp_path, real_pairs):
    path = _write_tsv(tmp_path / "pairs.tsv", ["sentence1", "sentence2", "score"], [list(p) for p in real_pairs])
    for split in ("test", "train", "dev"):
        pairs = load_sts(path, split)
        assert _as_tuples(pairs) == real_pairs and pairs.split is None


def test_sick_split_column_and_split_aliases(tmp_path, real_pairs):
    sets = ["TRAIN", "TRIAL", "TEST", "TRAIN", "TEST", "TRIAL", "TEST"]
    path = _write_tsv(tmp_path / "SICK.txt", ["pair_ID", "sentence_A", "sentence_B", "entailment_label",
                                              "relatedness_score", "SemEval_set"],
                      [[i, a, b, "NEUTRAL", s, sets[i]] for i, (a, b, s) in enumerate(real_pairs)])
    assert _as_tuples(load_sts(path, "test")) == [p for p, s in zip(real_pairs, sets, strict=True) if s == "TEST"]
    trial = [p for p, s in zip(real_pairs, sets, strict=True) if s == "TRIAL"]
    assert _as_tuples(load_sts(path, "dev")) == trial == _as_tuples(load_sts(path, "validation"))
    with pytest.raises(InputError, match=r"no pairs for split 'gold' \(the file has: TEST, TRAIN, TRIAL\)"):
        load_sts(path, "gold")


def test_a_folder_of_split_files_picks_the_split(tmp_path, real_pairs):
    for name, part in (("test.jsonl", real_pairs[:3]), ("validation.jsonl", real_pairs[3:])):
        (tmp_path / name).write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n"
                                             for a, b, s in part), encoding="utf-8")
    dev = load_sts(tmp_path, "dev")
    assert _as_tuples(dev) == real_pairs[3:] and dev.split == "dev"
    assert _as_tuples(load_sts(tmp_path, "test")) == real_pairs[:3]
    with pytest.raises(InputError, match="no STS file for split 'train'") as exc:
        load_sts(tmp_path, "train")
    assert str(tmp_path) in str(exc.value)


def _error(path: Path) -> str:
    with pytest.raises(InputError) as exc:
        load_sts(path)
    return str(exc.value)


def test_missing_columns_are_named_with_the_file(tmp_path, real_pairs):
    (a, b, s) = real_pairs[0]
    tsv = _write_tsv(tmp_path / "x.tsv", ["sentence1", "text", "score"], [[a, b, s]])
    message = _error(tsv)
    assert message.startswith(f"{tsv}:1: missing column sentence2") and "sentence_b" in message
    csv_path = tmp_path / "x.csv"
    csv_path.write_text(f"sentence_A,sentence_B,entailment_label\n{a.replace(',', '')},ok,NEUTRAL\n")
    assert _error(csv_path).startswith(f"{csv_path}:1: missing column score")
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n"
                     + json.dumps({"sentence1": a, "score": s}) + "\n")
    assert _error(jsonl).startswith(f"{jsonl}:2: missing column sentence2")


def test_bad_rows_name_file_and_line(tmp_path, real_pairs):
    (a, b, s), (c, d, t) = real_pairs[0], real_pairs[1]
    mteb = ["sentence1", "sentence2", "score"]
    cases = {
        "score.tsv": (mteb, [[a, b, s], [c, d, "high"]], 3, "score 'high' is not a number"),
        "nan.tsv": (mteb, [[a, b, "nan"]], 2, "score 'nan' is not a finite number"),
        "empty.tsv": (mteb, [[a, b, s], [c, "  ", t]], 3, "empty or whitespace-only sentence"),
        "short.tsv": (mteb, [[a, b, s], [c, d]], 3, "expected at least 3 tab-separated fields, got 2"),
        "stsb.tsv": (["split", "score", "sentence1", "sentence2"], [["test", "", a, b]], 2, "score '' is not a number"),
    }
    for name, (header, rows, line, message) in cases.items():
        path = _write_tsv(tmp_path / name, header, rows)
        assert _error(path) == f"{path}:{line}: {message}", name
    csv_path = tmp_path / "bad.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["sentence1", "sentence2", "score"], [a, b, s], [c, d, "n/a"], [c]])
    assert _error(csv_path).startswith(f"{csv_path}:3: score 'n/a' is not a number")
    csv_path.write_text(csv_path.read_text().replace("n/a", str(t)))
    assert _error(csv_path).startswith(f"{csv_path}:4: missing value for column")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(json.dumps({"sentence1": a, "sentence2": b, "score": True}) + "\n")
    assert _error(jsonl).startswith(f"{jsonl}:1: score True is not a number")


def test_unsupported_and_empty_files_are_refused(tmp_path):
    (tmp_path / "pairs.xlsx").write_bytes(b"PK")
    assert "unsupported STS file type" in _error(tmp_path / "pairs.xlsx")
    (tmp_path / "empty.tsv").write_text("")
    assert _error(tmp_path / "empty.tsv") == f"{tmp_path / 'empty.tsv'}: empty file: expected a header row"
    (tmp_path / "header.tsv").write_text("sentence1\tsentence2\tscore\n")
    assert "no sentence pairs" in _error(tmp_path / "header.tsv")
    assert "not found" in _error(tmp_path / "nope.tsv")
