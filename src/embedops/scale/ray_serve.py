"""Serving replicas on Ray Serve: the same FastAPI app as `embedops serve`, deployed as N replicas.

Each replica builds `create_app(Project(config), settings)` in its constructor, loads and warms its models and
opens its collections there (so `serve.run` returns only when every replica is ready, and a replica that cannot
start fails the deployment with its reason), then answers through Ray Serve's HTTP proxy. Replicas share nothing in
memory: a collection that every replica must see, including each other's writes, lives in an external store
(`index.store: milvus://...`), and the event log in a shared database (or is off).

Every response carries `X-Embedops-Replica` and `X-Embedops-Node`, so a client (or a test) can tell which replica on
which node answered.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from embedops._optional import require
from embedops.scale.cluster import RayConnection, connect

REPLICA_HEADER = b"x-embedops-replica"
NODE_HEADER = b"x-embedops-node"
DEFAULT_APP_NAME = "embedops"


class _ReplicaHeaders:
    """ASGI middleware: names the replica and node on every response."""

    def __init__(self, app: Any, replica: str, node: str):
        self.app = app
        self.headers = [(REPLICA_HEADER, replica.encode()), (NODE_HEADER, node.encode())]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_named)


def replica_app(project_type: Any, config: Any, settings: dict[str, Any]) -> Any:
    """One replica's app, loaded and warmed (runs in the replica's constructor, on its node).

    `project_type` is the caller's `Project` class, passed in (pickled by reference) so this package never imports
    the facade that calls it."""
    import ray
    from ray import serve

    from embedops._console import quiet_libraries
    from embedops.serve.app import create_app
    from embedops.serve.settings import ServeSettings

    quiet_libraries()
    project = project_type(config)
    app = create_app(project, ServeSettings(**settings))
    state = app.state.serving
    state.load()  # here, not on the lifespan's thread: the replica is ready when its constructor returns
    if state.failed:
        project.close()
        raise RuntimeError(f"the replica could not start: {state.failed}")
    replica = serve.get_replica_context().replica_id.unique_id
    app.add_middleware(_ReplicaHeaders, replica=replica, node=ray.get_runtime_context().get_node_id())
    return app


def application(project_type: Any, config: Any, settings: Any, *, replicas: int, num_cpus: float,
                max_ongoing_requests: int = 64, name: str = DEFAULT_APP_NAME) -> Any:
    """The Ray Serve application (bound deployment) of `replicas` copies of the embedops app."""
    serve = require("ray.serve", "ray")
    dumped = settings.model_dump()  # the hashed API keys included; never the keys themselves

    def build() -> Any:
        return replica_app(project_type, config, dumped)

    class EmbedopsReplica:
        """A replica: the embedops app; unhealthy (and replaced by Serve) if its start-up failed."""

        def check_health(self) -> None:
            """Raise while the app reports a failure, so Serve restarts the replica."""
            state = self.app.state.serving  # type: ignore[attr-defined] - set by serve.ingress's wrapper
            if state.failed:
                raise RuntimeError(state.failed)

    deployment = serve.deployment(
        serve.ingress(build)(EmbedopsReplica), name=name, num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus},
        # The app batches concurrent requests itself (one model worker per replica): let them in.
        max_ongoing_requests=max_ongoing_requests)
    return deployment.bind()


@dataclass
class RayServing:
    """A running deployment: its URL, and `close()` to take it down (and the local Ray started for it)."""

    conn: RayConnection
    name: str
    url: str
    replicas: int

    def close(self) -> None:
        """Delete the application (its replicas stop after their requests); stop Ray too if this process started it
        (which takes Serve's controller and proxy with it)."""
        from ray import serve

        try:
            serve.delete(self.name)
        finally:
            self.conn.close()


def serve_on_ray(project: Any, settings: Any, *, replicas: int = 2, num_cpus: float = 1.0,
                 address: str | None = None, connect_timeout: float = 30.0,
                 name: str = DEFAULT_APP_NAME) -> RayServing:
    """Deploy `replicas` replicas of the app behind Ray Serve's proxy on settings.host:settings.port; returns when
    every replica is ready."""
    from embedops.config import checks

    checks.positive_int(replicas, "replicas", optional=False)
    checks.at_least(num_cpus, 0.01, "replica_cpus", optional=False)
    conn = connect(address, timeout=connect_timeout)
    try:
        from ray import serve

        from embedops._console import is_verbose

        if not is_verbose():  # Serve narrates its start-up at INFO/WARNING; the CLI prints the one line that matters
            logging.getLogger("ray.serve").setLevel(logging.ERROR)

        # One proxy, on the head node: several nodes on one machine would otherwise compete for the port.
        serve.start(http_options={"host": settings.host, "port": settings.port}, proxy_location="HeadOnly")
        app = application(type(project), project.config, settings, replicas=replicas, num_cpus=num_cpus, name=name)
        serve.run(app, name=name, route_prefix="/", blocking=False)
    except BaseException:
        conn.close()
        raise
    return RayServing(conn, name, f"http://{settings.host}:{settings.port}", replicas)


def run_until_stopped(serving: RayServing, echo: Any = print) -> None:
    """Block until Ctrl-C or SIGTERM, then take the deployment down."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    count = f"{serving.replicas} replica" + ("s" if serving.replicas != 1 else "")
    echo(f"serving {count} on Ray at {serving.url}  (API docs: /docs, readiness: /ready)")
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        serving.close()
