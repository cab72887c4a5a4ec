"""The web console: hand-written HTML, CSS and JS pages (package data under `static/`), served by `embedops serve`.

No build step and nothing fetched from elsewhere: the pages call the same HTTP API as every other client, with the
API key the user types (kept in sessionStorage, sent as `Authorization: Bearer`), and draw their charts as inline
SVG. The assets themselves are public; every byte of data behind them needs the key.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from importlib import resources

# name -> content type; only these files are served (a request names one of them, never a path).
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "monitor.html": "text/html; charset=utf-8",
    "models.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "search.js": "text/javascript; charset=utf-8",
    "monitor.js": "text/javascript; charset=utf-8",
    "models.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PAGES = ("index.html", "monitor.html", "models.html")


@dataclass(frozen=True)
class Asset:
    """One file's bytes, content type and strong ETag (its sha256)."""

    body: bytes
    content_type: str
    etag: str


_cache: dict[str, Asset] = {}
_lock = threading.Lock()


def asset(name: str) -> Asset | None:
    """The named console file (read once, then from memory); None for a name that is not an asset."""
    if name not in ASSETS:
        return None
    with _lock:
        found = _cache.get(name)
        if found is None:
            body = resources.files(__name__).joinpath("static", name).read_bytes()
            found = _cache[name] = Asset(body, ASSETS[name], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found
