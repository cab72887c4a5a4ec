"""What keeps a registry honest on disk: file pins (size + sha256) with a hash cache, and debris removal.

Pins: a manifest records the size and sha256 of every file of its version (`files`), so a file overwritten,
truncated or swapped after registration is refused on load, naming it. Hashing a 90 MB weight file on every load
would cost a third of a second, so digests are cached by the file's identity (path, device, inode, size, mtime and
ctime in ns: any write, truncation or `utime` changes one of them) in `<cache>/registry/sha256.json`. The cache is
only ever a shortcut: it is written by temp file + rename, and an unreadable or malformed one is ignored.

Debris: registry writers stage under the registry lock only (`.v<N>.*.tmp` folders, `.<file>.*.tmp` files), so
whoever holds the lock knows that every staging name it finds belongs to a writer that is gone, and removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from embedops._io import cache_root, fsync_dir, pid_alive

MANIFEST = "manifest.json"
# Temp names the registry itself creates: `.v3.abc123.tmp` (a staged version), `.aliases.json.x1y2.tmp`,
# `.registry.json.*.tmp` and `.manifest.json.*.tmp` (atomic file writes).
_STAGED_VERSION = re.compile(r"^\.v\d+\..+\.tmp$")
_STAGED_FILE = re.compile(r"^\.(registry\.json|aliases\.json|manifest\.json)\..+\.tmp$")
_CACHE_FILE = "sha256.json"
_CACHE_LIMIT = 4096
hashed_files = 0  # files read and hashed by this process (the cache is what keeps it from growing on reloads)


def _is_staging(p: Path) -> bool:
    return bool(_STAGED_VERSION.match(p.name) or _STAGED_FILE.match(p.name))


def debris(root: Path) -> list[Path]:
    """Staging folders and temp files of registry writes under `root` (never `.runs/`, training's work folders)."""
    found: list[Path] = []
    if not root.is_dir():
        return found
    for top in root.iterdir():
        if _is_staging(top):
            found.append(top)
        elif top.is_dir() and not top.name.startswith("."):
            for entry in top.iterdir():
                if _is_staging(entry):
                    found.append(entry)
                elif entry.is_dir() and re.fullmatch(r"v\d+", entry.name):
                    found.extend(f for f in entry.iterdir() if _STAGED_FILE.match(f.name))
    return found


def sweep(root: Path) -> list[Path]:
    """Remove the debris of killed writes; the caller must hold the registry lock (so no writer is staging)."""
    removed = debris(root)
    for p in removed:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return removed


def sweep_if_unlocked(root: Path, lock: Path) -> None:
    """Sweep when there is debris and the registry lock is free right now: never waits (a writer holding the lock
    may be staging) and never fails (a read-only registry is read as it is)."""
    try:
        if not debris(root):
            return
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            try:
                sweep(root)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link a file (instant, no extra space); copy where links are impossible (another filesystem)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under `folder` to disk, so a rename that commits it never exposes empty files."""
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def _identity(path: Path, st: os.stat_result) -> str:
    return f"{os.path.realpath(path)}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


def _sha256(path: Path) -> str:
    global hashed_files
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    hashed_files += 1
    return h.hexdigest()


class HashCache:
    """sha256 of files by identity, loaded from and saved to one JSON file (a corrupt one counts as empty)."""

    def __init__(self, path: Path | None = None, *, load: bool = True):
        self.path = path or cache_root() / "registry" / _CACHE_FILE
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        if not load:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data.get("entries") if isinstance(data, dict) and data.get("format") == 1 else None
            if isinstance(entries, dict):
                self.entries = {k: v for k, v in entries.items()
                                if isinstance(v, dict) and isinstance(v.get("sha256"), str)}
        except (OSError, ValueError, AttributeError):
            self.entries = {}  # missing, unreadable or not JSON: start empty, the files are simply re-hashed

    def sha256(self, path: Path) -> str:
        """The file's sha256: from the cache when its identity is unchanged, else read (and remembered)."""
        key = _identity(path, os.stat(path))
        hit = self.entries.get(key)
        if hit is not None:
            return hit["sha256"]
        digest = _sha256(path)
        # Stat again: a file written while it was read must not be cached under the identity it had before.
        if _identity(path, os.stat(path)) == key:
            self.remember(path, digest, key)
        return digest

    def remember(self, path: Path, digest: str, key: str | None = None) -> None:
        """Cache a digest the caller computed from the file as it is now."""
        key = key or _identity(path, os.stat(path))
        self.entries[key] = {"sha256": digest, "seq": len(self.entries)}
        self.dirty = True

    def save(self) -> None:
        """Write the cache (temp file + rename) if it changed; a failure only costs a re-hash later."""
        if not self.dirty:
            return
        entries = self.entries
        if len(entries) > _CACHE_LIMIT:  # keep the newest entries
            keep = sorted(entries.items(), key=lambda kv: kv[1].get("seq", 0))[-_CACHE_LIMIT:]
            entries = dict(keep)
        entries = {k: {**v, "seq": i} for i, (k, v) in enumerate(entries.items())}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_dead_temps(self.path)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                tmp.write_text(json.dumps({"format": 1, "entries": entries}), encoding="utf-8")
                os.replace(tmp, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        self.dirty = False


def _drop_dead_temps(path: Path) -> None:
    """Remove cache temp files of processes that are gone (a kill between write and rename)."""
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        if p.name.startswith(prefix) and p.name.endswith(".tmp"):
            pid = p.name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def pin_files(folder: Path, cache: HashCache | None = None) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under a version folder except its manifest (what `check_files` compares)."""
    cache = cache or HashCache()
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(folder.rglob("*")):
        rel = str(f.relative_to(folder))
        if f.is_file() and rel != MANIFEST and not _is_staging(f):
            out[rel] = {"size": f.stat().st_size, "sha256": cache.sha256(f)}
    return out


def check_files(folder: Path, manifest: dict[str, Any], cache: HashCache) -> tuple[str, str] | None:
    """(file, what differs) for the first pinned file that is missing or changed, else None.

    `files` pins size and sha256 of every file; older manifests pin only the weights' sha256 (`weights`).
    """
    pins: dict[str, dict[str, Any]] = dict(manifest.get("files") or {})
    for rel, digest in (manifest.get("weights") or {}).items():
        pins.setdefault(rel, {"sha256": digest})
    for rel, pin in sorted(pins.items()):
        path = folder / rel
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return rel, "is missing"
        if "size" in pin and st.st_size != pin["size"]:
            return rel, f"has {st.st_size} bytes where its manifest pins {pin['size']}"
        if cache.sha256(path) != pin["sha256"]:
            return rel, "does not match the sha256 its manifest pins (changed in place after registration)"
    return None
