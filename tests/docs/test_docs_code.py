"""Every ```bash and ```python block of the guides runs as written, in order, one page at a time.

A page's blocks run in one fresh working folder that has `../shared` beside it (a link to the repo's shared data),
so `../shared/data/...` means what it means from the repo root. bash blocks run with `bash -euo pipefail`, the
venv's bin first on PATH and HF_HUB_OFFLINE=1; python blocks share one namespace per page. A block preceded by the
line `<!-- no-run -->` is illustrative (a server left running, a long training run) and is not run.

`python tests/docs/test_docs_code.py docs/guides/2-choose.md` runs one page and prints each block's output, to
paste real output into the guide.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SHARED = REPO.parent / "shared"
RUN_LANGS = {"bash", "python"}
NO_RUN = "<!-- no-run -->"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`\n]*)$")
BLOCK_TIMEOUT_S = 300


@dataclass
class Block:
    """One fenced code block of a page."""

    lang: str
    code: str
    line: int
    run: bool


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks in page order; `run` is False for other languages and after a `<!-- no-run -->` line."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    previous = ""
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        lang = (m["info"].strip().split() or [""])[0].lstrip("{.").rstrip("}")
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        code = "\n".join(line[indent:] for line in lines[start:j]) + "\n"
        blocks.append(Block(lang, code, start, lang in RUN_LANGS and previous != NO_RUN))
        previous = ""
        i = j + 1
    return blocks


def guide_pages() -> list[Path]:
    """The pages whose blocks must run: the home page (quick start) and every guide."""
    return [DOCS / "index.md", *sorted((DOCS / "guides").glob("*.md"))]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", NO_COLOR="1",
               COLUMNS="100", PYTHONUNBUFFERED="1")
    env.pop("EMBEDOPS_REGISTRY", None)  # the guides use ./models, the default
    # The guides quantise the default model: keep their exports out of the cache the other tests share (a test
    # checks the clear error when no int8 model exists there).
    if os.environ.get("EMBEDOPS_CACHE"):
        env["EMBEDOPS_CACHE"] = str(Path(os.environ["EMBEDOPS_CACHE"]) / "docs")
    env.pop("EMBEDOPS_API_KEYS", None)
    return env


def run_page(page: Path, root: Path, *, echo: bool = False) -> list[tuple[Block, str, float]]:
    """Run a page's blocks in `root/work` (with `root/shared` -> the repo's shared data); fail on the first error."""
    work = root / "work"
    work.mkdir(parents=True)
    (root / "shared").symlink_to(SHARED, target_is_directory=True)
    env = _env()
    namespace: dict[str, object] = {"__name__": "__docs__"}
    results = []
    groups: list[int] = []  # each bash block's process group: a server a page starts is stopped even if it fails
    try:
        for block in (b for b in parse_blocks(page.read_text(encoding="utf-8")) if b.run):
            results.append(_run_block(page, block, work, env, namespace, groups, echo))
    finally:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
    return results


def _run_block(page: Path, block: Block, work: Path, env: dict[str, str], namespace: dict[str, object],
               groups: list[int], echo: bool) -> tuple[Block, str, float]:
    where = f"{page.relative_to(REPO)}:{block.line}"
    t0 = time.perf_counter()
    if block.lang == "bash":
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block.code], cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        groups.append(proc.pid)
        try:
            output, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            raise AssertionError(f"{where}: bash block ran over {BLOCK_TIMEOUT_S} s\n{output[-4000:]}") from None
        if proc.returncode != 0:
            raise AssertionError(f"{where}: bash block exited {proc.returncode}\n{block.code}\n{output[-4000:]}")
    else:
        buf = io.StringIO()
        old_cwd, old_env = Path.cwd(), dict(os.environ)
        os.chdir(work)
        os.environ.clear()
        os.environ.update(env)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - the guide's own code
        except Exception as exc:
            raise AssertionError(f"{where}: python block raised {exc!r}\n{block.code}\n"
                                 f"{buf.getvalue()[-4000:]}") from exc
        finally:
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(old_env)
        output = buf.getvalue()
    elapsed = time.perf_counter() - t0
    if echo:
        print(f"----- {where} ({block.lang}, {elapsed:.1f} s)\n{block.code}=====\n{output}", flush=True)
    return block, output, elapsed

def test_parse_blocks_honours_no_run_and_languages():
    """The extractor runs bash/python blocks only, skips one after the marker, and keeps indented code intact."""
    text = ("```bash\necho a\n```\n\n<!-- no-run -->\n```bash\nsleep 100\n```\n```text\nout\n```\n"
            "  ```python\n  x = 1\n  ```\n")
    blocks = parse_blocks(text)
    assert [(b.lang, b.run) for b in blocks] == [("bash", True), ("bash", False), ("text", False), ("python", True)]
    assert blocks[3].code == "x = 1\n"


def test_every_guide_has_runnable_blocks():
    """Each of the nine lifecycle guides exists; those for built capabilities run code."""
    names = {p.name for p in guide_pages()}
    for n in range(1, 10):
        assert any(name.startswith(f"{n}-") for name in names), f"guide {n} is missing"
    for page in guide_pages():
        if page.name.startswith(("9-", "index")) and page.parent.name == "guides":
            continue
        assert any(b.run for b in parse_blocks(page.read_text())), f"{page.name} has no runnable block"


@pytest.mark.slow
@pytest.mark.parametrize("page", guide_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_guide_runs_as_written(page: Path, tmp_path: Path):
    """The page's commands and Python run in order in a fresh folder and succeed."""
    results = run_page(page, tmp_path, echo=bool(os.environ.get("DOCS_ECHO")))  # DOCS_ECHO=1 pytest -s: outputs
    assert all(b.run for b, _, _ in results)


if __name__ == "__main__":
    import tempfile

    for arg in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run_page(Path(arg).resolve(), Path(tmp), echo=True)
            print(f"===== {arg}: {time.perf_counter() - t:.1f} s")
