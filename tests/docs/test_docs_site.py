"""The documentation site builds with `mkdocs build --strict`, and its generated reference covers the code.

The reference pages are generated at build time (docs/_gen/hooks.py) from the typer app, the pydantic schema, the
FastAPI app and the error classes; these tests compare what the pages say with those sources, independently walked.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("embedops_docs_reference", REPO / "docs" / "_gen" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """The generated reference pages, once per module."""
    return _load_generator().generate()


def test_mkdocs_build_strict(tmp_path: Path):
    """The whole site (guides, generated reference, mkdocstrings API pages) builds with no warning."""
    env_python = Path(sys.executable)
    proc = subprocess.run([str(env_python), "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "guides/1-define/index.html", "reference/cli/index.html",
                 "reference/config/index.html", "reference/http-api/index.html", "reference/errors/index.html",
                 "reference/api/project/index.html"):
        assert (site / page).is_file(), f"{page} was not built"
    api = (site / "reference/api/project/index.html").read_text()
    assert 'id="embedops.project.Project.search"' in api, "mkdocstrings did not render Project's methods"
    # Offline by construction: no page pulls fonts or scripts from a CDN.
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis.com" not in text and "cdn.jsdelivr" not in text, html


def test_every_cli_command_and_option_is_in_the_reference(pages):
    """Each command path of the typer app, and each of its options, appears on the CLI page."""
    import typer.main

    from embedops.cli.main import app

    page = pages["reference/cli.md"]
    todo = [("embedops", typer.main.get_command(app))]
    seen = 0
    while todo:
        path, cmd = todo.pop()
        assert f"## `{path}`" in page or f"# `{path}`" in page, f"command {path!r} missing from the CLI reference"
        section = page.split(f"`{path}`\n", 1)[1]
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden:
                assert f"`{param.opts[0]}`" in section.split("\n#")[0], f"{path} {param.opts[0]} missing"
        seen += 1
        for name, sub in getattr(cmd, "commands", {}).items():
            todo.append((f"{path} {name}", sub))
    assert seen > 20


def test_every_config_field_is_in_the_reference(pages):
    """Each field of every section of ProjectConfig appears, as `section.field`, on the embedops.yaml page."""
    from pydantic import BaseModel

    from embedops.config.schema import ProjectConfig

    page = pages["reference/config.md"]
    count = 0
    for name, field in ProjectConfig.model_fields.items():
        if field.exclude:
            continue
        assert f"| `{name}` |" in page, f"top-level field {name!r} missing"
        annotation = field.annotation
        model = (getattr(annotation, "__args__", None) or (annotation,))[0]
        if isinstance(model, type) and issubclass(model, BaseModel):
            for sub in model.model_fields:
                assert f"| `{name}.{sub}` |" in page, f"field {name}.{sub} missing from the reference"
                count += 1
    assert count > 50


def test_every_http_route_is_in_the_reference(pages):
    """Each path and method of the server's routes appears on the HTTP API page."""
    from embedops.serve import routes_collections, routes_embeddings, routes_ops

    page = pages["reference/http-api.md"]
    # The routers the app includes, walked directly (not through the OpenAPI document the page is made from).
    routes = [r for mod in (routes_ops, routes_embeddings, routes_collections) for r in mod.router.routes
              if getattr(r, "include_in_schema", True)]
    assert len(routes) >= 10
    for route in routes:
        for method in route.methods - {"HEAD"}:
            path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)  # OpenAPI drops the converter: {model:path}
            assert f"| {method} | `{path}` |" in page, f"{method} {path} missing"


def test_every_error_class_has_advice(pages):
    """Every EmbedopsError subclass is listed, and each has a hand-written 'what to do' in the generator."""
    gen = _load_generator()
    page = pages["reference/errors.md"]
    classes = gen.error_classes()
    assert len(classes) >= 5
    missing = [c.__name__ for c in classes if c.__name__ not in gen.ADVICE]
    assert not missing, f"add what to do about {missing} to ADVICE in docs/_gen/reference.py"
    for cls in classes:
        assert f"`{cls.__module__}.{cls.__name__}`" in page
