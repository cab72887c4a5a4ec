"""Server settings: defaults < the project file's `serving:` section < `EMBEDOPS_*` environment < command-line flags.

API keys are never a setting that is printed or logged: they are hashed (sha256) as soon as they are read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from embedops.config.schema import COLLECTION_NAME, ServingConfig, check_collection_name
from embedops.errors import ConfigError

ENV_PREFIX = "EMBEDOPS_"

__all__ = ["COLLECTION_NAME", "ENV_PREFIX", "ServeSettings", "ServingConfig", "check_collection_name"]


class ServeSettings(ServingConfig):
    """Everything the app needs: the section's fields plus the hashed API keys (never the keys themselves)."""

    api_key_hashes: list[str] = Field(default_factory=list, repr=False)

    @classmethod
    def resolve(cls, section: ServingConfig | Mapping[str, Any] | None = None, *,
                env: Mapping[str, str] | None = None, **flags: Any) -> ServeSettings:
        """Merge the file's section, `EMBEDOPS_*` variables and flags (None means 'not given')."""
        from embedops.serve.auth import hash_key, read_keys_file

        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if section is not None:
            values.update(section.model_dump(exclude_unset=True) if isinstance(section, BaseModel) else section)
        values.update(_from_env(env))
        values.update({k: v for k, v in flags.items() if v is not None and v != [] and v != {}})
        keys = [k.strip() for k in env.get(f"{ENV_PREFIX}API_KEYS", "").split(",") if k.strip()]
        try:
            settings = cls(**values)
        except Exception as exc:  # pydantic's message names the field
            raise ConfigError(f"invalid serving settings: {exc}", where="serving") from exc
        hashes = [hash_key(k) for k in keys]
        if settings.api_keys_file:
            hashes += read_keys_file(Path(settings.api_keys_file))
        settings.api_key_hashes = hashes
        if settings.auth and not hashes:
            raise ConfigError("auth is on but no API key is configured",
                              hint="set EMBEDOPS_API_KEYS=key1,key2 or --api-keys-file, or pass --no-auth "
                                   "for local use")
        return settings


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """`EMBEDOPS_<FIELD>` for every scalar field; lists comma-separated; collections as `name=path,...`."""
    out: dict[str, Any] = {}
    for name, field in ServingConfig.model_fields.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        if name == "collections":
            out[name] = parse_collections(raw.split(","))
        elif field.annotation == list[str]:
            out[name] = [p.strip() for p in raw.split(",") if p.strip()]
        elif field.annotation is bool:
            out[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            out[name] = raw  # pydantic converts and checks
    return out


def parse_collections(items: list[str]) -> dict[str, str]:
    """`name=path` pairs (a bare path is named after its folder)."""
    out: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        out[check_collection_name(name.strip())] = path.strip()
    return out
