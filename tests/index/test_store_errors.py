"""Bad input for external stores: malformed URLs (the field is named), unreachable servers (a clear error within the
timeout, nothing half-migrated), dimension mismatches with an existing remote collection, names an engine refuses;
and the local Milvus server of the tests is reachable on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedops.cli.main import app
from embedops.config import load_config
from embedops.config.store_url import StoreURLError, parse_store_url
from embedops.errors import ConfigError, InputError
from embedops.index import Collection, IndexSpec
from embedops.index.migrate import migrate
from embedops.index.remote import StoreUnavailableError
from embedops.index.stores import create_collection, create_store, drop_collection, open_collection, open_store

runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize(("url", "engine", "where"), [
    ("faiss", "faiss", None), ("", "faiss", None), ("milvus://10.0.0.5:19530", "milvus", "10.0.0.5:19530"),
    ("milvus+https://u:p%40ss@db.example.com:443?db=prod&timeout=7", "milvus", "db.example.com:443"),
    ("qdrant:///var/lib/qdrant", "qdrant", "/var/lib/qdrant"), ("qdrant://rel/dir", "qdrant", "rel/dir"),
    ("qdrant://:memory:", "qdrant", ":memory:"), ("qdrant+http://127.0.0.1:6333?api_key=k", "qdrant", "127.0.0.1"),
])
def test_store_urls_parse(url, engine, where):
    parsed = parse_store_url(url)
    assert parsed.engine == engine
    if where:
        assert where in parsed.endpoint
    if "u:p%40ss" in url:
        assert (parsed.user, parsed.password, parsed.timeout, parsed.options["db"]) == ("u", "p@ss", 7.0, "prod")
        assert "p@ss" not in parsed.redacted() and "p@ss" not in repr(parsed)


@pytest.mark.parametrize(("url", "message"), [
    ("milvis://h:1", "unknown store scheme 'milvis'"), ("milvus://:19530", "names no host"),
    ("milvus://host", "names no port"), ("milvus://host:port", "Port could not be cast"),
    ("milvus://h:1/coll", "takes no path"), ("milvus://h:1?timout=3", "unknown option 'timout'"),
    ("qdrant+http://h:6333?timeout=-1", "timeout must be a positive number"), ("qdrant://", "names no folder"),
    ("localhost:19530", "is not a store URL"), ("milvus://h:1?consistency=sometimes", "consistency must be"),
])
def test_malformed_store_urls_say_what_is_wrong(url, message):
    with pytest.raises(StoreURLError, match=message):
        parse_store_url(url)


def test_a_malformed_store_url_names_the_field_in_the_project_file_and_on_the_cli(tmp_path):
    (tmp_path / "embedops.yaml").write_text("index:\n  store: milvus://no-port-here\n")
    with pytest.raises(ConfigError, match=r"field 'index\.store'.*names no port"):
        load_config(tmp_path / "embedops.yaml")
    res = runner.invoke(app, ["index", "info", "col", "--store", "qdrant+http://h:6333?timeout=soon"])
    assert res.exit_code == 2 and "--store" in res.output and "timeout must be" in res.output


@pytest.mark.parametrize("engine", ["milvus", "qdrant+http"])
def test_an_unreachable_store_is_a_clear_error_within_its_timeout(engine, tmp_path):
    for url, bound in ((f"{engine}://127.0.0.1:{closed_port()}", 3.0),
                       (f"{engine}://192.0.2.1:1234?timeout=1", 2.5)):  # TEST-NET-1: nothing answers there
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="cannot reach"):
            open_store(url, "anything")
        assert time.monotonic() - started < bound, url
    # A migration into it fails as fast and leaves its source as it was.
    source = tmp_path / "src"
    Collection(create_faiss(source)).close()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        migrate("faiss", source, f"{engine}://127.0.0.1:{closed_port()}", "target")
    assert time.monotonic() - started < 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    res = runner.invoke(app, ["index", "info", "target", "--store", f"{engine}://127.0.0.1:{closed_port()}"])
    assert res.exit_code == 2 and "cannot reach" in res.output


def create_faiss(folder: Path):
    from embedops.index import FaissStore

    store = FaissStore.create(folder, 8)
    store.upsert(["a", "b"], np.eye(2, 8, dtype=np.float32))
    return store


def test_a_dimension_mismatch_with_an_existing_remote_collection_names_both(milvus_url, encoder):
    create_store(milvus_url, "dims", 16, IndexSpec(kind="flat")).close()
    try:
        with pytest.raises(InputError, match="dimension 16, not 384"):
            create_collection(milvus_url, "dims", encoder)
        with pytest.raises(InputError, match="dimension 16; the encoder gives 384"):
            open_collection(milvus_url, "dims", encoder)
        store = open_store(milvus_url, "dims")
        with pytest.raises(InputError, match="dimension 384, the collection has 16"):
            store.upsert(["x"], np.ones((1, 384), dtype=np.float32))
        assert store.count() == 0
        store.close()
    finally:
        drop_collection(milvus_url, "dims")


def test_names_an_engine_cannot_take_are_refused_before_anything_is_created(milvus_url):
    with pytest.raises(InputError, match="invalid Milvus collection name 'my-index'"):
        create_store(milvus_url, "my-index", 8)
    with pytest.raises(InputError, match="invalid Qdrant collection name"):
        create_store("qdrant://:memory:", "a/b", 8)
    with pytest.raises(InputError, match="'nothing' not found"):
        open_store(milvus_url, "nothing")
    with pytest.raises(InputError, match="IVF-PQ is a FAISS setting"):
        create_store(milvus_url, "ivf", 8, IndexSpec(kind="ivfpq"))


def _listening(table: str) -> dict[int, tuple[str, int]]:
    """Socket inode -> (local address hex, port) of the LISTEN entries of a /proc/net/tcp{,6} table."""
    out = {}
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            address, port = fields[1].rsplit(":", 1)
            out[int(fields[9])] = (address, int(port, 16))
    return out


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for p in pids:
        for fd in Path(f"/proc/{p}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def test_the_local_milvus_server_is_reachable_on_127_0_0_1_only(milvus_server):
    pid = milvus_server._proc.pid
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"), \
        "the Milvus server runs in this network namespace"
    sockets = _socket_inodes(_tree(pid))
    ours = {**_listening("/proc/self/net/tcp"), **_listening("/proc/self/net/tcp6")}
    # Of everything listening where this process can be reached, the server holds one socket: 127.0.0.1:PORT.
    assert [ours[i] for i in sockets if i in ours] == [("0100007F", milvus_server.port)]
    # Milvus's own ports (proxy 19530, metrics 9091, the coordinators ...) listen in its namespace only.
    theirs = {**_listening(f"/proc/{pid}/net/tcp"), **_listening(f"/proc/{pid}/net/tcp6")}
    assert {19530, 9091} <= {port for _, port in theirs.values()}
