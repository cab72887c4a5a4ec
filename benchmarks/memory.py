"""Memory and time of encoding ONE huge text: peak RSS beyond a loaded, warmed model, per backend and size.

Texts: SciFact abstracts repeated to 1 MB, 10 MB and 50 MB (realistic words), a 10 MB no-space variant (the same
abstracts with every whitespace removed: one giant "word" run with punctuation), and the largest text this script
can generate in 10 s (capped at `--max-mb`, so that the run stays within the machine's memory). Each (backend, text)
is encoded in a FRESH child process: it reads the text, loads the model, encodes one short sentence, resets its peak
RSS (`/proc/self/clear_refs` 5), then encodes the huge text; `extra_mb` is the peak RSS during that encode (VmHWM)
minus the RSS just before it (so the text itself and the model are not counted); `ru_maxrss_mb` is the child's
whole-life peak. The CLI rows run `embedops encode` on a .txt
file holding the text as one line and report its peak RSS (`ru_maxrss` of the child) minus the same command's on a
one-sentence file.

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/memory.py \
        --out benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
MB = 1_000_000


def abstracts() -> list[str]:
    """SciFact abstracts (title + text), the realistic words the big texts are made of."""
    out = []
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            out.append(f"{doc.get('title', '')} {doc['text']}".strip())
    return out


def make_text(parts: list[str], size: int, *, spaces: bool = True) -> str:
    """About `size` characters of abstracts joined by spaces (or with all whitespace removed)."""
    if not spaces:
        parts = ["".join(p.split()) for p in parts]
    pieces, n, i = [], 0, 0
    while n < size:
        p = parts[i % len(parts)]
        pieces.append(p)
        n += len(p) + 1
        i += 1
    return " ".join(pieces)[:size]


def largest_in(parts: list[str], seconds: float, cap: int) -> tuple[str, float]:
    """The largest text built in `seconds` (doubling a block of abstracts; stops at `cap` characters)."""
    started = time.perf_counter()
    text = make_text(parts, MB)
    while time.perf_counter() - started < seconds and len(text) * 2 <= cap:
        text = text + " " + text
    return text, time.perf_counter() - started


def rss_mb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM, since the last reset) resident set size of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_since_reset_mb() -> float:
    """Peak RSS since `/proc/self/clear_refs` 5: VmHWM. (ru_maxrss also keeps the peaks of threads that exited
    earlier, e.g. while the model loaded, which no reset clears; it is reported beside.)"""
    return rss_mb("VmHWM")


def child(backend: str, path: str) -> None:
    """Encode the one text in `path` with `backend` and print {extra_mb, seconds, truncated, tokens} as JSON."""
    text = Path(path).read_text(encoding="utf-8")
    from embedops.models import load_encoder

    enc = load_encoder(None, backend=backend)
    enc.encode(["a short sentence to warm the model up"])
    before = rss_mb()
    try:  # reset the peak so that model loading does not hide the encode's own peak
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    vec, usage = enc.encode_with_usage([text])
    seconds = time.perf_counter() - started
    peak = peak_since_reset_mb() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"extra_mb": round(peak - before, 1), "base_mb": round(before, 1), "peak_mb": round(peak, 1),
                      "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "seconds": round(seconds, 3), "truncated": usage.truncated, "tokens": usage.tokens,
                      "peak_reset": reset, "vector_head": [round(float(x), 6) for x in vec[0, :4]]}))


def child_prepare(path: str) -> None:
    """`prepare`'s cleaning and chunking (256 tokens, overlap 32) of the one text in `path`: extra peak RSS of each."""
    text = Path(path).read_text(encoding="utf-8")
    from transformers import AutoTokenizer

    from embedops.data.chunk import chunk_text
    from embedops.data.clean import clean_text
    from embedops.models.loading import resolve_model

    tok = AutoTokenizer.from_pretrained(str(resolve_model(None).path))
    tok("warm up", add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    out = {}
    for step in ("clean", "chunk"):
        before = rss_mb()
        Path("/proc/self/clear_refs").write_text("5")
        started = time.perf_counter()
        if step == "clean":
            result = len(clean_text(text))
        else:
            result = len(chunk_text(text, tok, max_tokens=256, overlap=32))
        peak = peak_since_reset_mb()
        out[step] = {"extra_mb": round(peak - before, 1), "seconds": round(time.perf_counter() - started, 3),
                     "result": result}
    print(json.dumps({"extra_mb": max(v["extra_mb"] for v in out.values()),
                      "seconds": round(sum(v["seconds"] for v in out.values()), 3), "steps": out}))


def run_child(backend: str, path: Path, timeout: float) -> dict:
    """One fresh process per (backend, text)."""
    cmd = [sys.executable, __file__, "--child", backend, str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli_peak(path: Path, out: Path, timeout: float) -> dict:
    """Run the CLI through a tiny wrapper that reports the child's ru_maxrss (RUSAGE_CHILDREN of the wrapper)."""
    code = ("import resource,subprocess,sys,time,json;t=time.perf_counter();"
            "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
            "print(json.dumps({'rc':p.returncode,'seconds':round(time.perf_counter()-t,3),"
            "'peak_mb':round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,1),"
            "'err':p.stderr.strip().splitlines()[-1:] ,'out':p.stdout.strip().splitlines()[-1:]}))")
    cli = Path(sys.executable).with_name("embedops")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(cli), "encode", str(path), "-o", str(out)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if row["rc"] != 0:
        return {"error": (row["err"] or [f"exit {row['rc']}"])[-1][:300]}
    return row


def compare(before_path: str, after_path: str) -> None:
    """Print before/after extra peak RSS and seconds for the rows both runs have."""
    before = {(r["text"], r["path"]): r for r in json.loads(Path(before_path).read_text())["rows"]}
    after = json.loads(Path(after_path).read_text())["rows"]
    print(f"{'text':<18} {'path':<20} {'MB before':>10} {'MB after':>9} {'s before':>9} {'s after':>8} {'same vec':>8}")
    for r in after:
        b = before.get((r["text"], r["path"]), {})
        same = "" if "vector_head" not in r or "vector_head" not in b else str(r["vector_head"] == b["vector_head"])
        mb_before, mb_after = b.get("extra_mb", b.get("error", "-")), r.get("extra_mb", r.get("error", "-"))
        print(f"{r['text']:<18} {r['path']:<20} {mb_before!s:>10} {mb_after!s:>9} {b.get('seconds', '-')!s:>9} "
              f"{r.get('seconds', '-')!s:>8} {same:>8}")


def main() -> None:
    """Build the texts, run every (backend, text) in its own process, print a table and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("BACKEND", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--backends", default="torch,onnx,openvino")
    ap.add_argument("--sizes", default="1,10,50", help="MB of realistic text")
    ap.add_argument("--nospace-mb", type=int, default=10, help="size of the no-space variant (0: none)")
    ap.add_argument("--largest", action="store_true", help="also the largest text generated in 10 s")
    ap.add_argument("--max-mb", type=int, default=400, help="cap on the largest text (memory safety)")
    ap.add_argument("--no-cli", action="store_true")
    ap.add_argument("--data", action="store_true", help="also prepare's cleaning + chunking of each text")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=str(RESULTS / "memory.json"))
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print a before/after table and exit")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.child:
        if args.child[0] == "prepare":
            child_prepare(args.child[1])
        else:
            child(*args.child)
        return
    parts = abstracts()
    texts: list[tuple[str, str]] = [(f"{mb} MB", make_text(parts, mb * MB)) for mb in map(int, args.sizes.split(","))]
    if args.nospace_mb:
        texts.append((f"{args.nospace_mb} MB no-space", make_text(parts, args.nospace_mb * MB, spaces=False)))
    largest = None
    if args.largest:
        text, secs = largest_in(parts, 10.0, args.max_mb * MB)
        largest = {"chars": len(text), "seconds": round(secs, 2), "capped": len(text) * 2 > args.max_mb * MB}
        texts.append((f"largest ({len(text) / MB:.0f} MB)", text))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.txt"
        short.write_text("a short sentence to warm the model up\n")
        cli_base = None if args.no_cli else cli_peak(short, Path(tmp) / "short.npy", args.timeout)
        for label, text in texts:
            path = Path(tmp) / "big.txt"
            path.write_text(text.replace("\n", " ") + "\n", encoding="utf-8")
            size = len(text)
            del text
            for backend in args.backends.split(","):
                row = {"text": label, "chars": size, "path": backend, **run_child(backend, path, args.timeout)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if args.data:
                row = {"text": label, "chars": size, "path": "prepare clean+chunk", **run_child("prepare", path,
                                                                                             args.timeout)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if cli_base is not None and "error" not in cli_base:
                res = cli_peak(path, Path(tmp) / "big.npy", args.timeout)
                if "error" not in res:
                    res["extra_mb"] = round(res["peak_mb"] - cli_base["peak_mb"], 1)
                row = {"text": label, "chars": size, "path": "cli encode (torch)", **res}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{'text':<22} {'path':<20} {'extra peak RSS MB':>18} {'seconds':>9} {'truncated':>9}")
    for r in rows:
        extra = r.get("extra_mb", r.get("error", "?"))
        print(f"{r['text']:<22} {r['path']:<20} {extra!s:>18} {r.get('seconds', ''):>9} {r.get('truncated', ''):>9}")
    if largest:
        print(f"largest text generated in 10 s: {largest['chars'] / MB:.0f} MB in {largest['seconds']} s"
              + (" (capped by --max-mb)" if largest["capped"] else ""))
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "largest_in_10s": largest,
              "cli_baseline": cli_base, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
