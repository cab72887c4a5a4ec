"""Model versions on disk: `<root>/<name>/v<N>/` (the model's files + manifest.json), aliases in aliases.json.

A version appears only by a rename of a fully written temp folder, so a failed or killed run leaves no
half-registered version. Aliases (`champion`, `challenger`, ...) point at `name@vN`; promote and rollback
rewrite aliases.json atomically and keep every change in its history. Weights are never copied to switch.

Every write happens under one OS file lock (`.lock`), staging included, so the holder of that lock removes the
temp folders and files that killed writes left (see `integrity`). Manifests pin size and sha256 of every file;
`verify` (which `registry_resolver` runs on every load) refuses a version whose files changed, naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops._io import atomic_write_json, fsync_dir
from embedops.errors import InputError, ModelError
from embedops.models.loading import WEIGHT_SUFFIXES
from embedops.registry import integrity
from embedops.registry.integrity import HashCache

MARKER = "registry.json"
ALIASES = "aliases.json"
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._\-]*)@(?P<tag>v\d+|latest|[A-Za-z][\w\-]*)$")


def now() -> str:
    """UTC timestamp in ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: `name@vN`, its folder and its manifest."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        """The `name@vN` reference."""
        return f"{self.name}@v{self.version}"


class RegistryDamagedError(ModelError):
    """A registry file that exists but cannot be read: never fall through to a hub lookup over it."""


class GateRefusedError(ModelError):
    """Promotion of a version whose recorded quality gate failed, without `force`."""

    exit_code = 1


class Registry:
    """A folder of model versions with lineage manifests and aliases."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- layout -----------------------------------------------------------------------------------
    @staticmethod
    def is_registry(root: str | Path) -> bool:
        """True when `root` holds a registry (its marker file)."""
        return (Path(root) / MARKER).is_file()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One writer at a time: two runs finishing together must not both take v<N+1>. Every temp name is created
        # under this lock, so what the holder finds of them is debris of a killed writer and is removed.
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                if not (self.root / MARKER).is_file():
                    atomic_write_json(self.root / MARKER, {"format": 1, "created_at": now()})
                integrity.sweep(self.root)
                self._tidied = True
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _tidy(self) -> None:
        """Once per instance, before reading: remove debris of killed writes if the lock is free right now."""
        if not getattr(self, "_tidied", False):
            self._tidied = True
            if Registry.is_registry(self.root):
                integrity.sweep_if_unlocked(self.root, self.root / ".lock")

    def names(self) -> list[str]:
        """Registered model names."""
        self._tidy()
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir()
                      if d.is_dir() and not d.name.startswith(".") and self._numbers(d.name))

    def _numbers(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(d.name[1:]) for d in folder.iterdir()
                      if d.is_dir() and re.fullmatch(r"v\d+", d.name) and (d / MANIFEST).is_file())

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """All versions (of one name, or of every name), oldest first."""
        out = []
        for n in [name] if name else self.names():
            for v in self._numbers(n):
                out.append(self.get(f"{n}@v{v}"))
        return out

    # -- lookup -----------------------------------------------------------------------------------
    def aliases(self) -> dict[str, dict[str, Any]]:
        """alias -> {"version": "name@vN", "history": [...], "log": [...]}."""
        self._tidy()
        path = self.root / ALIASES
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryDamagedError(f"aliases file is damaged: {exc}", where=str(path),
                                       hint="restore it from its history or fix the JSON by hand") from exc
        if not isinstance(data, dict) or any(not isinstance(v, dict) or "version" not in v for v in data.values()):
            raise RegistryDamagedError("aliases file is damaged: expected {alias: {version, history, log}}",
                                       where=str(path))
        return data

    def aliases_of(self, ref: str) -> list[str]:
        """Aliases currently pointing at `ref`."""
        return sorted(a for a, info in self.aliases().items() if info.get("version") == ref)

    def ref_of(self, spec: str) -> str:
        """Normalise `alias`, `name`, `name@vN`, `name@latest`, `name@alias` or `vN` to `name@vN`."""
        spec = spec.strip()
        aliases = self.aliases()
        if spec in aliases:
            return aliases[spec]["version"]
        m = _REF.match(spec)
        if m:
            name, tag = m.group("name"), m.group("tag")
            if re.fullmatch(r"v\d+", tag):
                if int(tag[1:]) not in self._numbers(name):
                    raise ModelError(f"no version {spec!r} in the registry", where=str(self.root))
                return spec
            if tag == "latest":
                return self._latest(name, spec)
            if tag in aliases and aliases[tag]["version"].startswith(f"{name}@"):
                return aliases[tag]["version"]
            raise ModelError(f"no alias {tag!r} for model {name!r}", where=str(self.root))
        if re.fullmatch(r"v\d+", spec):
            names = [n for n in self.names() if int(spec[1:]) in self._numbers(n)]
            if len(names) == 1:
                return f"{names[0]}@{spec}"
            raise ModelError(f"{spec!r} is ambiguous or unknown; write name@{spec}", where=str(self.root))
        if spec in self.names():
            return self._latest(spec, spec)
        raise ModelError(f"{spec!r} is not a registered model, version or alias", where=str(self.root))

    def _latest(self, name: str, spec: str) -> str:
        nums = self._numbers(name)
        if not nums:
            raise ModelError(f"no versions of {name!r} in the registry", where=str(self.root))
        return f"{name}@v{nums[-1]}"

    def get(self, spec: str) -> ModelVersion:
        """The version a spec names (see `ref_of`)."""
        ref = self.ref_of(spec)
        name, tag = ref.split("@")
        path = self.root / name / tag
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            # Only an alias can name a version that is not there (versions are never deleted).
            raise RegistryDamagedError(f"{spec!r} points at {ref}, which is not in the registry",
                                       where=str(path)) from exc
        except (ValueError, OSError) as exc:
            raise RegistryDamagedError(f"manifest of {ref} is damaged: {exc}", where=str(path / MANIFEST)) from exc
        if not isinstance(manifest, dict):
            raise RegistryDamagedError(f"manifest of {ref} is damaged: not a JSON object",
                                       where=str(path / MANIFEST))
        return ModelVersion(name=name, version=int(tag[1:]), path=path, manifest=manifest)

    def verify(self, spec: str) -> ModelVersion:
        """The version, after checking every file its manifest pins (size, then sha256 through the hash cache).

        A version whose weights were overwritten or truncated in place would otherwise load silently and return
        garbage vectors; it is refused instead, naming the file. Unchanged files are not re-read (cached digests).
        """
        version = self.get(spec)
        cache = HashCache()
        try:
            bad = integrity.check_files(version.path, version.manifest, cache)
        finally:
            cache.save()
        if bad is not None:
            rel, what = bad
            raise RegistryDamagedError(f"file {rel} of {version.ref} {what}", where=str(version.path / rel),
                                       hint="register the changed files as a new version, or restore the file")
        return version

    def resolve(self, spec: str) -> Path:
        """Folder of the version a name, version or alias points at, after `verify` (a sentence-transformers model)."""
        return self.verify(spec).path

    # -- writing ----------------------------------------------------------------------------------
    def register(self, model_dir: str | Path, name: str, manifest: dict[str, Any], *, move: bool = False,
                 alias: str | None = None) -> ModelVersion:
        """Add a model folder as the next version of `name`; nothing appears unless every file is written.

        `move` takes the folder over: its files are hard-linked in (no copy on one filesystem) and the folder is
        removed only once the version is committed, so a crash at any point leaves it either in place or
        registered. Otherwise the files are copied and the folder is left as it was.
        """
        src = Path(model_dir)
        if not _NAME.match(name):
            raise InputError(f"invalid model name {name!r}: letters, digits, '.', '_', '-' only")
        if not src.is_dir() or not any(src.iterdir()):
            raise ModelError("model folder is missing or empty", where=str(src))
        with self._locked():
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True)
            # Every v<N> folder counts, even one without a manifest: a number is never given to other content.
            taken = [int(d.name[1:]) for d in folder.iterdir() if re.fullmatch(r"v\d+", d.name)]
            number = max(taken, default=0) + 1
            final = folder / f"v{number}"
            tmp = Path(tempfile.mkdtemp(prefix=f".v{number}.", suffix=".tmp", dir=folder))
            try:
                copy = integrity.link_or_copy if move else shutil.copy2
                shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=copy)
                with contextlib.suppress(FileNotFoundError):
                    (tmp / MANIFEST).unlink()  # a source's own manifest (a copied version) is replaced, not pinned
                # Digests of the staged paths are never looked up again (the key holds the path): not cached.
                files = integrity.pin_files(tmp, HashCache(load=False))
                info = {**manifest, "name": name, "version": number, "ref": f"{name}@v{number}",
                        "registered_at": now(), "aliases": [], "files": files,
                        "weights": {rel: pin["sha256"] for rel, pin in files.items()
                                    if Path(rel).suffix in WEIGHT_SUFFIXES}}
                info.setdefault("created_at", info["registered_at"])
                atomic_write_json(tmp / MANIFEST, info)
                integrity.fsync_tree(tmp)
                os.replace(tmp, final)
                fsync_dir(folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        if move:
            # Committed: the source's files live on in the version, so removing the folder loses nothing.
            shutil.rmtree(src, ignore_errors=True)
        with contextlib.suppress(OSError):
            # The first load need not read the files again: cache their digests under their final identity
            # (taken after the source's hard links went, which changed the files' ctime).
            cache = HashCache()
            for rel, pin in files.items():
                if (final / rel).stat().st_size == pin["size"]:
                    cache.remember(final / rel, pin["sha256"])
            cache.save()
        version = ModelVersion(name=name, version=number, path=final, manifest=info)
        if alias:
            self.promote(version.ref, alias)
            version = self.get(version.ref)
        return version

    def import_model(self, path: str | Path, name: str | None = None, *, metadata: dict[str, Any] | None = None,
                     alias: str | None = None, move: bool = False) -> ModelVersion:
        """Register an existing sentence-transformers folder (copied, or taken over with `move`; see `register`)."""
        from embedops.registry.manifest import library_versions

        src = Path(path).expanduser()
        if not src.is_dir():
            raise ModelError("model folder not found", where=str(src))
        if not (src / "modules.json").is_file():
            raise ModelError(f"{src} is not a sentence-transformers model folder (no modules.json)")
        name = name or re.sub(r"[^A-Za-z0-9._\-]", "-", src.resolve().name).strip("-.") or "model"
        manifest = {"kind": "imported", "source": str(src.resolve()), "base_model": None, "parent": None,
                    "libraries": library_versions(), **(metadata or {})}
        return self.register(src, name, manifest, move=move, alias=alias)

    def _write_aliases(self, aliases: dict[str, Any]) -> None:
        atomic_write_json(self.root / ALIASES, aliases)

    def _sync_manifest_aliases(self, refs: set[str]) -> None:
        # The manifest carries its current aliases for readers; aliases.json stays the source of truth.
        for ref in refs:
            with contextlib.suppress(ModelError, FileNotFoundError):
                v = self.get(ref)
                atomic_write_json(v.path / MANIFEST, {**v.manifest, "aliases": self.aliases_of(ref)})

    def record_gate(self, spec: str, gate: dict[str, Any]) -> ModelVersion:
        """Store a quality-gate result (`passed`, checks) in a version's manifest."""
        with self._locked():
            v = self.get(spec)
            atomic_write_json(v.path / MANIFEST, {**v.manifest, "gate": gate})
        return self.get(v.ref)

    def promote(self, spec: str, alias: str = "champion", *, force: bool = False) -> ModelVersion:
        """Point `alias` at a version (the previous holder is kept in the alias history).

        A version whose manifest records a failed quality gate is refused unless `force`; a forced promotion is
        written in the alias log and the version's manifest.
        """
        if not re.fullmatch(r"[A-Za-z][\w\-]*", alias) or re.fullmatch(r"v\d+", alias) or alias == "latest":
            raise InputError(f"invalid alias {alias!r}")
        with self._locked():
            ref = self.ref_of(spec)
            version = self.verify(ref)  # an alias never moves onto files that changed since registration
            gate = version.manifest.get("gate")
            failed = isinstance(gate, dict) and gate.get("passed") is False
            if failed and not force:
                raise GateRefusedError(
                    f"{ref} failed its quality gate ({gate.get('summary', 'see the manifest')}); not promoted to "
                    f"{alias!r}", where=str(version.path), hint="pass force=True (--force) to promote anyway")
            aliases = self.aliases()
            entry = aliases.setdefault(alias, {"version": None, "history": [], "log": []})
            previous = entry.get("version")
            if previous != ref:
                entry["history"].append(ref)
            entry["version"] = ref
            event = {"action": "promote", "version": ref, "previous": previous, "at": now()}
            if failed:
                event["forced"] = True
            entry["log"].append(event)
            self._write_aliases(aliases)
            if failed:
                forced = list(version.manifest.get("forced_promotions", [])) + [{"alias": alias, "at": event["at"]}]
                atomic_write_json(version.path / MANIFEST, {**version.manifest, "forced_promotions": forced})
            self._sync_manifest_aliases({ref} | ({previous} if previous else set()))
        return self.get(ref)

    def rollback(self, alias: str = "champion") -> ModelVersion:
        """Point `alias` back at the version that held it before the current one."""
        with self._locked():
            aliases = self.aliases()
            if alias not in aliases:
                raise ModelError(f"no alias {alias!r} to roll back", where=str(self.root))
            entry = aliases[alias]
            if len(entry["history"]) < 2:
                raise ModelError(f"alias {alias!r} has no earlier version to roll back to",
                                 where=str(self.root))
            current = entry["history"].pop()
            target = entry["history"][-1]
            self.verify(target)
            entry["version"] = target
            entry["log"].append({"action": "rollback", "version": target, "previous": current, "at": now()})
            self._write_aliases(aliases)
            self._sync_manifest_aliases({current, target})
        return self.get(target)


def registry_resolver(root: str | Path):
    """A `resolve_model` hook over the registry at `root`: registry specs -> version folder, other names -> None.

    A bare word that is not registered falls through (it may be a hub id); a spec with '@' that the registry cannot
    resolve is an error, and so is a damaged registry file (never silently treated as 'not registered').
    """
    registry = Registry(root)

    def resolve(spec: str):
        if not Registry.is_registry(registry.root):
            if "@" in spec:
                raise ModelError(f"{spec!r} names a registry version but there is no registry at {registry.root}",
                                 hint="set `registry:` in embedops.yaml or EMBEDOPS_REGISTRY")
            return None
        try:
            ref = registry.ref_of(spec)
        except RegistryDamagedError:
            raise
        except ModelError:
            if "@" in spec:
                raise
            return None
        from embedops.models.loading import ModelSource

        version = registry.verify(ref)
        return ModelSource(name=version.ref, path=version.path.resolve(), registry_ref=version.ref)

    return resolve


def default_registry_root() -> Path:
    """`$EMBEDOPS_REGISTRY`, else ./models."""
    return Path(os.environ.get("EMBEDOPS_REGISTRY") or "models")

