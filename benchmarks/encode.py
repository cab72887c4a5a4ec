"""Encode speed and quality in ONE run: sentence-transformers (baseline) vs our torch, ONNX and OpenVINO backends.

Rows: torch, onnx-fp32, onnx-int8-dynamic (onnxruntime dynamic int8), openvino-fp32, openvino-int8 (NNCF static int8).

Speed: the same inputs for every backend (STS-B test sentences; a fixed sample of SciFact abstracts), rounds
interleaved across backends so that load from other processes hits all of them alike; medians reported.
Quality: STS-B test Spearman from the timed sentence embeddings; SciFact test nDCG@10 on the full corpus (embeddings
through `encode_cached`, so the 5,183 abstracts are encoded once per backend and model version).

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/encode.py
    ... benchmarks/encode.py --skip-ndcg --rounds 3 --out benchmarks/results/encode_openvino.json
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

# all-MiniLM-L6-v2 shape, for the share of peak: per token 2*(4h^2 + 2h*ffn) FLOPs in the dense layers and
# 4*L*h in attention (QK^T and AV), times the layers.
LAYERS, HIDDEN, FFN = 6, 384, 1536
INT8_ROWS = ("onnx-int8-dynamic", "openvino-int8")


def peak_per_cycle(vendor: str, family: int, flags: set[str]) -> tuple[int, int, str]:
    """(fp32 FLOP, int8 ops) per cycle per core from the vector ISA, and the assumption it rests on.

    fp32: lanes x 2 (an FMA is two FLOPs) x FMA pipes. Intel AVX-512 server cores: two 512-bit FMA pipes = 64 (some
    SKUs have one: then this peak is 2x too high and shares too low). Zen 4 runs AVX-512 double-pumped on 256-bit
    pipes = 32; Zen 5 has full 512-bit pipes = 64; AVX2+FMA cores: two 256-bit pipes = 32.
    int8: VNNI's vpdpbusd does 4 int8 multiply-adds per 32-bit lane = 4x the fp32 rate; Intel AMX (TDPBUSD) does
    1,024 int8 multiply-adds = 2,048 ops per cycle per core (Intel's Sapphire Rapids figure).
    """
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 25:
            fp32, why = 32, "Zen 4: AVX-512 double-pumped on two 256-bit FMA pipes"
        else:
            fp32, why = 64, "two 512-bit FMA pipes"
    elif "fma" in flags:
        fp32, why = 32, "two 256-bit FMA pipes (AVX2)"
    else:
        fp32, why = 8, "SSE: no FMA"
    if "amx_int8" in flags:
        return fp32, 2048, why + "; int8 via AMX tiles: 2,048 ops/cycle"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return fp32, 4 * fp32, why + "; int8 via VNNI: 4x fp32"
    return fp32, 2 * fp32, why + "; int8 without VNNI: 2x fp32 (pmaddubsw)"


def model_flops(lengths: np.ndarray) -> float:
    """Forward FLOPs of the transformer layers for sequences of these (truncated) lengths."""
    lengths = lengths.astype(np.float64)
    dense = 2 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN) * lengths
    attention = 4 * lengths * lengths * HIDDEN
    return float(LAYERS * (dense + attention).sum())


def cpu_info() -> dict:
    """Model name, cores, MHz, lscpu's model and flags, and the fp32 and int8 peaks they imply."""
    import subprocess

    info: dict = {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version()}
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags: set[str] = set()
    vendor, family = "", 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name":
            info.setdefault("model", value.strip())
        elif key == "cpu MHz":
            info.setdefault("mhz", float(value))
        elif key == "vendor_id":
            vendor = vendor or value.strip()
        elif key == "cpu family":
            family = family or int(value)
        elif key == "flags" and not flags:
            flags = set(value.split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    info["isa"] = [f for f in wanted if f in flags]
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines())}
        info["lscpu"] = {"model_name": fields.get("Model name"), "vendor": fields.get("Vendor ID"),
                         "family": fields.get("CPU family"), "model": fields.get("Model"),
                         "flags": fields.get("Flags", "").split()}
    except (OSError, subprocess.SubprocessError):
        info["lscpu"] = None
    fp32, int8, why = peak_per_cycle(vendor, family, flags)
    # The clock is /proc/cpuinfo's (nominal under a hypervisor): a core that turbos above it makes shares read high.
    ghz = info.get("mhz", 2500) / 1000
    info.update({"fp32_flop_per_cycle": fp32, "int8_ops_per_cycle": int8, "peak_assumption": why,
                 "fp32_peak_gflops": round(info["cores"] * ghz * fp32, 1),
                 "int8_peak_gops": round(info["cores"] * ghz * int8, 1)})
    return info


def load_inputs(n_abstracts: int, seed: int):
    """STS-B test pairs and unique sentences; SciFact test set and a fixed abstract sample."""
    from embedops.data import load_beir, load_sts

    sts = load_sts(DATA / "stsbenchmark", "test")
    sentences = list(dict.fromkeys(sts.sentences1 + sts.sentences2))
    scifact = load_beir(DATA / "scifact", "test")
    docs = [d.full_text for d in scifact.corpus.values()]
    abstracts = random.Random(seed).sample(docs, min(n_abstracts, len(docs)))
    return sts, sentences, scifact, abstracts


def spearman(sts, sentences: list[str], emb: np.ndarray) -> float:
    """STS-B Spearman from embeddings of the unique sentences."""
    from embedops.eval import sts_scores

    pos = {s: i for i, s in enumerate(sentences)}
    e1 = emb[[pos[s] for s in sts.sentences1]]
    e2 = emb[[pos[s] for s in sts.sentences2]]
    return sts_scores(e1, e2, sts.scores)["spearman"]


def ensure_int8(model: str | None) -> dict:
    """Each backend's accepted int8 gate report; quantises (gated on STS-B dev) where there is none.

    ONNX dynamic int8 calibrates nothing and gates on STS-B dev sentences; OpenVINO static int8 calibrates its
    activation ranges on STS-B train sentences (the default when a caller has no data of its own) and gates on dev.
    """
    from embedops.data import load_sts
    from embedops.eval.quant_gate import metric_checks
    from embedops.models.export import ensure_export, int8_status
    from embedops.models.openvino_backend import int8_ir_status
    from embedops.models.quantize import quantize_model

    dev = load_sts(DATA / "stsbenchmark", "dev")
    checks = metric_checks(sts=dev)
    gates = {}
    exported = ensure_export(model)
    if int8_status(exported)[0]:
        gates["onnx-int8-dynamic"] = exported.manifest["int8"]
    else:
        report = quantize_model(model, calibration=list(dict.fromkeys(dev.sentences1 + dev.sentences2)),
                                extra_checks=checks)
        gates["onnx-int8-dynamic"] = report.as_dict()
    info, _ = int8_ir_status(exported)
    if info is not None:
        gates["openvino-int8"] = info["gate"]
    else:
        train = load_sts(DATA / "stsbenchmark", "train")
        sample = random.Random(0).sample(list(dict.fromkeys(train.sentences1 + train.sentences2)), 1000)
        gates["openvino-int8"] = quantize_model(model, calibration=sample, extra_checks=checks,
                                                backend="openvino").as_dict()
    for name, gate in gates.items():
        if not gate["passed"]:
            sys.exit(f"{name} refused by the quality gate: "
                     + "; ".join(f"{c['name']} {c['value']:.4f}" for c in gate["checks"] if not c["passed"]))
    return gates


def breakdown(encoder, texts: list[str], batch_size: int) -> dict:
    """Where an encode's time goes: tokenising, building padded arrays, the graph, and the rest."""
    from embedops.models.base import plan_batches

    t0 = time.perf_counter()
    lengths, encs = encoder.tokenize_all(texts)
    t1 = time.perf_counter()
    feeds = [encoder.feed([encs[i] for i in b.indices])
             for b in plan_batches(np.minimum(lengths, encoder.max_tokens), batch_size)]
    t2 = time.perf_counter()
    for feed in feeds:
        encoder.infer(feed)
    t3 = time.perf_counter()
    padded = sum(f["input_ids"].size for f in feeds)
    real = sum(int(f["attention_mask"].sum()) for f in feeds)
    return {"tokenize_s": t1 - t0, "pad_s": t2 - t1, "graph_s": t3 - t2, "padding_share": 1 - real / padded}


def op_profile(path: str, feeds: list[dict], threads: int) -> dict[str, float]:
    """ONNX Runtime's own per-operator time shares for these inputs."""
    import collections
    import json

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(RESULTS / ".ort-profile")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for feed in feeds:
        session.run(None, feed)
    trace = Path(session.end_profiling())
    per_op: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    total = sum(per_op.values()) or 1
    return {op: round(us / total, 3) for op, us in per_op.most_common(8)}


def ov_op_profile(encoder, feeds: list[dict], threads: int) -> dict[str, float]:
    """OpenVINO's own per-node time shares (PERF_COUNT), keyed by node type and the kernel it ran."""
    import collections

    from embedops.models.openvino_backend import openvino

    config = {"PERFORMANCE_HINT": encoder.hint, "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
              "PERF_COUNT": True}
    request = openvino().Core().compile_model(str(encoder.ir_path), "CPU", config).create_infer_request()
    per_op: collections.Counter = collections.Counter()
    for feed in feeds:
        request.infer(feed)
        for item in request.get_profiling_info():
            per_op[f"{item.node_type}/{item.exec_type}"] += item.real_time.total_seconds()
    total = sum(per_op.values()) or 1
    return {op: round(t / total, 3) for op, t in per_op.most_common(10)}


def main() -> None:
    """Run every backend on the same inputs, print the table, write encode.json and encode.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--abstracts", type=int, default=320, help="SciFact abstracts in the timed sample")
    ap.add_argument("--sentences", type=int, default=None, help="time only the first N STS-B sentences")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sentence-batch", type=int, default=64)
    ap.add_argument("--abstract-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-ndcg", action="store_true", help="speed and STS only (no full SciFact corpus)")
    ap.add_argument("--ndcg-docs", type=int, default=None,
                    help="SciFact nDCG@10 on a sample: all judged documents plus distractors up to this many")
    ap.add_argument("--ndcg-backends", default=None, help="comma-separated rows to compute nDCG@10 for (default all)")
    ap.add_argument("--out", type=Path, default=RESULTS / "encode.json")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from embedops._io import atomic_write_json, atomic_write_text
    from embedops.eval import evaluate_retrieval
    from embedops.models import load_encoder, resolve_model

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    cpu = cpu_info()
    sts, sentences, scifact, abstracts = load_inputs(args.abstracts, seed=0)
    if args.sentences:  # a quick look only: STS-B Spearman then covers just the pairs whose sentences are timed
        sentences = sentences[: args.sentences]
        keep = [i for i, (a, b) in enumerate(zip(sts.sentences1, sts.sentences2, strict=True))
                if a in set(sentences) and b in set(sentences)]
        sts.sentences1 = [sts.sentences1[i] for i in keep]
        sts.sentences2 = [sts.sentences2[i] for i in keep]
        sts.scores = [sts.scores[i] for i in keep]
    gate = ensure_int8(args.model)
    load_before = os.getloadavg()
    st = SentenceTransformer(resolve_model(args.model).location, device="cpu")
    encoders = {
        "torch": load_encoder(args.model, backend="torch"),
        "onnx-fp32": load_encoder(args.model, backend="onnx", threads=threads),
        "onnx-int8-dynamic": load_encoder(args.model, backend="onnx", quantization="int8", threads=threads),
        "openvino-fp32": load_encoder(args.model, backend="openvino", threads=threads),
        "openvino-int8": load_encoder(args.model, backend="openvino", quantization="int8", threads=threads),
    }
    if torch.cuda.is_available():  # GPU rows; sentence-transformers on the CPU stays the baseline
        import onnxruntime as ort

        encoders["torch-cuda-fp16"] = load_encoder(args.model, backend="torch", device="cuda", fp16=True)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            encoders["onnx-cuda-fp32"] = load_encoder(args.model, backend="onnx", provider="cuda")
    runners = {"sentence-transformers": lambda texts, bs: st.encode(texts, batch_size=bs, normalize_embeddings=True)}
    for name, enc in encoders.items():
        runners[name] = lambda texts, bs, enc=enc: enc.encode(texts, batch_size=bs)
    tok = encoders["onnx-fp32"]
    inputs = {"sentences": (sentences, args.sentence_batch), "abstracts": (abstracts, args.abstract_batch)}
    tokens = {k: np.minimum(tok.token_lengths(texts), tok.max_tokens) for k, (texts, _) in inputs.items()}
    for texts, bs in inputs.values():  # warm-up: first-call allocations and ORT's kernel choices
        for run in runners.values():
            run(texts[:bs], bs)
    times: dict[str, dict[str, list[float]]] = {k: {n: [] for n in runners} for k in inputs}
    embs: dict[str, dict[str, np.ndarray]] = {k: {} for k in inputs}
    # Interleaving: each round walks the inputs in chunks of several batches and runs every backend on each chunk in
    # a rotating order, so a burst of load from another process lands on all backends alike. Chunks much smaller
    # than this (4 batches) cost ONNX Runtime ~7% more than sentence-transformers on sentences, by CPU time.
    chunk = {"sentences": 16 * args.sentence_batch, "abstracts": 4 * args.abstract_batch}
    names = list(runners)
    for r in range(args.rounds):
        for kind, (texts, bs) in inputs.items():
            spent = dict.fromkeys(names, 0.0)
            parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
            for ci, start in enumerate(range(0, len(texts), chunk[kind])):
                piece = texts[start : start + chunk[kind]]
                k = (r + ci) % len(names)
                for name in names[k:] + names[:k]:
                    # Let the previous backend's worker threads stop spinning (OpenMP and ONNX Runtime both
                    # busy-wait after a parallel region), so no backend pays for the one before it.
                    time.sleep(0.3)
                    t0 = time.perf_counter()
                    parts[name].append(runners[name](piece, bs))
                    spent[name] += time.perf_counter() - t0
            for name in names:
                times[kind][name].append(spent[name])
                embs[kind][name] = np.vstack(parts[name])
            print(f"round {r + 1} {kind:9s} " + "  ".join(f"{n} {len(texts) / spent[n]:.1f}/s" for n in names),
                  flush=True)

    load_after = os.getloadavg()  # other processes on the machine would show here
    profile = {}
    for kind, (texts, bs) in inputs.items():
        for name in ("onnx-fp32", "onnx-int8-dynamic", "openvino-fp32", "openvino-int8"):
            enc = encoders[name]
            profile[f"{kind}/{name}"] = breakdown(enc, texts, bs)
            _, encs = enc.tokenize_all(texts[: 4 * bs])
            feeds = [enc.feed(encs[i : i + bs]) for i in range(0, len(encs), bs)]
            if name.startswith("onnx"):
                path = str(enc.exported.int8_path if name == "onnx-int8-dynamic" else enc.exported.fp32_path)
                profile[f"{kind}/{name}"]["ops"] = op_profile(path, feeds, threads)
            else:
                profile[f"{kind}/{name}"]["ops"] = ov_op_profile(enc, feeds, threads)
            print(f"profile {kind} {name}: {profile[f'{kind}/{name}']}", flush=True)
    rows = []
    for kind, (texts, _) in inputs.items():
        base = statistics.median(times[kind]["sentence-transformers"])
        dynamic = statistics.median(times[kind]["onnx-int8-dynamic"])
        ref = embs[kind]["sentence-transformers"]
        for name in runners:
            sec = statistics.median(times[kind][name])
            cos = (embs[kind][name] * ref).sum(axis=1)
            rows.append({
                "input": kind, "backend": name, "texts": len(texts), "tokens": int(tokens[kind].sum()),
                "texts_per_s": len(texts) / sec, "tokens_per_s": tokens[kind].sum() / sec,
                "ratio": base / sec, "vs_onnx_int8_dynamic": dynamic / sec, "seconds_median": sec,
                "seconds_all": times[kind][name],
                "fp32_peak_share": model_flops(tokens[kind]) / sec / 1e9 / cpu["fp32_peak_gflops"],
                # int8 rows against the int8 peak (their dense products run int8), the rest against fp32
                "peak_share": model_flops(tokens[kind]) / sec / 1e9
                / (cpu["int8_peak_gops"] if name in INT8_ROWS else cpu["fp32_peak_gflops"]),
                "peak_kind": "int8" if name in INT8_ROWS else "fp32",
                "cos_to_st_min": float(cos.min()), "cos_to_st_mean": float(cos.mean()),
            })
    quality = {name: {"sts_spearman": spearman(sts, sentences, embs["sentences"][name])} for name in runners}
    if not args.skip_ndcg:
        if args.ndcg_docs:
            from embedops.data import sample_beir

            scifact = sample_beir(scifact, documents=args.ndcg_docs, seed=0)
        wanted = set(args.ndcg_backends.split(",")) if args.ndcg_backends else set(encoders)
        for name, enc in encoders.items():
            if "cuda" in name or name not in wanted:
                continue
            t0 = time.perf_counter()
            res = evaluate_retrieval(enc, scifact, metrics=("ndcg@10",), show_progress=False)
            quality[name]["scifact_ndcg@10"] = res.metrics["ndcg@10"]
            print(f"nDCG@10 {name}: {res.metrics['ndcg@10']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        # sentence-transformers and our torch backend run the very same modules (cosine shown in the table)
        if "scifact_ndcg@10" in quality["torch"]:
            quality["sentence-transformers"]["scifact_ndcg@10"] = quality["torch"]["scifact_ndcg@10"]
    for row in rows:
        row.update(quality[row["backend"]])
    result = {"cpu": cpu, "threads": threads, "model": encoders["torch"].name, "rounds": args.rounds,
              "batch": {"sentences": args.sentence_batch, "abstracts": args.abstract_batch},
              "int8_gate": gate, "rows": rows, "profile": profile,
              "load_average_1min": {"before": load_before[0], "after_timing": load_after[0]},
              "ndcg_corpus": None if args.skip_ndcg else len(scifact.corpus),
              "versions": {m: __import__(m).__version__
                           for m in ("torch", "onnxruntime", "sentence_transformers", "openvino", "nncf")}}
    table = markdown(result)
    print(table)
    atomic_write_json(args.out, result)
    atomic_write_text(args.out.with_suffix(".md"), table)


def markdown(result: dict) -> str:
    """The README table: one row per input and backend."""
    cpu = result["cpu"]
    lines = [
        f"Encode throughput, {result['model']}, {cpu['cores']} cores {cpu.get('model', '')} "
        f"({', '.join(cpu.get('isa', []))}), {result['threads']} threads, batch {result['batch']['sentences']} "
        f"(sentences) / {result['batch']['abstracts']} (abstracts); median of {result['rounds']} rounds, "
        "backends interleaved chunk by chunk, "
        "ratio against sentence-transformers called directly in the same run, and against onnx-int8-dynamic. "
        f"Peak per core and cycle: {cpu['fp32_flop_per_cycle']} fp32 FLOP, {cpu['int8_ops_per_cycle']} int8 ops "
        f"({cpu['peak_assumption']}) at {cpu.get('mhz', 2500):.0f} MHz; int8 rows against the int8 peak.",
        "",
        "| input | backend | texts/s | tokens/s | vs ST | vs onnx-int8-dynamic | % of peak | min cos to ST | "
        "STS-B Spearman | SciFact nDCG@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        ndcg = r.get("scifact_ndcg@10")
        lines.append(
            f"| {r['input']} ({r['texts']}) | {r['backend']} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:,.0f} | "
            f"{r['ratio']:.2f}x | {r['vs_onnx_int8_dynamic']:.2f}x | {100 * r['peak_share']:.1f}% {r['peak_kind']} | "
            f"{r['cos_to_st_min']:.4f} | "
            f"{100 * r['sts_spearman']:.2f} | {'' if ndcg is None else f'{100 * ndcg:.2f}'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
