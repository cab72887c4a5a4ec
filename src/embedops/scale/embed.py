"""`embed_dataset`: embed a prepared dataset into Parquet shards, locally or on Ray, resumable after any crash.

The steps are the same for both engines: plan the units (refusing a missing or invalid input before anything
starts), connect to Ray when asked (refusing an address that does not answer before the model loads), load the
model once here for its spec, claim the output folder, keep the shards an earlier run finished, embed the rest,
write each shard atomically as it arrives, and finally the manifest saying the job is complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_json
from embedops.config import checks
from embedops.errors import InputError
from embedops.scale.plan import Plan, make_plan
from embedops.scale.shards import (
    FORMAT,
    OutputFolder,
    ShardResult,
    check_unique,
    node_counts,
    pid_worker,
)

ENGINES = ("local", "ray")
_UNSET: Any = object()


@dataclass
class EmbedReport:
    """What a job did: documents and shards, how many were embedded now and how many an earlier run finished."""

    output: Path
    engine: str
    documents: int
    shards: int
    embedded_shards: int
    resumed_shards: int
    seconds: float  # the whole call: planning, connecting, loading the model, embedding, writing
    embed_seconds: float  # from the first unit handed out to the last shard written
    nodes: dict[str, int]  # node id -> shards embedded by this run
    manifest: dict[str, Any]

    @property
    def docs_per_second(self) -> float:
        """Documents embedded by this run per second of embedding (model loading and planning excluded)."""
        fresh = sum(s["rows"] for s in self.manifest["shards"] if not s["resumed"])
        return fresh / self.embed_seconds if self.embed_seconds > 0 else 0.0


def embed_dataset(project: Any, data: str | Path, output: str | Path, *, engine: str = "local",
                  address: str | None = None, model: Any = _UNSET, backend: str | None = None,
                  workers: int | None = None, shard_rows: int = 1000, batch_size: int | None = None,
                  text_field: str | None = None, id_field: str | None = None, overwrite: bool = False,
                  cpus_per_worker: float = 1.0, gpus_per_worker: float | None = None,
                  connect_timeout: float = 30.0, show_progress: bool = False,
                  on_shard: Callable[[ShardResult], None] | None = None) -> EmbedReport:
    """Embed every document of `data` into Parquet shards under `output` (see `embedops.scale.shards`).

    `engine` "local" embeds in this process; "ray" on a Ray cluster (`address`, or a local instance started here).
    A rerun with the same inputs and model keeps the finished shards; `on_shard` is called after each shard written.
    """
    checks.choice(engine, ENGINES, "engine", optional=False)
    checks.positive_int(workers, "workers")
    checks.positive_int(batch_size, "batch_size")
    checks.at_least(cpus_per_worker, 0.01, "cpus_per_worker", optional=False)
    checks.at_least(gpus_per_worker, 0, "gpus_per_worker")
    checks.at_least(connect_timeout, 0.1, "connect_timeout", optional=False)
    if engine == "local" and address is not None:
        raise InputError("an address needs the ray engine", where="address", hint="pass --engine ray")
    started = time.perf_counter()
    plan = make_plan(data, shard_rows, text_field=text_field, id_field=id_field)
    connector, early = None, None
    if engine == "ray":
        from embedops.scale.cluster import connect

        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:  # a cluster that does not answer is refused now, before the model loads
            early = connect(address, timeout=connect_timeout)

        def connector() -> Any:
            # Ray on this machine is started only when a shard is left to embed: a finished job needs none.
            return early or connect(None, timeout=connect_timeout)

    try:
        encoder = project.load_encoder(**({} if model is _UNSET else {"model": model}), backend=backend)
        return _run(project, encoder, plan, Path(output), connector, engine=engine, workers=workers,
                    batch_size=batch_size or project.config.model.batch_size, overwrite=overwrite,
                    cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, show_progress=show_progress,
                    on_shard=on_shard, started=started)
    finally:
        if early is not None:
            early.close()


def _run(project: Any, encoder: Any, plan: Plan, output: Path, connector: Callable[[], Any] | None, *, engine: str,
         workers: int | None, batch_size: int, overwrite: bool, cpus_per_worker: float,
         gpus_per_worker: float | None, show_progress: bool, on_shard: Callable[[ShardResult], None] | None,
         started: float) -> EmbedReport:
    spec = encoder.spec()
    fingerprint = spec["fingerprint"]
    folder = OutputFolder(output, plan.key(fingerprint), fingerprint, encoder.output_dimension)
    manifest: dict[str, Any] = {
        "format": FORMAT, "status": "running", "plan_key": folder.plan_key, "engine": engine,
        "model": spec, "dimension": encoder.output_dimension, "kind": "document", "shard_rows": plan.shard_rows,
        "text_field": plan.text_field, "id_field": plan.id_field, "inputs": plan.inputs,
        "documents": plan.documents, "units": len(plan.units)}
    results: dict[int, ShardResult] = {}
    conn = None
    # Reach the cluster before the output folder is touched (a cluster that fails leaves nothing behind), and only
    # when a shard is missing.
    if connector is not None and (overwrite or len(folder.done_units(plan)) < len(plan.units)):
        conn = connector()
        manifest["driver_node"] = conn.ray.get_runtime_context().get_node_id()  # the node this process joined
    try:
        folder.prepare(manifest, overwrite=overwrite)
        results.update(folder.finished(plan))
        pending = [u for u in plan.units if u.index not in results]
        from embedops._progress import start_progress

        progress = start_progress(show_progress, len(plan.units), f"embedding shards ({engine})")
        embed_started = time.perf_counter()
        if progress is not None:
            progress[0].advance(progress[1], len(results))

        def sink(result: ShardResult) -> None:
            folder.write(result)
            results[result.unit.index] = result
            if progress is not None:
                progress[0].advance(progress[1], 1)
            if on_shard is not None:
                on_shard(result)

        try:
            if engine == "local":
                cluster = _run_local(encoder, plan, pending, sink, batch_size)
            elif not pending:  # every shard was done: no cluster to start or reach
                cluster = {"actors": 0}
            else:
                from embedops.scale.ray_embed import run_on_ray

                if conn is None:  # a shard that looked done was not readable after all
                    assert connector is not None
                    conn = connector()
                    manifest["driver_node"] = conn.ray.get_runtime_context().get_node_id()
                cluster = run_on_ray(conn, spec, pending, sink, text_field=plan.text_field, id_field=plan.id_field,
                                     batch_size=batch_size, workers=workers, cpus_per_worker=cpus_per_worker,
                                     gpus_per_worker=gpus_per_worker)
                cluster["address"] = conn.address
                cluster["nodes_alive"] = conn.nodes()
        finally:
            if progress is not None:
                progress[0].stop()
        check_unique(results)
        seconds = time.perf_counter() - started
        embed_seconds = time.perf_counter() - embed_started
        shards = [results[u.index].record() for u in plan.units]
        manifest.update(status="complete", seconds=round(seconds, 3), embed_seconds=round(embed_seconds, 3),
                        cluster=cluster, shards=shards,
                        nodes=node_counts(results), removed_temp_files=folder.removed_temps,
                        finished_at=time.time())
        atomic_write_json(output / "manifest.json", manifest)
    finally:
        folder.unlock()
        if conn is not None:
            conn.close()
    resumed = sum(1 for r in results.values() if r.resumed)
    return EmbedReport(output, engine, plan.documents, len(plan.units), len(plan.units) - resumed, resumed,
                       seconds, embed_seconds, manifest["nodes"], manifest)


def _run_local(encoder: Any, plan: Plan, pending: list, sink: Callable[[ShardResult], None],
               batch_size: int) -> dict[str, Any]:
    """The baseline engine: the same units, one after another, in this process."""
    from embedops.scale.work import embed_unit

    worker = pid_worker()
    for unit in pending:
        sink(embed_unit(encoder, unit, text_field=plan.text_field, id_field=plan.id_field, batch_size=batch_size,
                        node_id="local", worker=worker))
    return {"actors": 0, "worker": worker}
