"""Collections built beside their target and swapped in whole, so a build never loses or half-writes one.

`build_beside(target)` hands out a temporary sibling folder, `.<name>.building-<pid>-<tag>`, to create and fill;
only when that returns does it swap the folder in:

- no collection yet: one `rename` (a failure before it leaves nothing at the target, never an empty shell);
- overwrite: `renameat2(RENAME_EXCHANGE)` swaps the two folders in one step, under the old collection's write lock
  (no write of another process is cut in half), and the old one is deleted afterwards. Where the kernel or file
  system cannot exchange, two renames with SIGINT/SIGTERM held back between them; the old folder waits as
  `.<name>.replaced-<pid>-<tag>` and is put back by the next build or open if a kill fell in between.

An error or Ctrl-C before the swap deletes the temporary folder and leaves the previous collection as it was. A
kill -9 leaves the temporary folder behind: the next build removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from embedops._io import fsync_dir, pid_alive
from embedops.errors import InputError
from embedops.index.locks import WriteLock

DB_FILE = "collection.db"  # sqlite_store.DB_NAME, named here so this module stays below the store
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _sibling(target: Path, kind: str, pid: int | None = None) -> Path:
    return target.with_name(f".{target.name}.{kind}-{pid or os.getpid()}-{secrets.token_hex(4)}")


def _pid_of(name: str, prefix: str) -> int | None:
    try:
        return int(name[len(prefix):].split("-", 1)[0])
    except ValueError:
        return None


def _leftovers(target: Path, kind: str) -> Iterator[Path]:
    """Sibling folders of `kind` left by processes that are gone (never this process's own)."""
    prefix = f".{target.name}.{kind}-"
    if not target.parent.is_dir():
        return
    for p in target.parent.iterdir():
        if p.name.startswith(prefix) and p.is_dir():
            pid = _pid_of(p.name, prefix)
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                yield p


def restore_replaced(target: Path) -> bool:
    """Put back an old collection a killed swap left aside while the target is missing; True when one was."""
    if target.exists():
        return False
    for aside in _leftovers(target, "replaced"):
        if (aside / DB_FILE).is_file():
            with contextlib.suppress(OSError):
                os.rename(aside, target)
                return True
    return False


def remove_leftovers(target: Path) -> list[Path]:
    """Delete temporary build folders (and replaced collections) of `target` whose process is gone."""
    restore_replaced(target)
    removed = []
    for kind in ("building", "replaced"):
        for p in _leftovers(target, kind):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def holds_documents(folder: Path) -> bool:
    """Whether a collection folder has any document row (an empty one left by an older failed build has none)."""
    import sqlite3

    db = folder / DB_FILE
    try:
        conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            return conn.execute("SELECT EXISTS (SELECT 1 FROM docs)").fetchone()[0] == 1
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # unreadable: treat it as precious


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, a folder that is not a collection, or a collection without overwrite."""
    if not target.exists():
        return
    if not target.is_dir():
        raise InputError("the path exists and is not a folder", where=str(target))
    if not any(target.iterdir()):
        return
    if not (target / DB_FILE).is_file():
        raise InputError("refusing to replace a folder that is not a collection", where=str(target))
    if not overwrite and holds_documents(target):
        raise InputError("a collection exists there", where=str(target),
                         hint="choose another path or pass overwrite=True (--overwrite) to replace it once the new "
                              "one is complete")


@contextlib.contextmanager
def build_beside(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder to build in; swap it in when the block returns, delete it otherwise."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    check_target(target, overwrite)
    tmp = _sibling(target, "building")
    os.mkdir(tmp)
    try:
        yield tmp
        _fsync_tree(tmp)
        swap_in(tmp, target, overwrite=overwrite)
    finally:
        # Before the swap this is the unfinished build; after an exchange it is the old collection.
        shutil.rmtree(tmp, ignore_errors=True)


def swap_in(new: Path, target: Path, *, overwrite: bool) -> None:
    """Make `new` the folder at `target` in one step (see the module docstring)."""
    check_target(target, overwrite)  # again: another process may have built there meanwhile
    if not (target / DB_FILE).is_file():
        try:
            os.rename(new, target)  # onto nothing, or an empty folder
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise InputError("another build created the collection meanwhile", where=str(target)) from exc
            raise
    else:
        lock = WriteLock(target)
        try:
            with lock:
                if not _exchange(new, target):
                    _two_renames(new, target)
        finally:
            lock.close()
    _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _two_renames(new: Path, target: Path) -> None:
    aside = _sibling(target, "replaced")
    blocked = {signal.SIGINT, signal.SIGTERM}
    mask = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    if mask:
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        os.rename(target, aside)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(aside, target)
            raise
        # Still with signals held back: a Ctrl-C waiting for the unblock must not leave the old folder behind.
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        if mask:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fsync_dir(folder)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder of a finished build to disk before it becomes the collection."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(root))
