"""Reading images safely and preparing them the way a model was trained to see them.

Every image any entry point hands to a model (a file, bytes from an upload, a `data:` URL, a PIL image) passes
through `load_rgb`, so the same rules hold everywhere:

- the size in the header is checked against a pixel limit *before* anything is decoded (a 20,000 x 20,000 PNG of a
  few kB would otherwise take 1.2 GB), and Pillow's own decompression-bomb guard stays on behind it;
- a file that is not an image, or is truncated or corrupt, is an `InputError` naming it, never a crash or a
  half-decoded picture (Pillow's LOAD_TRUNCATED_IMAGES is left off);
- the EXIF orientation is applied (a phone photo taken upright is upright);
- every colour mode becomes 8-bit RGB: grayscale and bilevel are replicated, palette and alpha images are
  composited onto white (a transparent background is white, as a browser shows it, not the arbitrary colour hidden
  under alpha 0), CMYK is converted, 16-bit and float images are scaled to 0-255 rather than clipped.

`Preprocess` is a model's input recipe: resize the shorter side, centre crop, scale to [0, 1], normalise with the
mean/std the weights were trained with. It crops in the source's coordinates and resizes only the crop (one Pillow
call), so a 1 x 10,000 strip never becomes a 256 x 2,560,000 intermediate.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops._optional import require
from embedops.errors import InputError

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width x height) read by default: 64 MP covers camera photos; a bomb is refused from its header."""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
"""File suffixes read as images when a folder is listed."""
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, TypeError)

ImageInput = Any
"""What image entry points accept: a `pathlib.Path` (or other os.PathLike), bytes, a PIL image, or a `data:` URL."""


def pil() -> Any:
    """The PIL.Image module (Pillow is in the `images` extra)."""
    return require("PIL.Image", "images")


def is_data_url(value: Any) -> bool:
    """Whether `value` is a string that starts like a `data:` URL."""
    return isinstance(value, str) and value[:5].lower() == "data:"


def is_image_input(value: Any) -> bool:
    """Whether `value` is one of the accepted image forms (a plain str is text, never a path)."""
    if isinstance(value, bytes | bytearray | memoryview | os.PathLike) or is_data_url(value):
        return True
    return type(value).__module__.startswith("PIL.") and hasattr(value, "size") and hasattr(value, "mode")


def decode_data_url(text: str, where: str = "image") -> bytes:
    """The bytes of a base64 `data:image/...;base64,` URL; an InputError naming `where` for anything else."""
    m = _DATA_URL.match(text)
    if m is None:
        raise InputError("not a data URL (expected data:image/<type>;base64,<data>)", where=where)
    mime = (m["mime"] or "").lower()
    if mime and not mime.startswith("image/"):
        raise InputError(f"the data URL holds {mime}, not an image", where=where,
                         hint="send data:image/png;base64,... or data:image/jpeg;base64,...")
    if not m["b64"]:
        raise InputError("the data URL is not base64-encoded (missing ';base64')", where=where)
    payload = text[m.end():].strip()
    if not payload:
        raise InputError("the data URL holds no data", where=where)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"the data URL's base64 is invalid: {exc}", where=where) from exc


def _describe(source: Any) -> str:
    if isinstance(source, os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"{len(source)} bytes"
    return type(source).__name__


def _what(data: bytes) -> str:
    """A hint of what non-image bytes are (text files renamed .png are the usual case)."""
    head = data[:64]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with bytes {head[:8].hex(' ')}"
    return f"it looks like text: {text[:40]!r}"


def open_image(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, where: str | None = None) -> Any:
    """Open an image lazily (header only) and refuse it when it has more than `max_pixels` pixels.

    Nothing is decoded yet; `load_rgb` decodes. A PIL image passes through (its pixels are already in memory).
    """
    Image = pil()
    where = where or _describe(source)
    if is_data_url(source):
        source = decode_data_url(source, where)
    if hasattr(source, "mode") and hasattr(source, "size") and not isinstance(source, os.PathLike):
        return source
    if isinstance(source, str):
        raise InputError("a plain string is not an image", where=where,
                         hint="pass a pathlib.Path for a file, bytes, a PIL image or a data:image/...;base64 URL")
    if isinstance(source, os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise InputError("no such image file" if not path.exists() else "not a file", where=where)
        fh: Any = path
    elif isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise InputError("empty image data", where=where)
        fh = io.BytesIO(bytes(source))
    else:
        raise InputError(f"{type(source).__name__} is not an image (expected a path, bytes, a PIL image or a data "
                         "URL)", where=where)
    try:
        img = Image.open(fh)
    except Image.DecompressionBombError as exc:
        raise InputError(f"the image is too large to read safely: {exc}", where=where,
                         hint=f"the limit is {max_pixels:,} pixels") from exc
    except Image.UnidentifiedImageError as exc:
        data = path.read_bytes()[:64] if isinstance(source, os.PathLike) else bytes(source)[:64]
        raise InputError(f"not an image Pillow can read ({_what(data)})", where=where) from exc
    except _DECODE_ERRORS as exc:
        raise InputError(f"the image is truncated or corrupt (its header cannot be read: {exc})",
                         where=where) from exc
    w, h = img.size
    if w < 1 or h < 1:
        img.close()
        raise InputError(f"the image has no pixels ({w} x {h})", where=where)
    if w * h > max_pixels:
        img.close()
        raise InputError(f"the image is {w} x {h} = {w * h:,} pixels, over the limit of {max_pixels:,}; it was "
                         "refused before decoding", where=where,
                         hint="downscale it first (embedops prepare --images), or raise images.max_pixels")
    return img


def to_rgb(img: Any) -> Any:
    """8-bit RGB from any Pillow mode (alpha and palette transparency composited onto white; 16-bit scaled)."""
    Image = pil()
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # 0..65535 -> 0..255 exactly at both ends
        else:  # 32-bit int or float: 16-bit data stored wide, 0..1 floats, or anything else
            top = float(arr.max()) if arr.size else 0.0
            low = float(arr.min()) if arr.size else 0.0
            if mode == "F" and low >= 0.0 and top <= 1.0:
                arr = arr * 255.0
            elif low >= 0 and top <= 255:
                pass
            elif low >= 0 and top <= 65535:
                arr = arr / 257.0
            else:
                arr = (arr - low) * (255.0 / max(top - low, 1e-12))
        gray = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA", "RGBX"):
        rgba = img.convert("RGBA")
        if mode == "RGBX":
            return rgba.convert("RGB")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, HSV ...
    except ValueError as exc:
        raise InputError(f"images in colour mode {mode} are not supported: {exc}") from exc


def load_rgb(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, where: str | None = None,
             draft: int | None = None) -> Any:
    """Read, check and decode one image into upright 8-bit RGB (see the module docstring for the rules).

    `draft`: the smallest side the caller needs; a JPEG is then decoded at a reduced scale (DCT scaling) that still
    covers it, several times faster for camera photos.
    """
    ImageOps = require("PIL.ImageOps", "images")
    where = where or _describe(source)
    img = open_image(source, max_pixels=max_pixels, where=where)
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # an animated GIF or multi-page TIFF: its first frame
        if draft and getattr(img, "format", None) == "JPEG" and img.mode in ("RGB", "L"):
            img.draft(img.mode, (draft, draft))
        img.load()
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
    except InputError as exc:
        raise InputError(exc.message, where=where, hint=exc.hint) from exc
    except _DECODE_ERRORS as exc:
        raise InputError(f"the image is truncated or corrupt: {exc}", where=where) from exc


@dataclass(frozen=True)
class Preprocess:
    """A model's input recipe: shorter side to `resize`, centre crop `size`, scale to [0, 1], (x - mean) / std."""

    size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.size < 1 or self.resize < self.size:
            raise InputError(f"preprocess needs size >= 1 and resize >= size, got size {self.size}, resize "
                             f"{self.resize}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InputError("preprocess needs three means and three positive standard deviations")

    def as_dict(self) -> dict[str, Any]:
        """JSON form (recorded in an encoder's spec and fingerprint)."""
        out = asdict(self)
        out["mean"] = [float(v) for v in self.mean]
        out["std"] = [float(v) for v in self.std]
        return out

    def crop(self, img: Any) -> Any:
        """The centre crop of the resized image, as one Pillow resize of a box in source coordinates."""
        Image = pil()
        w, h = img.size
        scale = self.resize / min(w, h)
        side = self.size / scale  # the crop's side in source pixels (<= the shorter side)
        left, top = (w - side) / 2, (h - side) / 2
        resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                    "lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}[self.resample]
        return img.resize((self.size, self.size), resample, box=(left, top, left + side, top + side))

    def __call__(self, img: Any) -> np.ndarray:
        """RGB PIL image -> float32 array [3, size, size], normalised."""
        arr = np.asarray(self.crop(img), dtype=np.float32) * np.float32(1 / 255)
        arr = (arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def load(self, source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS, where: str | None = None
             ) -> np.ndarray:
        """Read one image (safely, see `load_rgb`) and prepare it."""
        return self(load_rgb(source, max_pixels=max_pixels, where=where, draft=self.resize))


RESAMPLE_NAMES = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "lanczos"}
"""Pillow's integer resample codes (as Hugging Face preprocessor configs record them) by name."""


def preprocess_from_hf(config: dict[str, Any], default: Preprocess) -> Preprocess:
    """The recipe a Hugging Face `preprocessor_config.json` describes (CLIP: shortest_edge, crop_size, mean/std)."""
    def side(value: Any, fallback: int) -> int:
        if isinstance(value, dict):
            value = value.get("shortest_edge") or value.get("height") or value.get("width")
        return int(value) if value else fallback

    crop = side(config.get("crop_size"), default.size)
    resize = side(config.get("size"), default.resize)
    resample = config.get("resample")
    return Preprocess(size=crop, resize=max(resize, crop),
                      mean=tuple(config.get("image_mean") or default.mean),
                      std=tuple(config.get("image_std") or default.std),
                      resample=RESAMPLE_NAMES.get(resample, default.resample) if isinstance(resample, int)
                      else default.resample)


def preprocess_batch(recipe: Preprocess, sources: Sequence[ImageInput], *, max_pixels: int = DEFAULT_MAX_PIXELS,
                     where: str = "image") -> np.ndarray:
    """Several images prepared into one array [n, 3, size, size]; a bad one is an InputError naming its index."""
    out = np.empty((len(sources), 3, recipe.size, recipe.size), dtype=np.float32)
    for i, src in enumerate(sources):
        out[i] = recipe.load(src, max_pixels=max_pixels, where=f"{where} {i}")
    return out
