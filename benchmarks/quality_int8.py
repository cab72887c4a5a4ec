"""Quality of every int8 backend against fp32: STS-B test Spearman, SciFact test nDCG@10, min cosine to fp32.

Rows: torch (sentence-transformers modules, the fp32 reference), onnx-fp32, onnx-int8-dynamic, openvino-fp32,
openvino-int8 (NNCF static). Scores come from the project's own evaluation (`embedops.eval.evaluate_sts` and
`evaluate_retrieval`: MTEB's document = title + " " + text, the model's 256 tokens, cosine, exact search, trec_eval),
on the full SciFact corpus unless `--ndcg-docs` samples it. An int8 row passes when neither score is more than
`--max-drop` points (default 0.5) below EITHER fp32 reference (torch and its own runtime's fp32). The int8 models are
the ones `benchmarks/encode.py` uses (quantised through the gate on STS-B dev when the cache has none), and the
recommendation is the fastest passing int8 row by the speed benchmark's interleaved ratios (`--speed`).

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/quality_int8.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# int8 row -> the fp32 row of its own runtime (it is gated against that one); torch is everyone's reference.
INT8_OF = {"onnx-int8-dynamic": "onnx-fp32", "openvino-int8": "openvino-fp32"}
REFERENCE = "torch"


def min_cosines(vectors: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Minimum and mean cosine of each text's embedding to the reference's, per input set and over all of them."""
    out: dict[str, float] = {}
    every = []
    for part, vec in vectors.items():
        cos = np.sum(vec * ref[part], axis=1)
        every.append(cos)
        out[f"min_{part}"] = float(cos.min())
    cos = np.concatenate(every)
    out.update({"min": float(cos.min()), "mean": float(cos.mean()), "texts": int(cos.size)})
    return out


def evaluate(name: str, encoder, sts, scifact) -> tuple[dict, dict[str, np.ndarray]]:
    """Spearman and nDCG@10 through `embedops.eval`, and the embeddings they scored (read back from the cache)."""
    from embedops.eval import evaluate_retrieval, evaluate_sts
    from embedops.eval.cache import encode_cached

    t0 = time.perf_counter()
    sts_res = evaluate_sts(encoder, sts)
    ret = evaluate_retrieval(encoder, scifact, metrics=("ndcg@10",))
    seconds = time.perf_counter() - t0
    # Cache hits: the very vectors the two evaluations scored (same fingerprint, texts, kind and batch size).
    sentences = list(dict.fromkeys(sts.sentences1 + sts.sentences2))
    vectors = {"sts_sentences": encode_cached(encoder, sentences),
               "scifact_documents": encode_cached(encoder, [d.full_text for d in scifact.corpus.values()],
                                                  kind="document"),
               "scifact_queries": encode_cached(encoder, list(scifact.queries.values()), kind="query")}
    row = {"backend": name, "sts_spearman": float(sts_res["spearman"]), "scifact_ndcg@10": ret.metrics["ndcg@10"],
           "documents": ret.info["documents"], "queries": ret.info["queries"],
           "corpus_encode_seconds": ret.info["corpus_encode_seconds"],
           "truncated_documents": ret.info["truncated_inputs"], "seconds": round(seconds, 1)}
    print(f"{name}: Spearman {100 * row['sts_spearman']:.2f}, nDCG@10 {100 * row['scifact_ndcg@10']:.2f} "
          f"({seconds:.0f} s; corpus {ret.info['corpus_encode_seconds']:.0f} s)", flush=True)
    return row, vectors


def judge(rows: dict[str, dict], vectors: dict[str, dict], max_drop: float) -> None:
    """Deltas (points) of each int8 row against torch and its own fp32, min cosines, and the pass verdict."""
    for int8, own in INT8_OF.items():
        if int8 not in rows:
            continue
        row = rows[int8]
        failed = []
        refs = [r for r in (REFERENCE, own) if r in rows]  # a partial run (--backends) judges what it has
        for ref in refs:
            for metric in ("sts_spearman", "scifact_ndcg@10"):
                delta = 100 * (row[metric] - rows[ref][metric])
                row[f"delta_{metric}_vs_{ref}"] = round(delta, 3)
                if delta < -max_drop:
                    failed.append(f"{metric} vs {ref}: {delta:+.2f} points (limit -{max_drop})")
            row[f"cosine_to_{ref}"] = min_cosines(vectors[int8], vectors[ref])
        row["failed"] = failed
        row["passed"] = not failed
        # "within" read both ways: a gain over 0.5 points is no failure, but it is flagged (int8 is not fp32).
        row["within_abs"] = all(abs(row[f"delta_{m}_vs_{r}"]) <= max_drop
                                for r in refs for m in ("sts_spearman", "scifact_ndcg@10"))
    for fp32 in ("onnx-fp32", "openvino-fp32"):
        if fp32 in rows and REFERENCE in rows:
            rows[fp32]["cosine_to_torch"] = min_cosines(vectors[fp32], vectors[REFERENCE])


def recommend(rows: dict[str, dict], speed_file: Path) -> dict:
    """The fastest int8 row that passed, by the median ratios to onnx-int8-dynamic in the speed benchmark."""
    speed = json.loads(speed_file.read_text())
    ratios: dict[str, dict[str, float]] = {}
    for r in speed["rows"]:
        ratios.setdefault(r["backend"], {})[r["input"]] = r["vs_onnx_int8_dynamic"]
    passing = [n for n in INT8_OF if rows.get(n, {}).get("passed") and n in ratios]
    best = max(passing, key=lambda n: min(ratios[n].values()), default=None)
    return {"backend": best, "speed_source": str(speed_file.relative_to(ROOT)), "vs_onnx_int8_dynamic": ratios,
            "passing": passing, "cpu": speed["cpu"].get("model")}


def markdown(result: dict) -> str:
    """The quality table: scores in points, deltas against torch fp32 and the row's own fp32, min cosines."""
    rows = result["rows"]
    lines = [
        f"int8 quality, {result['model']}: STS-B test Spearman ({result['sts_pairs']} pairs) and SciFact test nDCG@10 "
        f"({result['scifact_queries']} queries, {result['scifact_documents']} documents) through `embedops.eval`; "
        f"a row passes when no score is more than {result['max_drop']} points below torch fp32 or its own fp32. "
        f"Min cosine over the STS sentences, SciFact documents and queries. "
        f"Run time {result['seconds'] / 60:.1f} min.",
        "",
        "| backend | STS-B Spearman | Δ vs torch | Δ vs own fp32 | SciFact nDCG@10 | Δ vs torch | Δ vs own fp32 | "
        "min cos to torch | min cos to own fp32 | mean cos to own fp32 | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows.items():
        own = INT8_OF.get(name)
        cells = [name, f"{100 * r['sts_spearman']:.2f}"]
        deltas = {m: [f"{r[f'delta_{m}_vs_{ref}']:+.2f}" if f"delta_{m}_vs_{ref}" in r else ""
                      for ref in (REFERENCE, own)]
                  for m in ("sts_spearman", "scifact_ndcg@10")}
        cells += deltas["sts_spearman"] + [f"{100 * r['scifact_ndcg@10']:.2f}"] + deltas["scifact_ndcg@10"]
        to_torch = r.get("cosine_to_torch", {})
        to_own = r.get(f"cosine_to_{own}", {}) if own else {}
        cells += [f"{c[k]:.4f}" if c else "" for c, k in ((to_torch, "min"), (to_own, "min"), (to_own, "mean"))]
        cells.append(("pass" if r["passed"] else "FAIL: " + "; ".join(r["failed"])) if own else "reference")
        lines.append("| " + " | ".join(cells) + " |")
    for name, r in rows.items():
        if r.get("within_abs") is False:  # a gain beyond the limit passes the gate, but is said out loud
            above = sorted({k.split("_vs_")[0].removeprefix("delta_") for k, v in r.items()
                            if k.startswith("delta_") and v > result["max_drop"]})
            lines += ["", f"{name}: {', '.join(above)} more than {result['max_drop']} points ABOVE fp32: a gain, so "
                      "it passes (no score fell by more than the limit), but it is not within +/-0.5 of fp32."]
    rec = result["recommended"]
    ratios = rec["vs_onnx_int8_dynamic"].get(rec["backend"] or "", {})
    lines += ["", f"Recommended by `embedops quantize`: **{rec['backend']}** (fastest passing row; "
              + ", ".join(f"{v:.2f}x onnx-int8-dynamic on {k}" for k, v in ratios.items())
              + f" in `{rec['speed_source']}`, {rec['cpu']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Evaluate every backend, judge the int8 rows, write quality_int8.json and .md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--ndcg-docs", type=int, default=None, help="sample SciFact: judged documents + distractors")
    ap.add_argument("--backends", default=None, help="comma-separated rows (default: all five)")
    ap.add_argument("--max-drop", type=float, default=0.5, help="allowed drop, in points")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--speed", type=Path, default=RESULTS / "encode_openvino.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "quality_int8.json")
    ap.add_argument("--table-only", action="store_true", help="rewrite the .md from the existing --out JSON")
    args = ap.parse_args()
    if args.table_only:
        args.out.with_suffix(".md").write_text(markdown(json.loads(args.out.read_text())))
        return

    from embedops._console import quiet_libraries
    from embedops._io import atomic_write_json, atomic_write_text, cache_root
    from embedops.data import load_beir, load_sts, sample_beir
    from embedops.models import load_encoder
    from encode import cpu_info, ensure_int8

    quiet_libraries()
    started = time.perf_counter()
    threads = args.threads or len(os.sched_getaffinity(0))
    sts = load_sts(DATA / "stsbenchmark", "test")
    scifact = load_beir(DATA / "scifact", "test")
    if args.ndcg_docs:
        scifact = sample_beir(scifact, documents=args.ndcg_docs, seed=0)
    gates = ensure_int8(args.model)
    makers = {
        "torch": lambda: load_encoder(args.model, backend="torch"),
        "onnx-fp32": lambda: load_encoder(args.model, backend="onnx", threads=threads),
        "onnx-int8-dynamic": lambda: load_encoder(args.model, backend="onnx", quantization="int8", threads=threads),
        "openvino-fp32": lambda: load_encoder(args.model, backend="openvino", threads=threads),
        "openvino-int8": lambda: load_encoder(args.model, backend="openvino", quantization="int8", threads=threads),
    }
    wanted = args.backends.split(",") if args.backends else list(makers)
    rows, vectors = {}, {}
    for name in wanted:
        encoder = makers[name]()
        rows[name], vectors[name] = evaluate(name, encoder, sts, scifact)
        rows[name]["fingerprint"] = encoder.fingerprint
        del encoder
    judge(rows, vectors, args.max_drop)
    result = {"model": load_encoder(args.model, backend="onnx", threads=threads).name, "max_drop": args.max_drop,
              "sts_pairs": len(sts.scores), "scifact_documents": len(scifact.corpus),
              "scifact_queries": len(scifact.queries), "threads": threads, "cache": str(cache_root()),
              "int8_gate": gates, "rows": rows, "recommended": recommend(rows, args.speed),
              "seconds": round(time.perf_counter() - started, 1),
              "cpu": {k: v for k, v in cpu_info().items() if k != "lscpu"},
              "versions": {m: __import__(m).__version__ for m in ("torch", "onnxruntime", "openvino", "nncf")}}
    table = markdown(result)
    print(table)
    atomic_write_json(args.out, result)
    atomic_write_text(args.out.with_suffix(".md"), table)


if __name__ == "__main__":
    main()
