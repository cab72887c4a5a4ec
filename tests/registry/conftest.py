"""A hard-linked copy of the bundled model, shared by the registry tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embedops.models import bundled_default_path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A copy of the bundled model (hard links: registration must still treat it as a real folder)."""
    src = bundled_default_path()
    dst = tmp_path_factory.mktemp("m") / "minilm"
    for f in src.rglob("*"):
        target = dst / f.relative_to(src)
        if f.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, target)
    return dst
