"""API keys: kept only as sha256 hashes, compared in constant time; nothing about a key is ever logged."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from embedops.errors import ConfigError

HASH_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """Hex sha256 of a key (what the server keeps instead of the key)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_keys_file(path: Path) -> list[str]:
    """Hashes from a keys file: one key per line, or `sha256:<hex>` for a key stored hashed; `#` comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the API keys file: {exc.strerror}", where=str(path)) from exc
    out: list[str] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(HASH_PREFIX):
            digest = line[len(HASH_PREFIX):].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError("not a sha256 hex digest", where=f"{path}:{n}")
            out.append(digest)
        else:
            out.append(hash_key(line))
    return out


class KeyChecker:
    """Checks presented keys against the stored hashes."""

    def __init__(self, hashes: list[str]):
        self._hashes = [bytes.fromhex(h) for h in hashes]

    def check(self, presented: str | None) -> bool:
        """True when `presented` is one of the keys; every stored hash is compared, so timing tells nothing."""
        if not presented:
            return False
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found = False
        for stored in self._hashes:
            found |= hmac.compare_digest(digest, stored)
        return found


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key from `Authorization: Bearer <key>` (what OpenAI clients send) or `X-API-Key`."""
    auth = headers.get(b"authorization")
    if auth:
        scheme, _, value = auth.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    key = headers.get(b"x-api-key")
    return key.decode("latin-1").strip() if key else None
