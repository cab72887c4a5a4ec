"""The Ray engine of batch embedding: Ray Data hands units to a pool of encoder actors, the driver writes shards.

Each actor loads the model once (from the driver's recorded `spec`, so every node checks it runs the same weights)
and embeds whole units: it reads the unit's documents from the shared dataset path, embeds them, and returns ids,
vectors and its node id. Ray Data streams the results back as they finish; the driver writes each as one atomic
shard, so no worker ever writes into the output folder and a lost node never leaves a partial file. Ray Data
restarts a lost actor and retries its units (`max_restarts=-1` and `max_task_retries=-1` are its defaults).

A bad document is an answer, not a crash: the actor returns the error with its file and line, and the driver
raises it as the same embedops error, instead of Ray retrying a unit that can never succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from embedops import errors
from embedops.errors import EmbedopsError
from embedops.scale.cluster import ClusterError, RayConnection
from embedops.scale.plan import Unit
from embedops.scale.shards import ShardResult


class UnitEmbedder:
    """A Ray Data actor: one model load, then any number of units (one per call)."""

    def __init__(self, spec: dict[str, Any], *, device: str = "cpu", text_field: str | None = None,
                 id_field: str | None = None, batch_size: int = 32):
        import ray

        ctx = ray.get_runtime_context()
        self.node_id = ctx.get_node_id()
        self.worker = ctx.get_actor_id() or ctx.get_worker_id()
        self.text_field, self.id_field, self.batch_size = text_field, id_field, batch_size
        self.encoder: Any = None
        self.error: EmbedopsError | None = None
        try:
            from embedops._console import quiet_libraries
            from embedops.models import encoder_from_spec

            quiet_libraries()
            self.encoder = encoder_from_spec(spec, **({"device": device} if device != "cpu" else {}))
        except EmbedopsError as exc:  # answered per unit: a model that cannot load here is not worth retrying
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - the same, for an unexpected loader failure
            self.error = errors.ModelError(f"cannot load the model on node {self.node_id}: "
                                           f"{type(exc).__name__}: {exc}")

    def __call__(self, batch: Any) -> Any:
        """Embed each unit of the batch (Ray Data passes one); a row per unit with vectors or an error."""
        import pyarrow as pa

        from embedops.scale.work import embed_unit

        rows: list[dict[str, Any]] = []
        for item in batch.to_pylist():
            unit = Unit.from_row(item)
            row: dict[str, Any] = {"index": unit.index, "ids": [], "vectors": b"", "dim": 0, "node_id": self.node_id,
                                   "worker": self.worker, "seconds": 0.0, "tokens": 0, "truncated": 0,
                                   "error_type": None, "error": None, "error_where": None, "error_hint": None}
            try:
                if self.error is not None:
                    raise self.error
                result = embed_unit(self.encoder, unit, text_field=self.text_field, id_field=self.id_field,
                                    batch_size=self.batch_size, node_id=self.node_id, worker=self.worker)
                vectors = np.ascontiguousarray(result.vectors, dtype=np.float32)
                row.update(ids=result.ids, vectors=vectors.tobytes(), dim=vectors.shape[1], seconds=result.seconds,
                           tokens=result.tokens, truncated=result.truncated)
            except EmbedopsError as exc:
                row.update(error_type=type(exc).__name__, error=exc.message, error_where=exc.where,
                           error_hint=exc.hint)
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=_result_schema())


def _result_schema() -> Any:
    """The schema of the rows actors return (built on use: pyarrow is imported lazily)."""
    import pyarrow as pa

    return pa.schema([("index", pa.int64()), ("ids", pa.list_(pa.string())), ("vectors", pa.binary()),
                      ("dim", pa.int32()), ("node_id", pa.string()), ("worker", pa.string()),
                      ("seconds", pa.float64()), ("tokens", pa.int64()), ("truncated", pa.int64()),
                      ("error_type", pa.string()), ("error", pa.string()), ("error_where", pa.string()),
                      ("error_hint", pa.string())])


def _result(row: dict[str, Any], units: dict[int, Unit]) -> ShardResult:
    """A result row back into a ShardResult, or the worker's error raised here as the same embedops error."""
    unit = units[int(row["index"])]
    if row["error"] is not None:
        cls = getattr(errors, row["error_type"] or "", None)
        if not (isinstance(cls, type) and issubclass(cls, EmbedopsError)):
            cls = EmbedopsError
        raise cls(row["error"], where=row["error_where"] or unit.source, hint=row["error_hint"])
    dim = int(row["dim"])
    vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dim) if dim else \
        np.zeros((0, 0), dtype=np.float32)
    return ShardResult(unit, list(row["ids"]), vectors, row["node_id"], row["worker"], float(row["seconds"]),
                       tokens=int(row["tokens"]), truncated=int(row["truncated"]))


def actor_resources(conn: RayConnection, *, workers: int | None, cpus_per_worker: float,
                    gpus_per_worker: float | None, backend: str) -> tuple[int, float, float, str]:
    """(actors, CPUs each, GPUs each, device): by default one actor per free GPU when the cluster has GPUs (torch
    backend), else one per free `cpus_per_worker` CPUs."""
    total, free = conn.resources(), conn.available()
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if float(total.get("GPU", 0.0)) >= 1 and backend == "torch" else 0.0

    def room(res: dict[str, float]) -> int:
        cpus = int(float(res.get("CPU", 0.0)) // cpus_per_worker)
        return min(cpus, int(float(res.get("GPU", 0.0)) // gpus_per_worker)) if gpus_per_worker > 0 else cpus

    # Checked against the cluster's total: actors that can never all start would leave the pool waiting for ever,
    # while resources a finished job still holds are released in a moment.
    if room(total) < (workers or 1):
        raise ClusterError(f"{workers or 1} worker(s) of {cpus_per_worker:g} CPU and {gpus_per_worker:g} GPU each do "
                           f"not fit in the cluster ({total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU)",
                           where="workers")
    # By default as many as fit in what is free now (another job or a Serve deployment may hold part of it).
    count = workers or max(1, room(free))
    return count, cpus_per_worker, gpus_per_worker, "cuda" if gpus_per_worker > 0 else "cpu"


def run_on_ray(conn: RayConnection, spec: dict[str, Any], units: list[Unit], sink: Callable[[ShardResult], None], *,
               text_field: str | None, id_field: str | None, batch_size: int, workers: int | None = None,
               cpus_per_worker: float = 1.0, gpus_per_worker: float | None = None) -> dict[str, Any]:
    """Embed `units` on the cluster; `sink` gets each finished unit (in finishing order). Returns what ran where."""
    if not units:
        return {"actors": 0}
    import ray.data  # conn.ray is this module; importing the subpackage registers `ray.data` on it

    count, cpus, gpus, device = actor_resources(conn, workers=workers, cpus_per_worker=cpus_per_worker,
                                                gpus_per_worker=gpus_per_worker, backend=spec.get("backend", "torch"))
    count = min(count, len(units))
    _quiet_ray_data()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver draws one bar of shards
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False  # a shard is written as soon as any actor finishes it
    by_index = {u.index: u for u in units}
    ds = ray.data.from_items([u.as_row() for u in units], override_num_blocks=len(units))
    ds = ds.map_batches(
        UnitEmbedder, batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=count),
        num_cpus=cpus, num_gpus=gpus or None,
        fn_constructor_kwargs={"spec": spec, "device": device, "text_field": text_field, "id_field": id_field,
                               "batch_size": batch_size},
        # Spread the actors over the nodes rather than packing one node first.
        scheduling_strategy="SPREAD")
    started = time.perf_counter()
    blocks = iter(ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0))
    try:
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - Ray's own failures (a node lost for good, an actor dying)
                raise ClusterError(f"the Ray job failed: {type(exc).__name__}: {_first_line(exc)}",
                                   hint="finished shards are kept: run the same command again to embed the "
                                        "rest") from exc
            for row in block.to_pylist():  # outside the inner try: the sink's own errors are not the cluster's
                sink(_result(row, by_index))
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:  # stop the executor and its actors now, on an error too, not at garbage collection
            close()
    return {"actors": count, "cpus_per_actor": cpus, "gpus_per_actor": gpus, "device": device,
            "seconds": round(time.perf_counter() - started, 3)}


def _quiet_ray_data() -> None:
    """Ray Data's start-up notes and advice go to the log at INFO/WARNING; keep the terminal for our own output."""
    import logging

    from embedops._console import is_verbose

    if not is_verbose():
        logging.getLogger("ray.data").setLevel(logging.ERROR)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
