"""Quiet, useful output: `--version`, no library logs or weight-loading bars by default (`-v` shows them), and a
progress bar with counts on stderr for each long step, drawn only on a terminal and never under `-q`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import embedops

EXE = os.path.join(os.path.dirname(sys.executable), "embedops")
# Lines that mean a library spoke: log records, transformers' own prefix, weight-loading or batch bars.
NOISE = re.compile(r"^(DEBUG|INFO) |\[transformers\]|Loading weights|Batches:|Load pretrained", re.M)


def _plain(text: str) -> str:
    """The text without terminal escape codes (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def _run(*args: str, cwd: Path, tty: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TTY_COMPATIBLE", None)
    if tty:
        env["TTY_COMPATIBLE"] = "1"  # rich treats the stream as a terminal, as it would be in a shell
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("".join(f"sentence number {i} about embeddings\n" for i in range(40)))
    return path


def test_version_prints_the_package_version(tmp_path):
    res = _run("--version", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"embedops {embedops.__version__}"


def test_a_normal_run_is_quiet_and_verbose_shows_library_logs_and_bars(tmp_path, texts):
    res = _run("encode", str(texts), "-o", str(tmp_path / "v.npy"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "40 texts" in res.stdout
    # Not a terminal: no bar either, so stderr is empty.
    assert res.stderr == "", res.stderr
    loud = _run("-v", "encode", str(texts), "-o", str(tmp_path / "v2.npy"), cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert NOISE.search(loud.stderr), loud.stderr[:2000]
    assert "Loading weights" in loud.stderr and re.search(r"^(DEBUG|INFO) sentence_transformers", loud.stderr, re.M)


def test_long_steps_draw_a_bar_with_counts_on_a_terminal_and_none_when_quiet(tmp_path):
    sts = tmp_path / "sts.tsv"
    sts.write_text("split\tscore\tsentence1\tsentence2\n"
                   "test\t5.0\tA plane is taking off.\tAn air plane is taking off.\n"
                   "test\t0.5\tA man plays a flute.\tStocks fell sharply today.\n"
                   "test\t3.0\tA cat sleeps.\tA cat is sleeping on a sofa.\n")
    ev = _run("eval", "sts", str(sts), "--no-cache", cwd=tmp_path, tty=True)
    assert ev.returncode == 0, ev.stderr
    done = re.search(r"(?<!\d)(\d+)/\1(?!\d)", _plain(ev.stderr))  # a finished count: n/n
    assert "encoding with all-MiniLM-L6-v2" in ev.stderr and done, ev.stderr[-500:]
    assert "encoding with" not in ev.stdout and "spearman" in ev.stdout  # bars never mix into results on stdout
    assert not NOISE.search(ev.stderr)

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(f'{{"_id": "d{i}", "text": "document {i} on topic {i % 5}"}}\n' for i in range(30)))
    prep = _run("prepare", str(docs), str(tmp_path / "clean.jsonl"), "--dedupe", "none", cwd=tmp_path, tty=True)
    assert prep.returncode == 0, prep.stderr
    assert "preparing docs.jsonl" in prep.stderr and "30/?" in prep.stderr
    quiet = _run("-q", "prepare", str(docs), str(tmp_path / "clean2.jsonl"), "--dedupe", "none", cwd=tmp_path,
                 tty=True)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    build = _run("index", "build", str(tmp_path / "col"), "-d", str(docs), cwd=tmp_path, tty=True)
    assert build.returncode == 0, build.stderr
    assert "embedding and indexing" in build.stderr and "30/30" in build.stderr
    assert not NOISE.search(build.stderr), build.stderr[-2000:]
