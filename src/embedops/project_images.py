"""The image half of `Project`: image encoders, image collections, search by image, `prepare --images`.

A mixin so `project.py` stays one concept per file; `Project` is the only class that uses it. The CLI
(`embedops index build --images`, `index search --image`, `prepare --images`) and the HTTP server (image inputs,
query-by-image) reach these through the same `Project` methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embedops.errors import InputError


class ImagesMixin:
    """Image models and collections; needs `self.config`, `self._lock`, `self._encoders`, `self._collections`."""

    config: Any
    _lock: threading.RLock
    _encoders: dict[tuple, Any]
    _collections: dict[Path, Any]

    resolver: Callable[[], Callable[[str], Any]]  # Project's methods, used here
    index_spec: Callable[..., Any]
    open_collection: Callable[..., Any]

    def load_image_encoder(self, model: str | None = None, **options: Any):
        """An image encoder (default `images.model`: efficientnet-lite0, bundled), cached per name and options.

        The `model:` section's options (truncate_dim, max_tokens) belong to the text model and are not applied.
        """
        from embedops.models import is_image_model, load_image_encoder

        name = model or self.config.images.model
        opts: dict[str, Any] = {"max_pixels": self.config.images.max_pixels}
        if self.config.model.device != "cpu":
            opts["device"] = self.config.model.device
        opts.update({k: v for k, v in options.items() if v is not None})
        key = ("image", name, tuple(sorted(opts.items())))
        with self._lock:
            encoder = self._encoders.get(key)
            if encoder is None:
                if not is_image_model(name, self.resolver()):
                    raise InputError(f"{name!r} is not an image model", where="model",
                                     hint="use efficientnet-lite0 (bundled), timm:NAME, torchvision:NAME, "
                                          "open_clip:ARCH/TAG or a CLIP folder")
                from embedops._console import quiet_libraries

                quiet_libraries()
                encoder = load_image_encoder(name, resolver=self.resolver(), **opts)
                self._encoders[key] = encoder
        return encoder

    def encode_images(self, images: Sequence[Any], *, model: str | None = None):
        """Embed images (paths, bytes, PIL images or data URLs) with the image model (normalised float32)."""
        if isinstance(images, str | bytes):
            raise InputError("must be a list of images", where="images")
        paths = [Path(i) if isinstance(i, str) and not i.startswith("data:") else i for i in images]
        return self.load_image_encoder(model).encode(paths, batch_size=self.config.model.batch_size)

    def read_images(self, folder: str | Path, *, labels: str = "auto", labels_csv: str | Path | None = None):
        """The images of a folder with labels from class subfolders or a CSV (see embedops.data.image_folders)."""
        from embedops.data.image_folders import read_image_folder

        return read_image_folder(folder, labels=labels, labels_csv=labels_csv)

    def index_images(self, folder: str | Path, path: str | Path | None = None, *, model: str | None = None,
                     encoder=None, labels: str = "auto", labels_csv: str | Path | None = None, spec=None,
                     overwrite: bool = False, show_progress: bool = False):
        """Build an image collection at `path` (default `index.path`) from a folder; swapped in only when complete."""
        from embedops.config import checks
        from embedops.index.images import build_image_collection

        items = self.read_images(folder, labels=labels, labels_csv=labels_csv)
        target = self.config.resolve(path or self.config.index.path)
        checks.writable_target(target, "path", folder=True)
        encoder = encoder or self.load_image_encoder(model)
        col = build_image_collection(target, encoder, items, spec=spec or self.index_spec(), overwrite=overwrite,
                                     batch_size=self.config.model.batch_size, show_progress=show_progress)
        self._share_collection(target, col)
        return col

    def add_images(self, folder: str | Path, path: str | Path | None = None, *, labels: str = "auto",
                   labels_csv: str | Path | None = None, show_progress: bool = False) -> int:
        """Add (or replace, same id) the images of a folder to an existing image collection."""
        from embedops.index.images import add_images

        items = self.read_images(folder, labels=labels, labels_csv=labels_csv)
        return add_images(self.open_collection(path), items, batch_size=self.config.model.batch_size,
                          show_progress=show_progress)

    def search_image(self, image: Any, k: int = 10, filter=None, *, path: str | Path | None = None):
        """Search a collection by an image (a path, bytes, PIL image or data URL): its nearest stored items."""
        from embedops.config import checks
        from embedops.index.images import search_by_image

        checks.positive_int(k, "k", optional=False)
        return search_by_image(self.open_collection(path), image, k, filter)

    def prepare_images(self, source: str | Path, output: str | Path, options=None, *, progress=None):
        """Convert, shrink and dedupe an image folder into `output` with a report (embedops.data.image_prepare)."""
        from embedops.data.image_prepare import ImagePrepareOptions, prepare_images

        opts = options or ImagePrepareOptions()
        opts.max_pixels = self.config.images.max_pixels if options is None else opts.max_pixels
        return prepare_images(source, output, opts, progress=progress)

    def _share_collection(self, target: Path, col: Any) -> None:
        """Keep `col` as the project's open collection for `target`, closing the one it replaces."""
        import contextlib

        with self._lock:
            old = self._collections.pop(target.resolve(), None)
            self._collections[target.resolve()] = col
        if old is not None and old is not col:
            with contextlib.suppress(Exception):  # it was replaced on disk: nothing of it is left to flush
                old.close()
