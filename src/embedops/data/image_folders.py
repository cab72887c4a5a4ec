"""Folders of images, with labels from class subfolders or from a CSV.

Two layouts are read:

- class subfolders (ImageNet / torchvision `ImageFolder` style): `root/cat/001.jpg` has the label `cat`;
- a CSV with a file column (`file`, `filename`, `path` or `image`; paths relative to the CSV's folder) and a label
  column (`label`, `class` or `category`), e.g. `/work/shared/data/digits/labels.csv`.

`labels="auto"` takes a `labels.csv` in the root when there is one, else subfolders when every image sits in one,
else no labels. An item's id is its path relative to the root (POSIX separators), so it is stable across machines.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.data.images import IMAGE_SUFFIXES
from embedops.errors import InputError

FILE_COLUMNS = ("file", "filename", "path", "image")
LABEL_COLUMNS = ("label", "class", "category")
LABEL_MODES = ("auto", "folders", "csv", "none")


@dataclass
class ImageItem:
    """One image of a folder: id (relative path), file, label (None when unlabelled), extra metadata."""

    id: str
    path: Path
    label: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def document_metadata(self) -> dict[str, Any]:
        """What a collection stores with the image: its relative path, label and any CSV columns."""
        meta = {"path": self.id, **self.metadata}
        if self.label is not None:
            meta["label"] = self.label
        return meta


def list_images(root: Path) -> list[Path]:
    """Image files under `root` (by suffix, hidden files and folders skipped), in a stable sorted order."""
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _column(header: list[str], names: tuple[str, ...], what: str, where: str) -> str:
    lowered = {h.strip().lower(): h for h in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise InputError(f"no {what} column (expected one of {', '.join(names)}; found {', '.join(header)})",
                     where=where)


def read_label_csv(csv_path: Path, root: Path | None = None) -> list[ImageItem]:
    """Items listed by a CSV (file + label columns, other columns kept as metadata); errors name the line."""
    if not csv_path.is_file():
        raise InputError("labels CSV not found", where=str(csv_path))
    base = csv_path.parent
    root = root or base
    items: list[ImageItem] = []
    seen: dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        file_col = _column(header, FILE_COLUMNS, "file", str(csv_path))
        label_col = _column(header, LABEL_COLUMNS, "label", str(csv_path))
        for lineno, row in enumerate(reader, start=2):
            where = f"{csv_path}:{lineno}"
            name = (row.get(file_col) or "").strip()
            if not name:
                raise InputError(f"empty {file_col!r}", where=where)
            path = (base / name).resolve()
            if not path.is_file():
                raise InputError(f"image {name!r} not found", where=where)
            try:
                item_id = path.relative_to(root.resolve()).as_posix()
            except ValueError:
                raise InputError(f"image {name!r} is outside the folder {root}", where=where) from None
            if item_id in seen:
                raise InputError(f"image {name!r} is listed twice (also at line {seen[item_id]})", where=where)
            seen[item_id] = lineno
            label = (row.get(label_col) or "").strip() or None
            extra = {k: v for k, v in row.items() if k not in (file_col, label_col) and k is not None and v}
            items.append(ImageItem(item_id, path, label, extra))
    if not items:
        raise InputError("the labels CSV lists no images", where=str(csv_path))
    return items


def read_image_folder(root: str | Path, *, labels: str = "auto", labels_csv: str | Path | None = None
                      ) -> list[ImageItem]:
    """The images of a folder with their labels (see the module docstring for the layouts and `labels`)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("image folder not found" if not root.exists() else "expected a folder of images",
                         where=str(root))
    if labels not in LABEL_MODES:
        raise InputError(f"unknown labels mode {labels!r}; use one of {', '.join(LABEL_MODES)}", where="labels")
    if labels_csv is not None or labels == "csv":
        csv_path = Path(labels_csv) if labels_csv is not None else root / "labels.csv"
        return read_label_csv(csv_path, root)
    if labels == "auto" and (root / "labels.csv").is_file():
        return read_label_csv(root / "labels.csv", root)
    files = list_images(root)
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder", where=str(root))
    nested = all(len(f.relative_to(root).parts) >= 2 for f in files)
    if labels == "folders" and not nested:
        loose = next(f for f in files if len(f.relative_to(root).parts) < 2)
        raise InputError(f"{loose.name} is not in a class subfolder", where=str(root),
                         hint="put each image in a folder named after its class, or use labels='none'")
    by_folder = labels == "folders" or (labels == "auto" and nested)
    return [ImageItem(f.relative_to(root).as_posix(), f, f.relative_to(root).parts[0] if by_folder else None)
            for f in files]
