"""Atomic writes (embedops._io): reading the umask must never change it, since other threads create files meanwhile.

(Lives here because tests mirror packages and `_io` has no folder of its own; the data writers are its main users.)
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time

import pytest

from embedops._io import _umask, atomic_write_text


def _current_umask_without_changing_it() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise AssertionError("no Umask line in /proc/self/status")


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the umask from /proc")
def test_reading_the_umask_never_changes_it(umask_027):
    # Another thread watches the process umask while this one asks for it in a loop: the old set-to-0-and-restore
    # read left a window in which every file any thread created came out world-writable.
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(_current_umask_without_changing_it())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for _ in range(200):
                assert _umask() == 0o027
    finally:
        stop.set()
        watcher.join()
    assert seen == {0o027}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the umask from /proc")
def test_files_created_beside_atomic_writes_keep_their_permissions(tmp_path, umask_027):
    # Threads writing atomically (and asking for the umask, as each atomic write does) while this thread creates
    # plain files: every plain file must get 0666 & ~umask, never the 0666 of a momentarily zeroed umask.
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            i = 0
            while not stop.is_set():
                atomic_write_text(tmp_path / f"atomic-{n}-{i % 20}.txt", "x")
                for _ in range(2000):
                    _umask()
                i += 1
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in writers:
        t.start()
    modes = []
    try:
        for i in range(1500):
            fd = os.open(tmp_path / f"plain-{i}", os.O_CREAT | os.O_WRONLY, 0o666)
            os.close(fd)
            modes.append(stat.S_IMODE(os.stat(tmp_path / f"plain-{i}").st_mode))
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert not errors
    assert set(modes) == {0o640}
    atomic = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("atomic-*")}
    assert atomic == {0o640}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="elsewhere the umask is read once, at import")
def test_atomic_writes_follow_a_umask_set_after_import(tmp_path, umask_027):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert (tmp_path / "a.txt").read_text() == "hello"
