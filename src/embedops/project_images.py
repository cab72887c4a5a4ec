"""The image half of `Project`: image encoders, image collections, search by image, `prepare --images`.

A mixin so `project.py` stays one concept per file; `Project` is the only class that uses it. The CLI
(`embedops index build --images`, `index search --image`, `prepare --images`) and the HTTP server (image inputs,
query-by-image) reach these through the same `Project` methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
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
        """Add (or replace, same id: the path relative to `folder`) a folder's images in an image collection.

        Every image's header is checked before anything is embedded, so an unreadable file or one over
        `images.max_pixels` refuses the whole call with nothing written.
        """
        from embedops.data.images import open_image
        from embedops.index.images import add_images

        col = self.open_collection(path)
        check_modality(col, "image", str(self.config.resolve(path or self.config.index.path)))
        items = self.read_images(folder, labels=labels, labels_csv=labels_csv)
        for it in items:  # headers only (cheap): a bad file found after the first chunk was written is too late
            open_image(it.path, max_pixels=self.config.images.max_pixels, where=str(it.path)).close()
        return add_images(col, items, batch_size=self.config.model.batch_size, show_progress=show_progress)

    def upsert_images(self, images: Sequence[Mapping[str, Any]], path: str | Path | None = None, *,
                      refresh: bool = True) -> int:
        """Embed and upsert images given as `{"id", "image", "metadata"}` (same id replaces); all or nothing.

        `image` is a path, bytes, a PIL image or a data URL. Errors name `images[i]`. The collection's own encoder
        embeds them (in a server, the model's batching worker); `refresh=False` leaves the keyword refresh to the
        background.
        """
        from embedops.data.records import Document
        from embedops.index.images import CHUNK

        col = self.open_collection(path)
        check_modality(col, "image", str(self.config.resolve(path or self.config.index.path)))
        if isinstance(images, Mapping | str | bytes):
            raise InputError("must be a list of {id, image, metadata} objects", where="images")
        docs, inputs, seen = [], [], {}
        for i, entry in enumerate(images):
            where = f"images[{i}]"
            if not isinstance(entry, Mapping):
                raise InputError(f"is {type(entry).__name__}; expected an object with id and image", where=where)
            unknown = set(entry) - {"id", "image", "metadata"}
            if unknown:
                raise InputError(f"unknown field(s) {', '.join(sorted(unknown))}", where=where)
            doc_id, image, meta = entry.get("id"), entry.get("image"), entry.get("metadata") or {}
            if not isinstance(doc_id, str) or not doc_id.strip():
                raise InputError("id must be a non-empty string", where=f"{where}.id")
            if doc_id in seen:
                raise InputError(f"duplicate id {doc_id!r} (also images[{seen[doc_id]}])", where=f"{where}.id",
                                 hint="give each image its own id")
            if image is None:
                raise InputError("image is missing", where=f"{where}.image")
            if not isinstance(meta, Mapping):
                raise InputError("metadata must be an object", where=f"{where}.metadata")
            seen[doc_id] = i
            inputs.append(Path(image) if isinstance(image, str) and not image.startswith("data:") else image)
            docs.append(Document(id=doc_id, text=doc_id, metadata=dict(meta), source=where))
        if not docs:
            return 0
        import numpy as np

        from embedops.data.images import load_rgb

        encoder = col.encoder
        max_pixels = self.config.images.max_pixels
        # Every image decoded (so a bad one is named by its index here, not by its place in a model batch) and every
        # vector computed before the first write: a bad image leaves the collection untouched.
        parts = []
        for start in range(0, len(inputs), CHUNK):  # CHUNK decoded images at a time bounds the memory
            chunk = [load_rgb(img, max_pixels=max_pixels, where=f"images[{start + j}]")
                     for j, img in enumerate(inputs[start : start + CHUNK])]
            parts.append(encoder.encode(chunk, batch_size=self.config.model.batch_size, kind="document"))
        return col.add(docs, vectors=np.concatenate(parts), refresh=refresh)

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


def collection_modality(col: Any) -> str:
    """'image' or 'text': what the collection's recorded model embeds (a collection without a record: text)."""
    spec = getattr(col, "encoder_spec", None) or {}
    return str(spec.get("modality") or "text")


def check_modality(col: Any, wanted: str, where: str) -> None:
    """Refuse to write `wanted` inputs (texts or images) into a collection of the other modality, before any model
    loads; the message names what the collection holds and the command that fits."""
    held = collection_modality(col)
    if held == wanted:
        return
    name = (getattr(col, "model", None) or {}).get("name") or "unknown model"
    if held == "image":
        raise InputError(f"the collection holds image vectors ({name}); texts cannot be added to it", where=where,
                         hint="add images with `embedops index add PATH --images FOLDER` (HTTP: POST "
                              "/v1/collections/{name}/images)")
    raise InputError(f"the collection holds text vectors ({name}); images cannot be added to it", where=where,
                     hint="add texts with `embedops index add PATH --data FILE`, or build an image collection "
                          "with `embedops index build PATH --images FOLDER`")

