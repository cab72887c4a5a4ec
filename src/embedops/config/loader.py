"""Load and validate `embedops.yaml`; errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from embedops.config.schema import ProjectConfig
from embedops.errors import ConfigError

DEFAULT_FILE = "embedops.yaml"


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_config(path: str | Path = DEFAULT_FILE) -> ProjectConfig:
    """Read a project file; raises ConfigError naming the field for invalid content."""
    p = Path(path)
    if p.is_dir():
        p = p / DEFAULT_FILE
    if not p.is_file():
        raise ConfigError("project file not found", where=str(p), hint="run `embedops init` to write a starter file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("invalid UTF-8", where=str(p)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where=where) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the project file must be a mapping of sections", where=str(p))
    try:
        cfg = ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(tuple(first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"field '{field}': {first['msg']}{more}", where=str(p)) from exc
    cfg.root = p.resolve().parent
    return cfg
