"""One huge document through `prepare`'s cleaning and chunking: linear time, bounded memory, unchanged results."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
import time

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from embedops.data import chunk as chunk_mod
from embedops.data.chunk import chunk_text
from embedops.data.clean import _HTML_HINT, _NEWLINES, _SPACES, clean_text
from embedops.models.loading import resolve_model
from embedops.models.tokenizer import TokenizerAdapter

# The patterns as they were: reference results on small inputs (on big ones they backtrack for minutes).
OLD_NEWLINES = re.compile(r"\s*\n\s*")
OLD_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
OLD_HTML_HINT = re.compile(r"<(?:[a-zA-Z][\w:-]*|/[a-zA-Z][\w:-]*|!--)[^>]*>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")


@pytest.fixture(scope="module")
def tokenizers_both():
    """The bundled model's tokenizer as the torch backend hands it (Hugging Face fast) and as onnx does (adapter)."""
    folder = resolve_model(None).path
    rust = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rust.no_padding()
    rust.no_truncation()
    return {"hf": AutoTokenizer.from_pretrained(str(folder)), "adapter": TokenizerAdapter(rust)}


def _documents(shared_data) -> dict[str, str]:
    import gzip
    import itertools

    with gzip.open(shared_data / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in itertools.islice(fh, 40)]
    abstracts = [f"{d['title']} {d['text']}" for d in docs]
    rng = random.Random(5)
    pieces = ["hello", "wörld", "中", "😀", "[SEP]", "a.b", "  ", "\n", "x" * 130, "\x01", "e\u0301"]
    return {
        "abstracts": "\n".join(abstracts),
        "giant word between words": "a" * 30_000 + " then words " * 300 + "b" * 20_000,
        "no spaces": "".join("".join(a.split()) for a in abstracts[:8]),
        "cjk": "自然語言處理中文字符漢語" * 800,
        "whitespace run": " " * 20_000 + "word " * 2_000,
        "mixed": "".join(rng.choice(pieces) + rng.choice([" ", ""]) for _ in range(8_000)),
    }


def test_windowed_chunking_gives_the_same_chunks(tokenizers_both, shared_data, monkeypatch):
    """Chunks of a text read a window at a time (tiny windows here) equal those of the text tokenised whole."""
    for name, text in _documents(shared_data).items():
        for kind, tok in tokenizers_both.items():
            for max_tokens, overlap in ((256, 32), (16, 4)):
                monkeypatch.setattr(chunk_mod, "_WINDOW_CHARS", 10**12)
                whole = chunk_text(text, tok, max_tokens=max_tokens, overlap=overlap)
                monkeypatch.setattr(chunk_mod, "_WINDOW_CHARS", 700)
                windowed = chunk_text(text, tok, max_tokens=max_tokens, overlap=overlap)
                assert windowed == whole, (name, kind, max_tokens)
                assert len(whole) > 1, (name, kind, max_tokens)


def test_rewritten_patterns_match_the_old_ones_on_small_inputs():
    """The linear patterns give the old results: newline runs, space runs, and the HTML hint on tag-like text."""
    rng = random.Random(11)
    alphabet = [" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "a", "b", "<", ">", "/", "x<a", "&amp;", "!--"]
    for _ in range(3_000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert _SPACES.sub(" ", s) == OLD_SPACES.sub(" ", s), repr(s)
        spaced = OLD_SPACES.sub(" ", s)
        assert _NEWLINES.sub("\n", spaced) == OLD_NEWLINES.sub("\n", spaced), repr(s)
        new, was = bool(_HTML_HINT.search(s)), bool(OLD_HTML_HINT.search(s))
        assert was or not new, repr(s)  # never a new "looks like HTML"
        if s.count("<") <= 1:  # the only change: a "<" inside a would-be tag now ends it ("<a <b" is not a tag)
            assert new == was, repr(s)


@pytest.mark.parametrize("text", [
    ("x<ab " * 1_000 + "y ") * 400,  # "<" + letters without a ">": the old hint pattern backtracked from each one
    "a" + "\r " * 1_000_000,  # a whitespace run without a newline: the old newline pattern rescanned it from each
])
def test_cleaning_adversarial_text_is_linear(text):
    """2 MB of text that made the old patterns quadratic cleans in seconds."""
    started = time.perf_counter()
    clean_text(text)
    assert time.perf_counter() - started < 10


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path

    def hwm():  # peak RSS since the last clear_refs (ru_maxrss also keeps exited threads' peaks: no reset for it)
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    from embedops.data.chunk import chunk_text
    from embedops.data.clean import clean_text
    from embedops.models.loading import resolve_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(resolve_model(None).path))
    tok("warm up", add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    text = ("The protein binds the receptor and changes the cell's response to insulin.\\n" * 70_000)[:5_000_000]
    out = {}
    for name, fn in (("clean", lambda: len(clean_text(text))),
                     ("chunk", lambda: len(chunk_text(text, tok, max_tokens=256, overlap=32)))):
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
        Path("/proc/self/clear_refs").write_text("5")
        started = time.perf_counter()
        result = fn()
        out[name] = {"extra_mb": hwm() - rss,
                     "seconds": time.perf_counter() - started, "result": result}
    print(json.dumps(out))
""")


def test_a_5_mb_document_cleans_and_chunks_in_bounded_memory():
    """A fresh process cleans and chunks one 5 MB document: peak RSS grows by a small multiple of its size (chunking
    it whole took ~150 bytes per character, ~700 MB here)."""
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["chunk"]["result"] > 1000  # ~1.25 M tokens in chunks of 256
    assert result["chunk"]["extra_mb"] < 60, result
    assert result["clean"]["extra_mb"] < 120, result
