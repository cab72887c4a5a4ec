"""Connecting to Ray: a local instance on this machine, or an existing cluster by address, with a deadline.

`ray.init(address=...)` on an address where no Ray cluster answers retries for minutes; here a TCP probe refuses a
closed port at once and the handshake runs under a deadline, so a wrong address is one clear error. Telemetry is
off (`RAY_USAGE_STATS_ENABLED=0`), the dashboard is not started, and a local instance listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from embedops._optional import require
from embedops.errors import EmbedopsError

log = logging.getLogger(__name__)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_CONNECT_TIMEOUT = 30.0


class ClusterError(EmbedopsError):
    """The Ray cluster cannot be reached, or it lost work it could not retry (finished shards are kept)."""


def _environment(loopback: bool) -> None:
    """Settings Ray reads at import or start: no telemetry; on a loopback address, no rewrite to the LAN address."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning per process
    if loopback:
        # Ray replaces 127.0.0.1 in an address by the machine's LAN address unless this is off; a cluster bound to
        # loopback is then unreachable. The constant is read at import and at call time, so set both.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = False


def ray_module(loopback: bool = True) -> ModuleType:
    """`import ray` with embedops' environment (MissingDependencyError naming the `ray` extra when absent)."""
    _environment(loopback)
    return require("ray", "ray")


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of `host:port` or `ray://host:port`; None for `auto` (Ray finds a local cluster itself)."""
    text = address.strip()
    if text in ("auto", ""):
        return None
    rest = text.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"not a Ray address: {address!r} (expected host:port, e.g. 127.0.0.1:6379, or "
                           "ray://host:10001)", where="address")
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float) -> None:
    """Refuse at once an address where nothing listens (a TCP connect within `timeout`)."""
    parsed = parse_address(address)
    if parsed is None:
        return
    try:
        with socket.create_connection(parsed, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(f"no Ray cluster answers at {address} ({reason})", where="address",
                           hint="start one with `ray start --head --port 6379`, or check host:port "
                                "(the head node's GCS port)") from None


@dataclass
class RayConnection:
    """A connection to Ray; `owned` when this call started it (then `close` shuts it down)."""

    ray: ModuleType
    address: str
    owned: bool

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (CPU, GPU, memory ...)."""
        return dict(self.ray.cluster_resources())

    def available(self) -> dict[str, float]:
        """Resources free right now."""
        return dict(self.ray.available_resources())

    def nodes(self) -> list[str]:
        """Ids of the live nodes."""
        return [n["NodeID"] for n in self.ray.nodes() if n.get("Alive")]

    def close(self) -> None:
        """Disconnect (and stop the local instance) if this connection started it."""
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def connect(address: str | None = None, *, num_cpus: int | None = None,
            timeout: float = DEFAULT_CONNECT_TIMEOUT, **init_options: Any) -> RayConnection:
    """Ray for this process: the one already initialised, a cluster (`address`, else `$RAY_ADDRESS`, Ray's own
    variable), or a new local instance.

    A cluster that does not answer within `timeout` seconds is a ClusterError naming the address.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    parsed = parse_address(address) if address else None
    loopback = address is None or (parsed is not None and parsed[0] in _LOOPBACK)
    ray = ray_module(loopback)
    if ray.is_initialized():
        return RayConnection(ray, ray.get_runtime_context().gcs_address, owned=False)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, **init_options}
    if address is None:
        options.update(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
        ray.init(**options)
        return RayConnection(ray, ray.get_runtime_context().gcs_address, owned=True)
    probe(address, timeout)
    _init_with_deadline(ray, address, timeout, options)
    return RayConnection(ray, address, owned=True)


def _init_with_deadline(ray: ModuleType, address: str, timeout: float, options: dict[str, Any]) -> None:
    """`ray.init(address)` on a helper thread; past the deadline the caller gets a ClusterError (the thread is left
    to Ray: its own retry loop cannot be interrupted)."""
    outcome: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            ray.init(address=address, **options)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="embedops-ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if "error" not in outcome:
        raise ClusterError(f"the service at {address} did not answer as a Ray cluster within {timeout:g} s",
                           where="address", hint="check that the address is the head node's GCS port "
                                                 "(`ray status --address ...` should answer)")
    if outcome["error"] is not None:
        exc = outcome["error"]
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: {exc}",
                           where="address") from exc
