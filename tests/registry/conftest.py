"""A hard-linked copy of the bundled model, shared by the registry tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from embedops.models import bundled_default_path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A copy of the bundled model (hard links: registration must still treat it as a real folder)."""
    from embedops.registry.integrity import link_or_copy

    dst = tmp_path_factory.mktemp("m") / "minilm"
    shutil.copytree(bundled_default_path(), dst, copy_function=link_or_copy, dirs_exist_ok=True)
    return dst
