"""Image collections: a `Collection` whose encoder embeds images, filled from a folder and searched by image or text.

An image is stored as a document whose id and text are its path relative to the folder it was read from (so keyword
search matches file and folder names) and whose metadata holds that path and its label (`filter={"label": "cat"}`).
The collection records the image encoder's spec like any other (modality "image", the input recipe in the
fingerprint), so it reopens with the same model; a text query works when that model reads text too (CLIP), and an
image query with any image model.

The index package never reads pixels itself: it hands image paths (or the caller's image) to the encoder, which
reads them safely (embedops.data.images).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops._progress import start_progress
from embedops.data.image_folders import ImageItem
from embedops.data.images import is_data_url
from embedops.data.records import Document
from embedops.errors import InputError
from embedops.index.base import Filter, Hit, IndexSpec
from embedops.index.collection import Collection
from embedops.index.faiss_store import FaissStore
from embedops.index.identity import ENCODER_KEY, record_encoder
from embedops.index.lifecycle import build_beside
from embedops.protocols import Encoder

CHUNK = 256  # images embedded per encode call: bounds the memory of decoded model inputs (~150 MB at 224 px)


def image_documents(items: Sequence[ImageItem]) -> list[Document]:
    """The documents a collection stores for images: id and text the relative path, metadata path + label."""
    return [Document(id=it.id, text=it.id, metadata=it.document_metadata(), source=str(it.path)) for it in items]


def _check_image_encoder(encoder: Encoder, where: str) -> None:
    if getattr(encoder, "modality", "text") != "image":
        raise InputError(f"{encoder.name!r} is a text model; image collections need an image model", where=where,
                         hint="e.g. efficientnet-lite0 (bundled) or a CLIP model")


def add_images(col: Collection, items: Sequence[ImageItem], *, batch_size: int = 32,
               show_progress: bool = False) -> int:
    """Embed and upsert images (same id replaces), CHUNK at a time; returns how many were written."""
    encoder = col.encoder
    _check_image_encoder(encoder, str(getattr(col.store, "folder", "collection")))
    if not items:
        return 0
    progress = start_progress(show_progress, len(items), f"embedding images with {encoder.name}")
    try:
        for start in range(0, len(items), CHUNK):
            part = list(items[start : start + CHUNK])
            vectors = encoder.encode([it.path for it in part], batch_size=batch_size, kind="document")
            col.add(image_documents(part), vectors=vectors, refresh=False)
            if progress is not None:
                progress[0].advance(progress[1], len(part))
    finally:
        if progress is not None:
            progress[0].stop()
    col.refresh()
    return len(items)


def build_image_collection(path: str | Path, encoder: Encoder, items: Sequence[ImageItem], *,
                           spec: IndexSpec | None = None, overwrite: bool = False, batch_size: int = 32,
                           show_progress: bool = False) -> Collection:
    """Create and fill an image collection beside `path`, swapped in only when complete; returns it opened."""
    _check_image_encoder(encoder, str(path))
    if not items:
        raise InputError("no images to build a collection from", where=str(path))
    seen: dict[str, str] = {}
    for it in items:
        if it.id in seen:
            raise InputError(f"duplicate image id {it.id!r}", where=str(it.path))
        seen[it.id] = str(it.path)
    recorded = record_encoder(encoder)
    spec = spec or IndexSpec()
    with build_beside(path, overwrite=overwrite) as tmp:
        FaissStore.init_folder(tmp, recorded["dimension"], spec, facts={ENCODER_KEY: recorded})
        col = Collection(FaissStore(tmp), encoder)
        try:
            add_images(col, items, batch_size=batch_size, show_progress=show_progress)
        finally:
            col.close()
    return Collection.open(path, encoder)


def search_by_image(col: Collection, image: Any, k: int = 10, filter: Filter | None = None) -> list[Hit]:
    """The stored images (or documents) nearest to `image` (a path, bytes, PIL image or data URL), best first."""
    encoder = col.encoder
    _check_image_encoder(encoder, str(getattr(col.store, "folder", "collection")))
    if isinstance(image, str) and not is_data_url(image):
        image = Path(image)  # a path given as text: the CLI and Python callers mean the file
    vector = np.asarray(encoder.encode([image], kind="query"), dtype=np.float32)
    hits = col.store.search(vector, k, filter)[0]
    col.store.attach_content(hits)
    return hits
