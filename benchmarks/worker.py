"""Cross-call batching: 8 caller threads sending one text at a time through one ModelWorker, against the same texts
encoded one by one on a single thread by the plain encoder (the baseline, measured in the same run).

Inputs: 400 distinct STS-B test sentences. Each round runs, per backend and in a rotating order: the baseline (one
thread, `encoder.encode([text])` per text), the worker (8 threads, each taking every 8th text, `worker.encode([text])`
per call), and, for reference, the same 8 threads calling the plain encoder directly (thread-safe, but no merging).
Medians over the rounds; the ratio is baseline seconds / worker seconds (target >= 3).

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/worker.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def one_by_one(encoder, texts: list[str]) -> tuple[float, np.ndarray]:
    """Baseline: a single thread, one text per call."""
    out = np.empty((len(texts), encoder.output_dimension), dtype=np.float32)
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        out[i] = encoder.encode([text])[0]
    return time.perf_counter() - t0, out


def threaded(target, texts: list[str], callers: int) -> tuple[float, np.ndarray]:
    """`callers` threads released together, thread k sending texts k, k+callers, ... one per call."""
    out = np.empty((len(texts), target.output_dimension), dtype=np.float32)
    start = threading.Barrier(callers + 1)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        start.wait()
        try:
            for i in range(k, len(texts), callers):
                out[i] = target.encode([texts[i]])[0]
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} caller(s) failed: {errors[0]!r}")
    return seconds, out


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def main() -> None:
    """Time baseline, worker and plain-threads per backend; print the table and write worker.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--callers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backends", default="torch,onnx")
    ap.add_argument("--max-wait-ms", type=float, default=2.0)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--model", default=None, help="model name or folder (default: the bundled all-MiniLM-L6-v2)")
    ap.add_argument("--device", default="cpu", help="torch device (cuda for the GPU rows)")
    ap.add_argument("--data", type=Path, default=DATA / "stsbenchmark", help="STS Benchmark folder")
    ap.add_argument("--out", type=Path, default=RESULTS / "worker.json")
    args = ap.parse_args()

    from embedops._io import atomic_write_json
    from embedops.data import load_sts
    from embedops.models import ModelWorker, load_encoder

    cores = len(os.sched_getaffinity(0))
    sts = load_sts(args.data, "test")
    texts = list(dict.fromkeys(sts.sentences1 + sts.sentences2))[: args.texts]
    load_before = os.getloadavg()
    rows = []
    for backend in args.backends.split(","):
        options = {"threads": cores} if backend == "onnx" else {"device": args.device}
        encoder = load_encoder(args.model, backend=backend, **options)
        worker = ModelWorker(encoder, max_wait_ms=args.max_wait_ms, max_batch_size=args.max_batch_size)
        runs = {
            "one thread, one text per call (baseline)": lambda enc=encoder: one_by_one(enc, texts),
            f"{args.callers} threads -> ModelWorker": lambda w=worker: threaded(w, texts, args.callers),
            f"{args.callers} threads -> plain encoder": lambda enc=encoder: threaded(enc, texts, args.callers),
        }
        names = list(runs)
        for run in runs.values():  # warm-up: first-call allocations, kernel choices
            run()
        seconds: dict[str, list[float]] = {n: [] for n in names}
        vectors: dict[str, np.ndarray] = {}
        batches: list[float] = []  # mean texts per model batch, per worker round
        busy: list[float] = []  # share of the worker round's wall time the model was running
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate so load hits all alike
                time.sleep(0.3)  # let the previous run's spinning intra-op threads go idle
                before = worker.metrics()
                sec, vectors[name] = runs[name]()
                seconds[name].append(sec)
                if "ModelWorker" in name:
                    after = worker.metrics()
                    batches.append(len(texts) / max(after["batches"] - before["batches"], 1))
                    busy.append((after["busy_seconds"] - before["busy_seconds"]) / sec)
            print(f"{backend} round {r + 1}: " + "  ".join(f"{n}: {len(texts) / seconds[n][-1]:.1f}/s" for n in names),
                  flush=True)
        worker.close()
        base = statistics.median(seconds[names[0]])
        for name in names:
            sec = statistics.median(seconds[name])
            cos = (vectors[name] * vectors[names[0]]).sum(axis=1)
            label = backend if backend == "onnx" or args.device == "cpu" else f"{backend}-{args.device}"
            rows.append({"backend": label, "run": name, "texts": len(texts), "seconds_median": sec,
                         "seconds_all": seconds[name], "texts_per_s": len(texts) / sec, "ratio": base / sec,
                         "ratios_per_round": [b / s for b, s in zip(seconds[names[0]], seconds[name], strict=True)],
                         "cos_to_baseline_min": float(cos.min()),
                         "mean_batch_size": statistics.median(batches) if "ModelWorker" in name else 1.0,
                         **({"mean_batch_per_round": batches, "model_busy_share_per_round": busy}
                            if "ModelWorker" in name else {})})
    table = ["| backend | run | texts/s | ratio to baseline (median) | mean batch | min cosine to baseline |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        table.append(f"| {row['backend']} | {row['run']} | {row['texts_per_s']:.1f} | {row['ratio']:.2f}x | "
                     f"{row['mean_batch_size']:.1f} | {row['cos_to_baseline_min']:.6f} |")
    print("\n".join(table))
    result = {"cores": cores, "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
              "gpu": _gpu_name() if args.device != "cpu" else None, "texts": len(texts), "callers": args.callers,
              "rounds": args.rounds, "worker": {"max_wait_ms": args.max_wait_ms, "max_batch_size": args.max_batch_size},
              "model": args.model or "all-MiniLM-L6-v2 (bundled)", "device": args.device,
              "rows": rows, "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
              "versions": {m: __import__(m).__version__ for m in ("torch", "onnxruntime", "sentence_transformers")}}
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
