"""MkDocs hook: add the generated reference pages to every build, so the site always matches the code."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import reference  # noqa: E402 - the generator beside this hook


def on_files(files, config):
    """Add reference/cli.md, config.md, http-api.md and errors.md, generated from the installed embedops."""
    from mkdocs.structure.files import File

    for rel, text in reference.generate().items():
        files.append(File.generated(config, rel, content=text))
    return files
