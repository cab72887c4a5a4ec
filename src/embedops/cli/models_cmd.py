"""`embedops models list | show | promote | rollback | import`: the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from embedops.cli._common import ConfigOpt, console, open_project

models_app = typer.Typer(help="Model registry: versions with lineage, aliases champion/challenger.",
                         no_args_is_help=True)

RegistryOpt = Annotated[Path | None,
                        typer.Option("--registry", file_okay=False,
                                     help="Registry folder ($EMBEDOPS_REGISTRY or ./models).")]


def _registry(root: Path | None, config: Path | None = None):
    return open_project(config, registry=root).registry


def _key_metric(manifest: dict) -> str:
    ev = manifest.get("evaluation") or {}
    key = ev.get("key_metric")
    if not key or key not in (ev.get("after") or {}):
        return ""
    c = ev["comparison"][key]
    return f"{key} {ev['before'][key]:.4f}->{ev['after'][key]:.4f} ({c['diff']:+.4f})"


@models_app.command("list")
def list_versions(registry: RegistryOpt = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Every registered version with its aliases, base model and key metric."""
    reg = _registry(registry)
    versions = reg.versions()
    if as_json:
        console.print_json(json.dumps([{"ref": v.ref, "path": str(v.path), "aliases": reg.aliases_of(v.ref),
                                        "base": (v.manifest.get("base_model") or {}).get("name"),
                                        "created_at": v.manifest.get("created_at")} for v in versions]))
        return
    table = Table(title=f"registry {reg.root}", title_justify="left")
    for col in ("version", "aliases", "kind", "base", "created", "evaluation"):
        table.add_column(col)
    for v in versions:
        m = v.manifest
        table.add_row(v.ref, ", ".join(reg.aliases_of(v.ref)), m.get("kind", ""),
                      str((m.get("base_model") or {}).get("name") or m.get("source") or ""),
                      str(m.get("created_at", "")), _key_metric(m))
    console.print(table if versions else f"no versions in {reg.root}")


@models_app.command("show")
def show(spec: Annotated[str, typer.Argument(help="name, name@vN, name@latest or an alias.")],
         registry: RegistryOpt = None) -> None:
    """The manifest of one version (lineage, data fingerprint, params, libraries, metrics, aliases)."""
    reg = _registry(registry)
    v = reg.get(spec)
    console.print(f"[bold]{v.ref}[/] at {v.path}")
    console.print_json(json.dumps({**v.manifest, "aliases": reg.aliases_of(v.ref)}, default=str))


@models_app.command("promote")
def promote(spec: Annotated[str, typer.Argument(help="Version to promote: name@vN, name, or an alias.")],
            alias: Annotated[str, typer.Option(help="Alias to point at it.")] = "champion",
            force: Annotated[bool, typer.Option("--force", help="Promote even if the quality gate fails "
                                                                "(recorded in the manifest).")] = False,
            gate: Annotated[bool, typer.Option(help="Measure the project's criteria when the version has no "
                                                    "recorded gate.")] = True,
            registry: RegistryOpt = None, config: ConfigOpt = None) -> None:
    """Point an alias (default champion) at a version that passes the quality gate; `eval -m champion` and a running
    server follow it."""
    project = open_project(config, registry=registry)
    v = project.promote(spec, alias, force=force, gate=gate)
    gate_info = v.manifest.get("gate") or {}
    note = f"; gate: {gate_info.get('summary')}" if gate_info else ""
    forced = " [bold yellow](forced past a failed gate)[/]" if gate_info.get("passed") is False else ""
    console.print(f"{alias} -> [bold]{v.ref}[/] ({v.path}){forced}{note}")


@models_app.command("rollback")
def rollback(alias: Annotated[str, typer.Argument(help="Alias to move back.")] = "champion",
             registry: RegistryOpt = None, config: ConfigOpt = None) -> None:
    """Point an alias back at the version that held it before (history is kept)."""
    v = open_project(config, registry=registry).rollback(alias)
    console.print(f"{alias} -> [bold]{v.ref}[/] (rolled back)")


@models_app.command("import")
def import_model(path: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                                     help="A sentence-transformers model folder.")],
                 name: Annotated[str | None, typer.Option(help="Registry name (default: folder name).")] = None,
                 alias: Annotated[str | None, typer.Option(help="Alias to point at it.")] = None,
                 move: Annotated[bool, typer.Option("--move", help="Take the folder over (hard links, no copy; "
                                                                  "removed once registered).")] = False,
                 registry: RegistryOpt = None) -> None:
    """Copy (or --move) an existing model folder into the registry as a new version."""
    reg = _registry(registry)
    v = reg.import_model(path, name, alias=alias, move=move)
    console.print(f"imported [bold]{v.ref}[/] at {v.path}")


def register(app: typer.Typer) -> None:
    """Add `embedops models`."""
    app.add_typer(models_app, name="models")
