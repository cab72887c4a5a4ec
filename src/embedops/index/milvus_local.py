"""A Milvus standalone server from the `milvus` package, reachable on 127.0.0.1 only: for tests, benchmarks and
trying Milvus out on one machine (a real cluster is named by its URL instead, see store_url.py).

    with LocalMilvus(tmp_dir) as server:          # about 3 s once the binaries are unpacked (cached)
        store_url = server.url                    # "milvus://127.0.0.1:<port>"

Milvus 2.3.5 has no listen-address setting: each component listens on every interface (milvus-io/milvus#26538).
So the server runs in its own network namespace (`unshare --user --net`, no root needed where unprivileged user
namespaces are allowed), where nothing outside can reach it, and a small supervisor inside forwards the one port a
client needs from a socket bound to 127.0.0.1 *before* the namespace was entered (a socket keeps the namespace it
was made in). Where namespaces are refused it runs without one, advertising 127.0.0.1, and warns that Milvus's own
ports then listen on all interfaces.

Nothing outlives the caller: the supervisor stops Milvus when its stdin closes (the parent exited or called
`stop()`), and each process is killed by the kernel when its parent dies (PR_SET_PDEATHSIG).

`python -m embedops.index.milvus_local FOLDER [--port N]` runs one in the foreground until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from pathlib import Path

from embedops._optional import require
from embedops.errors import InputError

_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
_PR_SET_PDEATHSIG = 1


def binaries() -> Path:
    """The unpacked Milvus binaries (246 MB, unpacked once per version under ~/.cache, or $EMBEDOPS_MILVUS_BIN)."""
    milvus = require("milvus", "milvus")
    root = Path(os.environ.get("EMBEDOPS_MILVUS_BIN") or Path.home() / ".cache" / "embedops-milvus"
                ) / milvus.__version__
    done = root / "bin" / ".complete"
    if done.is_file():
        return root / "bin"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions unpack once, not twice into the same files
        if not done.is_file():
            milvus._initialize_data_files(str(root))  # the package's own unpacker (lzma files, md5-checked)
            done.touch()
    return root / "bin"


def namespaces_allowed() -> bool:
    """Whether this process may make a user + network namespace (unshare -rn)."""
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class LocalMilvus:
    """One Milvus standalone server under `base_dir` (config, logs, data), its proxy on 127.0.0.1:`port`."""

    def __init__(self, base_dir: str | Path, *, port: int = 0, isolate: bool | None = None,
                 settings: dict[str, object] | None = None, grace: float = 15.0):
        self.base_dir = Path(base_dir).absolute()
        self.settings = dict(settings or {})  # milvus.yaml keys, dotted: {"proxy.timeTickInterval": 50}
        self.grace = grace  # seconds Milvus may take to stop after SIGTERM before it is killed
        self._want_port = port
        self.isolate = isolate
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The store URL a project or the CLI takes (`milvus://127.0.0.1:PORT`)."""
        if self.port is None:
            raise InputError("the local Milvus server is not running", where=str(self.base_dir))
        return f"milvus://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> str:
        """Start the server and wait until it answers; returns its URL."""
        if self._proc is not None:
            return self.url
        bin_dir = binaries()
        isolate = namespaces_allowed() if self.isolate is None else self.isolate
        if not isolate:
            warnings.warn("user namespaces are not allowed here: the local Milvus server runs without one, and "
                          "Milvus 2.3.5 listens on all interfaces (only its proxy is reached through 127.0.0.1)",
                          RuntimeWarning, stacklevel=2)
        proxy_port, metrics_port = _write_config(self.base_dir, isolate, self.settings)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._want_port))
        listener.listen(64)
        port = listener.getsockname()[1]
        cmd = [sys.executable, "-m", "embedops.index.milvus_local", "--supervise", str(self.base_dir),
               "--fd", str(listener.fileno()), "--bin", str(bin_dir), "--proxy-port", str(proxy_port),
               "--metrics-port", str(metrics_port), "--grace", str(self.grace)]
        if isolate:
            cmd.append("--isolated")
            cmd = ["unshare", "--user", "--map-root-user", "--net", "--fork", "--kill-child", *cmd]
        log = open(self.base_dir / "logs" / "supervisor.log", "ab")  # noqa: SIM115 - closed by the child's exit
        try:
            # PDEATHSIG fires when the *thread* that started the child ends: only the main thread lives as long as
            # the process. Started from another thread, the supervisor relies on its stdin closing alone.
            main = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                          pass_fds=(listener.fileno(),), preexec_fn=_die_with_parent if main else None)
        finally:
            listener.close()  # the supervisor holds its own copy
            log.close()
        line = _read_line(self._proc, timeout)
        if line != "ready":
            self.stop()
            raise InputError(f"the local Milvus server did not start ({line or 'no answer'} within {timeout:.0f} s)",
                             where=str(self.base_dir), hint=f"see {self.base_dir / 'logs'}")
        self.port = port
        return self.url

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server (Milvus gets SIGTERM, then SIGKILL after `grace` seconds); its data stays in `base_dir`."""
        timeout = self.grace + 10 if timeout is None else timeout
        proc, self._proc, self.port = self._proc, None, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the supervisor's signal to stop Milvus and exit
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # unshare --kill-child and PDEATHSIG take the rest down
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> LocalMilvus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The supervisor's first line of output ('ready' or a reason), or '' when it said nothing in time."""
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].decode(errors="replace").strip() if out else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_config(base_dir: Path, isolate: bool, settings: dict[str, object]) -> tuple[int, int]:
    """Write configs/milvus.yaml (every component advertising 127.0.0.1); the proxy and metrics ports."""
    milvus = require("milvus", "milvus")
    config = milvus.MilvusServerConfig(data_dir=str(base_dir))
    for component in _COMPONENTS:
        config.set(f"{component}.ip", "127.0.0.1")
    for key, value in settings.items():
        config.set(key, value)
    if isolate:
        # A namespace of its own: the default ports are free there, whatever runs on this machine.
        config.resolve_all_listen_ports = lambda: None  # the template's defaults stay
    else:
        config.update(proxy_port=_free_port())  # never the port the caller's 127.0.0.1 socket takes
    config.resolve()
    proxy_port = int(config.get("proxy_port"))
    return proxy_port, 9091 if isolate else _free_port()


# -- the supervisor (runs inside the namespace) --------------------------------------------------------------------
def _loopback_up() -> None:
    """Bring `lo` up in a fresh network namespace (what `ip link set lo up` does)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _healthy(metrics_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2) as resp:
            return b"OK" in resp.read()
    except OSError:
        return False


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways between two sockets until either side closes."""
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in sel.select():
                data = key.fileobj.recv(1 << 16)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        pass
    finally:
        sel.close()
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.close()


def _forward(listener: socket.socket, port: int) -> None:
    """Accept on the 127.0.0.1 socket made outside; connect each client to Milvus's proxy inside."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()


def _supervise(base_dir: Path, fd: int, bin_dir: Path, proxy_port: int, metrics_port: int, isolated: bool,
               grace: float) -> int:
    if isolated:
        _loopback_up()
    env = dict(os.environ, DEPLOY_MODE="STANDALONE", METRICS_PORT=str(metrics_port),
               MILVUS_RUN_DIR=str(base_dir / "run"),
               LD_LIBRARY_PATH=f"{bin_dir}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    logs = base_dir / "logs"
    with open(logs / "milvus-stdout.log", "ab") as out, open(logs / "milvus-stderr.log", "ab") as err:
        milvus = subprocess.Popen([str(bin_dir / "milvus"), "run", "standalone"], cwd=base_dir, env=env,
                                  stdout=out, stderr=err, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def stop(*_: object) -> None:
        if milvus.poll() is None:
            milvus.terminate()
            try:
                milvus.wait(grace)
            except subprocess.TimeoutExpired:
                milvus.kill()
                milvus.wait()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + 180
    while not _healthy(metrics_port):
        if milvus.poll() is not None:
            print(f"milvus exited with status {milvus.returncode}", flush=True)
            return 1
        if time.monotonic() > deadline:
            print("milvus did not become healthy in 180 s", flush=True)
            stop()
        time.sleep(0.1)
    listener = socket.socket(fileno=fd)
    threading.Thread(target=_forward, args=(listener, proxy_port), daemon=True).start()
    print("ready", flush=True)
    threading.Thread(target=lambda: (milvus.wait(), os._exit(1)), daemon=True).start()
    sys.stdin.buffer.read()  # returns at EOF: the parent called stop() or is gone
    stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a local Milvus in the foreground (or, with --supervise, be the supervisor LocalMilvus starts)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m embedops.index.milvus_local", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bin", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--proxy-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--metrics-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--isolated", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--grace", type=float, default=15.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.supervise:
        return _supervise(args.folder, args.fd, args.bin, args.proxy_port, args.metrics_port, args.isolated,
                          args.grace)
    args.folder.mkdir(parents=True, exist_ok=True)
    server = LocalMilvus(args.folder, port=args.port)
    print(f"starting Milvus under {args.folder} ...", flush=True)
    server.start()
    print(f"{server.url} (Ctrl-C stops it)", flush=True)
    try:
        while server._proc is not None and server._proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
