"""Store URLs: which engine holds a project's collections (`index.store` in embedops.yaml, `--store` on the CLI).

    faiss                              the default: a FAISS + SQLite folder per collection (`index.path`)
    milvus://HOST:PORT                 a Milvus server or cluster (gRPC); milvus+https:// for TLS
    milvus://USER:PASSWORD@HOST:PORT   with credentials (or ?token=...); ?db=NAME selects a database;
                                       ?consistency=strong|session|bounded|eventually (default session)
    qdrant:///ABSOLUTE/PATH            Qdrant's local mode (embedded, no server; one process at a time)
    qdrant://RELATIVE/PATH             the same, relative to the project file
    qdrant://:memory:                  local mode in memory (gone when the process ends)
    qdrant+http://HOST:6333            a Qdrant server or cluster (REST); qdrant+https:// with ?api_key=...

Every remote URL takes `?timeout=SECONDS` (default 3): how long connecting may take before the store is reported
unreachable. The collection's name inside the engine is the collection path's last part (`index.path`, the CLI's
PATH), so one project file points at a local folder or a cluster by changing this one line.

Only the syntax is checked here (the config layer imports no engine); connecting is the index package's work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

Engine = Literal["faiss", "milvus", "qdrant"]
DEFAULT_TIMEOUT = 3.0
SCHEMES = {"milvus": ("milvus", "http"), "milvus+http": ("milvus", "http"), "milvus+https": ("milvus", "https"),
           "qdrant": ("qdrant", "local"), "qdrant+http": ("qdrant", "http"), "qdrant+https": ("qdrant", "https")}
_OPTIONS = {"milvus": {"timeout", "token", "db", "consistency"}, "qdrant": {"timeout", "api_key", "prefer_grpc"}}
CONSISTENCY = ("strong", "bounded", "session", "eventually")
USAGE = ("use faiss, milvus://HOST:PORT, milvus+https://HOST:PORT, qdrant:///PATH, qdrant://:memory: or "
         "qdrant+http://HOST:PORT")


class StoreURLError(ValueError):
    """A malformed store URL; the caller names the field (index.store, --store)."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL: engine, transport (http, https or local) and where."""

    engine: Engine
    text: str
    transport: str = "local"
    host: str | None = None
    port: int | None = None
    path: str | None = None  # Qdrant local mode: the storage folder (":memory:" for memory)
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    options: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def timeout(self) -> float:
        """Seconds a connection may take before the store is reported unreachable."""
        return float(self.options.get("timeout", DEFAULT_TIMEOUT))

    @property
    def remote(self) -> bool:
        """Whether the store is a server reached over the network (not FAISS, not Qdrant's local mode)."""
        return self.transport in ("http", "https")

    @property
    def endpoint(self) -> str:
        """http(s)://host:port for a server; the folder for local mode."""
        if self.remote:
            return f"{self.transport}://{self.host}:{self.port}"
        return self.path or ""

    def redacted(self) -> str:
        """The URL without secrets, for messages and info()."""
        if self.engine == "faiss":
            return "faiss"
        if not self.remote:
            return f"qdrant://{self.path}"
        scheme = next(s for s, v in SCHEMES.items() if v == (self.engine, self.transport))
        return f"{scheme}://{self.host}:{self.port}"

    def with_path(self, path: str) -> StoreURL:
        """The same URL with its local folder replaced (a relative folder resolved by the caller)."""
        return StoreURL(self.engine, self.text, self.transport, self.host, self.port, path, self.user,
                        self.password, dict(self.options))


def parse_store_url(text: Any) -> StoreURL:
    """Parse a store URL; a StoreURLError says what is wrong (the caller adds which field)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "faiss")):
        return StoreURL("faiss", "faiss")
    if not isinstance(text, str):
        raise StoreURLError(f"a store URL must be a string, got {type(text).__name__}")
    raw = text.strip()
    if "://" not in raw:
        raise StoreURLError(f"{raw!r} is not a store URL; {USAGE}")
    scheme = raw.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise StoreURLError(f"unknown store scheme {scheme!r}; {USAGE}")
    engine, transport = SCHEMES[scheme]
    if transport == "local":
        return _local(raw)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise StoreURLError(f"{_redact(raw)}: {exc}") from exc
    if not parts.hostname:
        raise StoreURLError(f"{_redact(raw)} names no host; e.g. {scheme}://127.0.0.1:"
                            f"{19530 if engine == 'milvus' else 6333}")
    if port is None:
        raise StoreURLError(f"{_redact(raw)} names no port; e.g. {scheme}://{parts.hostname}:"
                            f"{19530 if engine == 'milvus' else 6333}")
    if parts.path not in ("", "/"):
        raise StoreURLError(f"{_redact(raw)}: a server URL takes no path ({parts.path!r}); the collection name "
                            "comes from the collection path (index.path or the CLI's PATH)")
    options = _options(parts.query, engine, raw)
    return StoreURL(engine, raw, transport, parts.hostname, port, None,
                    unquote(parts.username) if parts.username else None,
                    unquote(parts.password) if parts.password else None, options)


def _local(raw: str) -> StoreURL:
    rest = raw.split("://", 1)[1]
    path, _, query = rest.partition("?")
    if not path:
        raise StoreURLError(f"{raw!r} names no folder; e.g. qdrant:///data/qdrant, qdrant://qdrant-data (relative "
                            "to the project file) or qdrant://:memory:")
    return StoreURL("qdrant", raw, "local", None, None, unquote(path), options=_options(query, "qdrant", raw))


def _options(query: str, engine: str, raw: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS[engine]:
            raise StoreURLError(f"{_redact(raw)}: unknown option {key!r}; {engine} URLs take "
                                f"{', '.join(sorted(_OPTIONS[engine]))}")
        options[key] = value
    if "consistency" in options and options["consistency"].lower() not in CONSISTENCY:
        raise StoreURLError(f"{_redact(raw)}: consistency must be one of {', '.join(CONSISTENCY)}, got "
                            f"{options['consistency']!r}")
    if "timeout" in options:
        try:
            seconds = float(options["timeout"])
        except ValueError:
            seconds = math.nan
        if not (seconds > 0 and math.isfinite(seconds)):
            raise StoreURLError(f"{_redact(raw)}: timeout must be a positive number of seconds, got "
                                f"{options['timeout']!r}")
    return options


def _redact(raw: str) -> str:
    """The URL with any password and query (tokens, keys) left out."""
    try:
        parts = urlsplit(raw)
        host = parts.netloc.rsplit("@", 1)[-1]
        return f"{parts.scheme}://{host}{parts.path}"
    except ValueError:
        return raw.split("?", 1)[0].split("@")[-1]
