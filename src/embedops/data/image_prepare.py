"""`prepare --images`: read a folder of images, make every one upright 8-bit RGB of a bounded size, drop exact and
near duplicates (perceptual hash), write the result as a new folder with the same layout, and a report.

Nothing is silent: every dropped image is listed with the one it duplicates, every unreadable one with the reason.
The output folder is built under a temporary name and renamed into place only when complete, so an error or Ctrl-C
leaves no half-written folder. Of a group of duplicates the image with the most pixels is kept (ties: the first
path), so dedupe never keeps a thumbnail over the original.

Near duplicates are images whose 64-bit perceptual hashes (imagehash's pHash: the DCT of a 32 x 32 grey thumbnail)
differ in at most `hash_distance` bits. Candidates are found by pigeonhole buckets (split the hash into
`hash_distance + 1` parts: two hashes within the distance agree exactly on at least one part), so a large folder is
not compared pair by pair.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops._io import atomic_dir, atomic_write_json
from embedops._optional import require
from embedops.data.image_folders import ImageItem, read_image_folder
from embedops.data.images import DEFAULT_MAX_PIXELS, load_rgb, open_image, pil
from embedops.errors import InputError

FORMATS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}


@dataclass
class ImagePrepareOptions:
    """What `prepare_images` does."""

    max_side: int | None = 1024  # the longer side is shrunk to this (never enlarged); None keeps the size
    format: str = "jpeg"  # jpeg | png | webp
    quality: int = 90  # JPEG/WebP quality
    dedupe: str = "near"  # none | exact | near
    hash_distance: int = 6  # near: at most this many of 64 pHash bits differ
    labels: str = "auto"  # see read_image_folder
    labels_csv: str | Path | None = None
    drop_unreadable: bool = False  # list and skip unreadable files instead of failing
    max_pixels: int = DEFAULT_MAX_PIXELS

    def check(self) -> None:
        """Refuse impossible options before any work."""
        if self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}", where="format")
        if self.dedupe not in ("none", "exact", "near"):
            raise InputError(f"unknown dedupe {self.dedupe!r}; use none, exact or near", where="dedupe")
        if not 0 <= self.hash_distance <= 32:
            raise InputError("hash_distance must be between 0 and 32", where="hash_distance")
        if self.max_side is not None and self.max_side < 8:
            raise InputError("max_side must be at least 8 pixels", where="max_side")
        if not 1 <= self.quality <= 100:
            raise InputError("quality must be between 1 and 100", where="quality")


@dataclass
class ImagePrepareReport:
    """Counts and examples of every change, written beside the output folder."""

    source: str
    output: str
    read: int = 0
    converted: dict[str, str] = field(default_factory=dict)  # id -> original mode
    rotated: list[str] = field(default_factory=list)
    resized: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)  # id -> reason
    dropped_exact_duplicates: dict[str, str] = field(default_factory=dict)  # dropped id -> kept id
    dropped_near_duplicates: dict[str, str] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    written: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (examples capped at 50 each)."""
        def first(d: dict[str, str]) -> dict[str, str]:
            return dict(list(d.items())[:50])

        return {"source": self.source, "output": self.output, "read": self.read,
                "converted_to_rgb": len(self.converted), "converted_examples": first(self.converted),
                "rotated_by_exif": len(self.rotated), "resized": self.resized,
                "unreadable": len(self.unreadable), "unreadable_files": first(self.unreadable),
                "dropped_exact_duplicates": len(self.dropped_exact_duplicates),
                "dropped_near_duplicates": len(self.dropped_near_duplicates),
                "duplicate_examples": first({**self.dropped_exact_duplicates, **self.dropped_near_duplicates}),
                "labels": dict(sorted(self.labels.items())), "written": self.written,
                "seconds": round(self.seconds, 2)}


def report_path(output: Path) -> Path:
    """Where the report of a prepared folder is written: `<output>.report.json` beside it."""
    return output.with_name(output.name + ".report.json")


class HashIndex:
    """Kept perceptual hashes, searchable for one within `distance` bits (pigeonhole buckets, exact answers)."""

    def __init__(self, distance: int, bits: int = 64):
        self.distance = distance
        parts = distance + 1
        edges = [round(i * bits / parts) for i in range(parts + 1)]
        self._masks = [(((1 << (hi - lo)) - 1) << lo, lo) for lo, hi in zip(edges, edges[1:], strict=False)]
        self._buckets: dict[tuple[int, int], list[int]] = {}
        self._hashes: list[int] = []
        self._ids: list[str] = []

    def find(self, value: int) -> str | None:
        """The id of a kept hash within the distance of `value` (the closest), or None."""
        best: tuple[int, str] | None = None
        seen: set[int] = set()
        for part, (mask, shift) in enumerate(self._masks):
            for j in self._buckets.get((part, (value & mask) >> shift), ()):
                if j in seen:
                    continue
                seen.add(j)
                d = (self._hashes[j] ^ value).bit_count()
                if d <= self.distance and (best is None or d < best[0]):
                    best = (d, self._ids[j])
        return None if best is None else best[1]

    def add(self, value: int, item_id: str) -> None:
        """Keep a hash."""
        j = len(self._hashes)
        self._hashes.append(value)
        self._ids.append(item_id)
        for part, (mask, shift) in enumerate(self._masks):
            self._buckets.setdefault((part, (value & mask) >> shift), []).append(j)


def perceptual_hash(img: Any) -> int:
    """64-bit pHash of an image as an int (imagehash, in the `images` extra)."""
    imagehash = require("imagehash", "images")
    bits = imagehash.phash(img, hash_size=8).hash.flatten()
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


@dataclass
class _Seen:
    item: ImageItem
    out: Path
    pixels: int
    exact: str
    phash: int


def _convert_one(item: ImageItem, opts: ImagePrepareOptions, out_root: Path, report: ImagePrepareReport
                 ) -> _Seen:
    """Read, convert, shrink and write one image into the temporary output; its hashes for dedupe."""
    Image = pil()
    with open_image(item.path, max_pixels=opts.max_pixels, where=str(item.path)) as header:
        mode = header.mode
        orientation = header.getexif().get(0x0112, 1)  # the EXIF Orientation tag; 1 is upright
    img = load_rgb(item.path, max_pixels=opts.max_pixels, where=str(item.path))
    if mode != "RGB":
        report.converted[item.id] = mode
    if orientation not in (1, None):
        report.rotated.append(item.id)
    exact = hashlib.sha256(f"{img.size}".encode() + img.tobytes()).hexdigest()
    pixels = img.size[0] * img.size[1]
    phash = perceptual_hash(img) if opts.dedupe == "near" else 0
    if opts.max_side and max(img.size) > opts.max_side:
        img = img.copy()
        img.thumbnail((opts.max_side, opts.max_side), Image.Resampling.LANCZOS)
        report.resized += 1
    out = out_root / Path(item.id).with_suffix(FORMATS[opts.format])
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    save: dict[str, Any] = {"quality": opts.quality} if opts.format in ("jpeg", "webp") else {"optimize": True}
    img.save(buf, format=opts.format.upper(), **save)
    out.write_bytes(buf.getvalue())
    return _Seen(item, out, pixels, exact, phash)


def _dedupe(seen: list[_Seen], opts: ImagePrepareOptions, report: ImagePrepareReport) -> list[_Seen]:
    """The images kept: most pixels first wins within each group of exact or near duplicates."""
    if opts.dedupe == "none":
        return seen
    order = sorted(seen, key=lambda s: (-s.pixels, s.item.id))
    exact: dict[str, str] = {}
    near = HashIndex(opts.hash_distance)
    kept: list[_Seen] = []
    for s in order:
        if s.exact in exact:
            report.dropped_exact_duplicates[s.item.id] = exact[s.exact]
            continue
        match = near.find(s.phash) if opts.dedupe == "near" else None
        if match is not None:
            report.dropped_near_duplicates[s.item.id] = match
            continue
        exact[s.exact] = s.item.id
        if opts.dedupe == "near":
            near.add(s.phash, s.item.id)
        kept.append(s)
    dropped = {id(s) for s in seen} - {id(s) for s in kept}
    for s in seen:
        if id(s) in dropped:
            s.out.unlink()
    return sorted(kept, key=lambda s: s.item.id)


def _write_labels(kept: list[_Seen], tmp: Path) -> None:
    """A labels.csv for the output when the source's labels came from a CSV (subfolders carry themselves)."""
    with open(tmp / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        for s in kept:
            writer.writerow([s.out.relative_to(tmp).as_posix(), s.item.label or ""])


def prepare_images(source: str | Path, output: str | Path, options: ImagePrepareOptions | None = None, *,
                   progress: Callable[[], None] | None = None) -> ImagePrepareReport:
    """Convert, shrink and dedupe the images of `source` into the folder `output`; returns (and writes) the report."""
    opts = options or ImagePrepareOptions()
    opts.check()
    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve() or source.resolve() in output.resolve().parents:
        raise InputError("the output folder must not be the source folder or inside it", where=str(output))
    started = time.perf_counter()
    items = read_image_folder(source, labels=opts.labels, labels_csv=opts.labels_csv)
    from_csv = opts.labels_csv is not None or opts.labels == "csv" or (
        opts.labels == "auto" and (source / "labels.csv").is_file())
    report = ImagePrepareReport(source=str(source), output=str(output), read=len(items))
    with atomic_dir(output) as tmp:
        seen: list[_Seen] = []
        for item in items:
            try:
                seen.append(_convert_one(item, opts, tmp, report))
            except InputError as exc:
                if not opts.drop_unreadable:
                    raise InputError(exc.message, where=exc.where or item.id,
                                     hint=exc.hint or "fix or remove it, or pass --drop-unreadable") from exc
                report.unreadable[item.id] = exc.message
            if progress is not None:
                progress()
        kept = _dedupe(seen, opts, report)
        if not kept:
            raise InputError("no readable images to write", where=str(source))
        if from_csv:
            _write_labels(kept, tmp)
        for s in kept:
            if s.item.label is not None:
                report.labels[s.item.label] = report.labels.get(s.item.label, 0) + 1
        report.written = len(kept)
        report.seconds = time.perf_counter() - started
    atomic_write_json(report_path(output), report.as_dict())
    return report
