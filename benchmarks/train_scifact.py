"""Fine-tune the default model on SciFact's train qrels with `embedops train`'s defaults; before/after on test.

Run (heavy: ~15 min training + ~5 min re-encoding the corpus on 2 cores), under the shared CPU lock:

    HF_HUB_OFFLINE=1 flock /tmp/embedops-cpu.lock .venv/bin/python benchmarks/train_scifact.py

The baseline is the base model scored in the same process (its corpus embeddings come from the cache);
the peer figure (plain MNRL, sentence-transformers defaults, 3 epochs: 0.6839 in 1,160 s) is quoted from
/work/shared/PEERS.md, not rerun: it costs 20 minutes of the shared CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "train_scifact.json"
PEER = {"recipe": "MNRL, batch 32, lr 2e-5, 3 epochs, 256 tokens (PEERS.md)", "ndcg@10": 0.6839,
        "train_seconds": 1160}
TARGETS = {"ndcg@10_min": 0.690, "ci_low_above": 0.0, "train_seconds_max": 20 * 60, "sts_drop_points_max": 2.0}


def main() -> None:
    """Train, evaluate, print the table, write the JSON."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=None, help="registry folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the registry (and the tuned model)")
    args = parser.parse_args()

    from embedops._console import quiet_libraries
    from embedops.train import TrainParams, run_training

    quiet_libraries()
    registry = args.registry or Path(tempfile.mkdtemp(prefix="embedops-train-bench-"))
    params = TrainParams()  # the defaults `embedops train` uses
    started = time.perf_counter()
    report = run_training(DATA / "scifact", name="scifact-minilm", registry_root=registry, params=params,
                          sts_path=DATA / "stsbenchmark", show_progress=True)
    total = time.perf_counter() - started
    m = report.manifest
    ev, sts = m["evaluation"], m["sts"]
    c = ev["comparison"]["ndcg@10"]
    train_s = m["training"]["seconds"]
    met = {
        "ndcg@10>=0.690": ev["after"]["ndcg@10"] >= TARGETS["ndcg@10_min"],
        "ci_low>0": c["ci_low"] > TARGETS["ci_low_above"],
        "train<=20min": train_s <= TARGETS["train_seconds_max"],
        "sts_drop<=2pts": sts["drop_points"] <= TARGETS["sts_drop_points_max"],
    }
    rows = [
        ("SciFact test nDCG@10", f"{ev['before']['ndcg@10']:.4f}", f"{ev['after']['ndcg@10']:.4f}",
         f"{c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] p={c['p_value']:.4f}"),
        *[(f"SciFact test {k}", f"{ev['before'][k]:.4f}", f"{ev['after'][k]:.4f}",
           f"{ev['comparison'][k]['diff']:+.4f}") for k in ("recall@100", "mrr@10", "map@100")],
        ("STS-B test Spearman", f"{sts['before']:.4f}", f"{sts['after']:.4f}", f"drop {sts['drop_points']:.2f} pts"),
        ("training wall time (s)", "", f"{train_s:.0f}", f"peer plain MNRL {PEER['train_seconds']} s"),
        ("nDCG@10 / base", "1.000", f"{ev['after']['ndcg@10'] / ev['before']['ndcg@10']:.3f}",
         f"peer {PEER['ndcg@10'] / ev['before']['ndcg@10']:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)}  {'base':>8}  {'tuned':>8}  difference")
    for name, b, a, d in rows:
        print(f"{name.ljust(width)}  {b:>8}  {a:>8}  {d}")
    print("targets:", ", ".join(f"{k} {'MET' if v else 'MISSED'}" for k, v in met.items()))
    result = {
        "benchmark": "train_scifact",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "params": m["params"],
        "mining": m["mining"],
        "training": m["training"],
        "timings": {**report.timings, "benchmark_total_seconds": round(total, 1)},
        "data": m["data"],
        "evaluation": {k: v for k, v in ev.items() if k != "comparison"},
        "paired_test": ev["comparison"],
        "sts": sts,
        "peer": PEER,
        "targets": TARGETS,
        "met": met,
        "libraries": m["libraries"],
        "registered": m["ref"],
        "created_at": m["created_at"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    if not args.keep and args.registry is None:
        shutil.rmtree(registry, ignore_errors=True)


if __name__ == "__main__":
    main()
