"""`embedops serve [embedops.yaml]`: the HTTP API (OpenAI embeddings, collections, health, metrics) under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from embedops.cli._common import Backend, err_console


def _collections(items: list[str] | None) -> list[str] | None:
    """Each --collection is name=folder with a valid name and an existing collection folder."""
    from embedops.serve.settings import parse_collections

    for item in items or []:
        try:
            parsed = parse_collections([item])
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        for folder in parsed.values():
            if not Path(folder).expanduser().is_dir():
                raise typer.BadParameter(f"collection folder not found: {folder}")
    return items


def serve(
    config: Annotated[Path | None, typer.Argument(exists=True, help="embedops.yaml (default: the embedded "
                                                                    "defaults).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [127.0.0.1; env EMBEDOPS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port [8000; env EMBEDOPS_PORT].")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="A model to serve (name, folder, registry "
                                                    "alias); repeat for several; the first is the default.")] = None,
    backend: Annotated[Backend | None, typer.Option(help="torch, onnx or openvino (default: the project's).")]
    = None,
    collection: Annotated[list[str] | None, typer.Option("--collection", callback=_collections,
                                                         help="name=folder of a collection to serve; repeat for "
                                                              "several.")] = None,
    collections_root: Annotated[str | None, typer.Option(help="Folder where POST /v1/collections creates "
                                                         "collections (those in it are served too).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API key (local use only).")] = False,
    api_keys_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                       help="Keys file: one key or sha256:<hex> per line "
                                                            "(or env EMBEDOPS_API_KEYS=k1,k2).")] = None,
    max_inputs: Annotated[int | None, typer.Option(min=1, help="Inputs per request [2048].")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(min=1024, help="Request body bound [4 MiB].")] = None,
    max_queue: Annotated[int | None, typer.Option(min=1, help="Queued inputs per model before 429 [4096].")] = None,
    max_queue_wait: Annotated[float | None, typer.Option(min=0.001, help="429 when the work queued ahead would take "
                                                         "the model longer than this many seconds (measured "
                                                         "tokens/s); fit it to your clients' timeout [off].")] = None,
    request_timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds before 504 [30].")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option(help="Allow this browser origin (CORS is off "
                                                          "unless given).")] = None,
    max_batch_size: Annotated[int | None, typer.Option(min=1, help="Texts per model batch [64].")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(min=0, help="Longest wait for a batch to fill [2 ms].")]
    = None,
    log_level: Annotated[Literal["critical", "error", "warning", "info", "debug"] | None,
                         typer.Option(help="debug, info, warning, error or critical [info].")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="local (this process, uvicorn) or ray (replicas on "
                                                                 "Ray Serve).")] = "local",
    replicas: Annotated[int | None, typer.Option(min=1, help="ray: replicas of the app [2].")] = None,
    replica_cpus: Annotated[float, typer.Option(min=0.01, help="ray: CPUs each replica reserves.")] = 1.0,
    address: Annotated[str | None, typer.Option(help="ray: the cluster's head, host:port (default: start Ray on this "
                                                     "machine).")] = None,
) -> None:
    """Serve embeddings (OpenAI API) and collections over HTTP; flags and EMBEDOPS_* override the file."""
    import uvicorn

    from embedops.cli._common import open_project, quiet_libraries, resolve_model_early
    from embedops.serve.app import create_app
    from embedops.serve.logs import log_config
    from embedops.serve.settings import ServeSettings, parse_collections

    if collections_root is not None:
        from embedops.config.checks import writable_target

        writable_target(collections_root, "--collections-root", folder=True)
    for name in model or []:
        resolve_model_early(open_project(config), name)
    quiet_libraries()
    project = open_project(config)
    settings = ServeSettings.resolve(
        getattr(project.config, "serving", None), host=host, port=port, models=model or None, backend=backend,
        collections=parse_collections(collection) if collection else None, collections_root=collections_root,
        auth=False if no_auth else None, api_keys_file=str(api_keys_file) if api_keys_file else None,
        max_inputs=max_inputs, max_body_bytes=max_body_bytes, max_queue=max_queue, max_queue_wait_s=max_queue_wait,
        request_timeout=request_timeout,
        cors_origins=cors_origin or None, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
        log_level=log_level)
    if config is not None and not settings.collections:
        # A project file's own collection is served under its folder name when it has been built.
        folder = project.config.resolve(project.config.index.path)
        from embedops.index.sqlite_store import DB_NAME

        if (folder / DB_NAME).is_file():
            settings.collections = parse_collections([f"{_safe(folder.name)}={folder}"])
    if engine == "ray":  # the same app as N replicas behind Ray Serve's proxy (embedops/scale/ray_serve.py)
        from embedops.scale.ray_serve import run_until_stopped, serve_on_ray

        run_until_stopped(serve_on_ray(project, settings, replicas=replicas or 2, num_cpus=replica_cpus,
                                       address=address), echo=lambda m: err_console.print(m, highlight=False))
        return
    if replicas is not None or address is not None:
        raise typer.BadParameter("--replicas and --address need --engine ray")
    app = create_app(project, settings)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=log_config(settings.log_level),
        access_log=False, timeout_graceful_shutdown=int(settings.shutdown_timeout), workers=1))
    state = app.state.serving
    state.on_fatal = lambda: setattr(server, "should_exit", True)
    err_console.print(f"serving on http://{settings.host}:{settings.port}  (API docs: /docs, web console: /console/, "
                      "readiness: /ready)"
                      + ("  [auth off]" if not settings.auth else ""), highlight=False)
    server.run()
    if state.failed:
        err_console.print(f"[bold red]error:[/] start-up failed: {state.failed}", highlight=False)
        raise typer.Exit(1)


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name).strip(".-") or "default"
    return cleaned[:64]


def register(app: typer.Typer) -> None:
    """Add `serve` to the root command."""
    app.command("serve")(serve)
