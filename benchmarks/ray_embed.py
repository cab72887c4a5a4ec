"""Batch embedding of the SciFact corpus on a 2-node Ray cluster on this machine, against the local engine.

One run, in this order:

1. local engine (the baseline): the whole corpus in this process, `--shard-rows` documents per shard;
2. a cluster of two worker nodes with one CPU each and a head with none (`ray.cluster_utils.Cluster`, everything
   on 127.0.0.1), and `embedops embed
   --engine ray --address ...` started as a separate driver process, killed with SIGKILL once `--kill-driver-after`
   shards are on disk (a crash of the driver);
3. the same command again: the shards finished before the crash are kept (counted; their files are not rewritten),
   and `--kill-node-after` shards into this run a worker node that the driver is not attached to is killed (its
   raylet and actors get SIGKILL); Ray restarts the lost actor and retries its units on the surviving node, and the
   job finishes. (Should the driver die anyway, a third run resumes, and the JSON says so.)

Checked at the end: the Ray output equals the local one (same ids in the same order, cosine >= 0.9999 per document),
every unit was written exactly once across the three runs, and shards were embedded on both nodes, read from the
node id each actor recorded from its own Ray runtime context.

    HF_HUB_OFFLINE=1 flock /tmp/embedops-heavy.lock .venv/bin/python benchmarks/ray_embed.py
    ... benchmarks/ray_embed.py --docs 400 --shard-rows 40     # a quick try (not the recorded run)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
RESULTS = ROOT / "benchmarks" / "results"


def corpus(scratch: Path, docs: int | None) -> Path:
    """The SciFact corpus as it is, or its first `docs` documents (a quick try)."""
    if docs is None:
        return DATA
    path = scratch / f"scifact-{docs}.jsonl"
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        path.write_text("".join(line for _, line in zip(range(docs), fh, strict=False)), encoding="utf-8")
    return path


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity row by row."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def shards_on_disk(folder: Path) -> dict[int, dict]:
    """Unit index -> the record a finished shard carries (node id, worker, seconds)."""
    from embedops.scale.shards import shard_record

    out = {}
    for file in sorted(folder.glob("part-*.parquet")):
        record = shard_record(file)
        if record is not None:
            out[int(record["unit"]["index"])] = record
    return out


def machine() -> dict:
    """CPU model, cores and load, for reading the timings."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()}


def main() -> None:
    """Run the three jobs and print the table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=None, help="embed only the first N documents (a quick try)")
    parser.add_argument("--shard-rows", type=int, default=250)
    parser.add_argument("--kill-driver-after", type=int, default=6, help="shards on disk before the driver dies")
    parser.add_argument("--kill-node-after", type=int, default=4, help="shards into the rerun before a node dies")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/embedops-bench-ray-embed"))
    parser.add_argument("--out", type=Path, default=RESULTS / "ray_embed.json")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    data = corpus(args.scratch, args.docs)
    result: dict = {"machine": machine(), "data": str(data), "shard_rows": args.shard_rows}

    from embedops.project import Project
    from embedops.scale import read_embeddings
    from embedops.scale.cluster import ray_module

    project = Project()
    # -- 1. the local engine -----------------------------------------------------------------------------------
    local_out = args.scratch / "local"
    shutil.rmtree(local_out, ignore_errors=True)
    local = project.embed(data, local_out, shard_rows=args.shard_rows)
    result["local"] = {"documents": local.documents, "shards": local.shards, "seconds": round(local.seconds, 1),
                       "embed_seconds": round(local.embed_seconds, 1), "docs_per_s": round(local.docs_per_second, 2)}
    print(f"local: {local.documents} docs, {local.shards} shards, {local.embed_seconds:.1f} s", flush=True)

    # -- 2. a 2-node cluster; a driver killed mid-job ------------------------------------------------------------
    ray_module(loopback=True)  # telemetry off, 127.0.0.1 kept as it is: before ray.cluster_utils is imported
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    # Two nodes of one CPU each do the work. The head holds no CPU: it keeps the cluster's state (GCS), which a
    # cluster cannot lose, so the node killed below is always a worker. A driver joins one of the nodes at random
    # (all are 127.0.0.1 here); the node killed is a worker that is not the driver's.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
    cluster.wait_for_nodes()
    roles = {cluster.head_node.node_id: "head", workers[0].node_id: "worker-1", workers[1].node_id: "worker-2"}
    result["cluster"] = {"address": cluster.address, "start_s": round(time.perf_counter() - started, 1),
                         "nodes": {role: node for node, role in roles.items()},
                         "cpus": {"head": 0, "worker-1": 1, "worker-2": 1}}
    print(f"cluster: 2 worker nodes + head at {cluster.address} in {result['cluster']['start_s']} s", flush=True)
    ray_out = args.scratch / "ray"
    shutil.rmtree(ray_out, ignore_errors=True)
    # The drivers are separate processes (the CLI), as a user runs them; this process only watches the output
    # folder and kills: it is not connected to Ray, so no node it removes is its own.
    command = [str(Path(sys.executable).parent / "embedops"), "embed", str(data), "-o", str(ray_out), "--engine",
               "ray", "--address", cluster.address, "--shard-rows", str(args.shard_rows)]
    driver, seconds = run_until(command, args.scratch / "driver-1.log", ray_out, args.kill_driver_after,
                                lambda proc: proc.send_signal(signal.SIGKILL))
    before_crash = shards_on_disk(ray_out)
    stamps = {i: (ray_out / f"part-{i:05d}.parquet").stat().st_mtime_ns for i in before_crash}
    temps = sorted(p.name for p in ray_out.iterdir() if p.name.endswith(".tmp"))
    result["driver_crash"] = {"killed_mid_job": driver.returncode == -signal.SIGKILL, "seconds": round(seconds, 1),
                              "shards_on_disk": len(before_crash), "temp_files_left": temps,
                              "shards_per_node": _per_node(before_crash.values(), roles)}
    print(f"driver killed after {len(before_crash)} shards ({seconds:.1f} s); temp files left: {temps}", flush=True)

    # -- 3. rerun: resume, and lose a worker node midway ---------------------------------------------------------
    killed_at: list[tuple[float, float]] = []  # (perf_counter, wall clock) of the node kill
    killed: list[str] = []

    def kill_worker_node(_: subprocess.Popen) -> None:
        driver_node = json.loads((ray_out / "manifest.json").read_text()).get("driver_node")
        victim = next(w for w in workers if w.node_id != driver_node)
        killed_at.append((time.perf_counter(), time.time()))
        killed.append(roles[victim.node_id])
        cluster.remove_node(victim, allow_graceful=False)  # its raylet, object store and actors: SIGKILL

    started = time.perf_counter()
    rerun, seconds = run_until(command, args.scratch / "driver-2.log", ray_out,
                               len(before_crash) + args.kill_node_after, kill_worker_node)
    summary = (args.scratch / "driver-2.log").read_text().strip().splitlines()
    third = None
    if rerun.returncode != 0:  # the driver itself was on the killed node: one more rerun resumes the rest
        on_disk = len(list(ray_out.glob("part-*.parquet")))
        third, third_seconds = run_until(command, args.scratch / "driver-3.log", ray_out, 10**9, lambda _: None)
        third_summary = (args.scratch / "driver-3.log").read_text().strip().splitlines()
        result["third_run"] = {"exit_code": third.returncode, "shards_on_disk_before": on_disk,
                               "seconds": round(third_seconds, 1), "summary": third_summary[-1:]}
    manifest = json.loads((ray_out / "manifest.json").read_text())
    final = shards_on_disk(ray_out)
    fresh = {i: r for i, r in final.items() if i not in before_crash}
    after_kill = [r for r in fresh.values() if killed_at and r["written_at"] > killed_at[0][1]]
    result["resume_and_node_kill"] = {
        "exit_code": rerun.returncode, "summary": summary[-1] if summary else "", "seconds": round(seconds, 1),
        "resumed_shards": sum(1 for sh in manifest["shards"] if sh["resumed"]),
        "embedded_shards": sum(1 for sh in manifest["shards"] if not sh["resumed"]),
        "node_killed": killed[0] if killed else None,
        "node_killed_after_s": round(killed_at[0][0] - started, 1) if killed_at else None,
        "shards_after_node_kill": len(after_kill), "shards_after_node_kill_per_node": _per_node(after_kill, roles),
        "shards_per_node": _per_node(fresh.values(), roles),
        "driver_node": roles.get(manifest.get("driver_node"), manifest.get("driver_node")),
        "nodes_alive_at_end": [roles.get(n, n) for n in manifest["cluster"]["nodes_alive"]],
        "removed_temp_files": manifest["removed_temp_files"],
        "shards_from_before_the_crash_rewritten": sorted(
            i for i, stamp in stamps.items() if (ray_out / f"part-{i:05d}.parquet").stat().st_mtime_ns != stamp),
        "embed_seconds": manifest["embed_seconds"],
    }
    cluster.shutdown()

    # -- checks ----------------------------------------------------------------------------------------------------
    ids, vectors = read_embeddings(ray_out)
    local_ids, local_vectors = read_embeddings(local_out)
    cos = cosines(vectors, local_vectors) if ids == local_ids else np.zeros(1)
    result["equality"] = {"same_ids_in_order": ids == local_ids, "documents": len(ids),
                          "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
                          "docs_below_0.9999": int((cos < 0.9999).sum())}
    resumed = result["resume_and_node_kill"]
    result["all_units_once"] = (len(final) == local.shards and resumed["resumed_shards"] == len(before_crash)
                                and not resumed["shards_from_before_the_crash_rewritten"])
    result["shards_per_node_total"] = _per_node(final.values(), roles)
    ray_docs = sum(r["unit"]["rows"] for r in fresh.values())
    result["ray_rerun_docs_per_s"] = round(ray_docs / resumed["embed_seconds"], 2) if resumed["embed_seconds"] else None
    _print(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    ok = (result["equality"]["same_ids_in_order"] and result["equality"]["docs_below_0.9999"] == 0
          and result["all_units_once"] and {"worker-1", "worker-2"} <= set(result["shards_per_node_total"]))
    sys.exit(0 if ok else 1)


def run_until(command: list[str], log_path: Path, folder: Path, shards: int, action):
    """Start a driver; once `shards` shards are on disk, call `action(proc)`; return (proc, seconds) when it ends."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
        while proc.poll() is None and len(list(folder.glob("part-*.parquet"))) < shards:
            time.sleep(0.05)
        if proc.poll() is None:
            action(proc)
        proc.wait()
    return proc, time.perf_counter() - started


def _per_node(records, roles: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        role = roles.get(r["node_id"], r["node_id"][:8])
        out[role] = out.get(role, 0) + 1
    return out


def _print(r: dict) -> None:
    loc, crash, rerun, eq = r["local"], r["driver_crash"], r["resume_and_node_kill"], r["equality"]
    rows = [
        ("local engine (1 process)", f"{loc['shards']} embedded", f"{loc['embed_seconds']:.1f}",
         f"{loc['docs_per_s']:.2f}", "local"),
        ("ray, driver SIGKILLed", f"{crash['shards_on_disk']} on disk", f"{crash['seconds']:.1f}", "-",
         _fmt(crash["shards_per_node"])),
        ("ray rerun, worker node killed", f"{rerun['resumed_shards']} kept + {rerun['embedded_shards']} embedded",
         f"{rerun['seconds']:.1f}", f"{r['ray_rerun_docs_per_s']}", _fmt(rerun["shards_per_node"])),
    ]
    print()
    print(f"{'run':32} {'shards':28} {'seconds':>8} {'docs/s':>8}  shards per node")
    for row in rows:
        print(f"{row[0]:32} {row[1]:28} {row[2]:>8} {row[3]:>8}  {row[4]}")
    print(f"\n{rerun['node_killed']} killed {rerun['node_killed_after_s']} s into the rerun; "
          f"{rerun['shards_after_node_kill']} shards after it ({_fmt(rerun['shards_after_node_kill_per_node'])}); "
          f"nodes alive at the end: "
          f"{rerun['nodes_alive_at_end']}")
    if "third_run" in r:
        print(f"the driver died with the node; a third run finished the job: {r['third_run']}")
    print(f"shards from before the crash: {crash['shards_on_disk']}, kept by the rerun: {rerun['resumed_shards']}, "
          f"rewritten: {len(rerun['shards_from_before_the_crash_rewritten'])}; driver on the {rerun['driver_node']} "
          f"node; every unit once: {r['all_units_once']}")
    print(f"ray vs local: same ids in order {eq['same_ids_in_order']}, {eq['documents']} docs, min cosine "
          f"{eq['min_cosine']:.6f}, mean {eq['mean_cosine']:.6f}, below 0.9999: {eq['docs_below_0.9999']}; "
          f"shards per node over the whole job: {_fmt(r['shards_per_node_total'])}")


def _fmt(d: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "-"


if __name__ == "__main__":
    main()
