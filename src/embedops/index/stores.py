"""Collections in any store, chosen by URL (`index.store`, `--store`): FAISS folders or Milvus / Qdrant collections.

    from embedops.index.stores import build_collection, open_collection
    col = build_collection("milvus://127.0.0.1:19530", "scifact", encoder, documents)
    col = open_collection("qdrant:///data/qdrant", "scifact", loader=encoder_from_spec)

For FAISS (`faiss`), `name` is the collection folder and these are `Collection.create / build / open`. For an
external engine, `name` is the collection's name there, and the `Collection` holds a `MilvusStore` or `QdrantStore`
(the `VectorStore` protocol): searching, filtering, upserting and deleting are the same calls.

A remote build never shows a half-filled collection: it fills a new physical collection `<name>__eo<tag>` and only
then points the name (an alias) at it in one step, dropping the previous one; an error or Ctrl-C drops the new one
instead. A process killed mid-build leaves an unaliased `<name>__eo<tag>` behind; `leftovers(url, name)` lists them
and `remove_leftovers` drops them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config.store_url import StoreURL, StoreURLError, parse_store_url
from embedops.errors import InputError
from embedops.index.base import IndexSpec
from embedops.index.collection import Collection
from embedops.index.identity import ENCODER_KEY, record_encoder
from embedops.index.remote import RemoteStore
from embedops.protocols import Encoder, EncoderLoader

Engine = Any  # MilvusEngine | QdrantEngine (imported lazily: each needs its extra)


def store_url(value: str | StoreURL | None, where: str = "--store") -> StoreURL:
    """A parsed store URL; a malformed one is an InputError naming `where`."""
    if isinstance(value, StoreURL):
        return value
    try:
        return parse_store_url(value)
    except StoreURLError as exc:
        raise InputError(str(exc), where=where) from exc


def connect(url: str | StoreURL) -> Engine:
    """A connection to the engine the URL names (refused for faiss, which has no server)."""
    url = store_url(url)
    if url.engine == "milvus":
        from embedops.index.milvus_store import MilvusEngine

        return MilvusEngine(url)
    if url.engine == "qdrant":
        from embedops.index.qdrant_store import QdrantEngine

        return QdrantEngine(url)
    raise InputError("faiss collections are folders, not a server", where="store")


def physical_name(name: str) -> str:
    """A fresh physical collection name for `name`."""
    return f"{name}__eo{secrets.token_hex(4)}"


def open_store(url: str | StoreURL, name: str) -> RemoteStore:
    """The remote store of collection `name` (an InputError naming it when there is none)."""
    engine = connect(url)
    try:
        return engine.open(engine.check_name(name))
    finally:
        engine.close()  # the store holds its own share of the connection


@contextlib.contextmanager
def filling(url: str | StoreURL, name: str, dimension: int, spec: IndexSpec | None, facts: dict[str, Any], *,
            overwrite: bool = False) -> Iterator[RemoteStore]:
    """A store on a new physical collection for `name`; published (the name moved to it) when the block returns,
    dropped when it raises. The previous collection of that name is dropped after the move."""
    engine = connect(url)
    try:
        engine.check_name(name)
        existing = engine.resolve(name)
        if not overwrite and existing is not None:
            have = int(engine.state(existing)["dimension"])
            what = f" with dimension {have}, not {dimension}" if have != dimension else ""
            raise InputError(f"collection {name!r} exists{what}", where=engine.url.redacted(),
                             hint="choose another name or pass overwrite=True (--overwrite) to replace it once the "
                                  "new one is complete")
        physical = physical_name(name)
        engine.create_physical(physical, dimension, spec or IndexSpec(), facts)
        published = False
        try:
            store = engine.open(name, physical=physical)
            try:
                yield store
            finally:
                store.close()
            old = engine.publish(physical, name, overwrite)
            published = True
        finally:
            if not published:
                with contextlib.suppress(Exception):  # the error that got us here matters more
                    engine.drop_physical(physical)
        if old is not None and old != physical:
            engine.drop_physical(old)
    finally:
        engine.close()


def create_store(url: str | StoreURL, name: str, dimension: int, spec: IndexSpec | None = None, *,
                 facts: dict[str, Any] | None = None, overwrite: bool = False) -> RemoteStore:
    """A new empty remote collection `name` (replacing one only with `overwrite`)."""
    with filling(url, name, dimension, spec, dict(facts or {}), overwrite=overwrite):
        pass
    return open_store(url, name)


def create_collection(url: str | StoreURL, name: str | Path, encoder: Encoder, *, spec: IndexSpec | None = None,
                      overwrite: bool = False) -> Collection:
    """A new empty collection for `encoder` in the store the URL names (a folder for faiss)."""
    url = store_url(url)
    if url.engine == "faiss":
        return Collection.create(name, encoder, spec=spec, overwrite=overwrite)
    recorded = record_encoder(encoder)
    store = create_store(url, str(name), recorded["dimension"], spec, facts={ENCODER_KEY: recorded},
                         overwrite=overwrite)
    return Collection(store, encoder)


def build_collection(url: str | StoreURL, name: str | Path, encoder: Encoder,
                     documents: Iterable[Any], *, vectors: np.ndarray | None = None, spec: IndexSpec | None = None,
                     overwrite: bool = False, batch_size: int = 32, show_progress: bool = False) -> Collection:
    """Create and fill a collection, published whole when complete (see the module docstring); returns it open."""
    url = store_url(url)
    if url.engine == "faiss":
        return Collection.build(name, encoder, documents, vectors=vectors, spec=spec, overwrite=overwrite,
                                batch_size=batch_size, show_progress=show_progress)
    from embedops.data.documents import as_documents

    docs = as_documents(documents)
    if not docs:
        raise InputError("no documents to build a collection from", where=str(name))
    recorded = record_encoder(encoder)
    with filling(url, str(name), recorded["dimension"], spec, {ENCODER_KEY: recorded}, overwrite=overwrite) as store:
        Collection(store, encoder).add(docs, vectors=vectors, batch_size=batch_size, show_progress=show_progress)
    return open_collection(url, name, encoder)


def open_collection(url: str | StoreURL, name: str | Path, encoder: Encoder | None = None, *,
                    loader: EncoderLoader | None = None, read_only: bool = False,
                    **faiss_options: Any) -> Collection:
    """An existing collection; its recorded encoder is checked (or loaded with `loader` when first needed).
    `read_only` refuses writes through this handle."""
    url = store_url(url)
    if url.engine == "faiss":
        return Collection.open(name, encoder, loader=loader, read_only=read_only, **faiss_options)
    store = open_store(url, str(name))
    store.read_only = read_only
    try:
        if encoder is not None:
            given = int(getattr(encoder, "output_dimension", encoder.dimension))
            if given != store.dimension:
                raise InputError(f"collection {str(name)!r} has dimension {store.dimension}; the encoder gives "
                                 f"{given}", where=url.redacted(), hint="open it with the model it was built with")
        return Collection(store, encoder, loader=loader)
    except BaseException:
        store.close()
        raise


def drop_collection(url: str | StoreURL, name: str) -> bool:
    """Delete remote collection `name` (alias and data); False when there was none."""
    engine = connect(url)
    try:
        physical = engine.resolve(engine.check_name(name))
        if physical is None:
            return False
        engine.drop_physical(physical)
        return True
    finally:
        engine.close()


def leftovers(url: str | StoreURL, name: str) -> list[str]:
    """Physical collections of `name` no alias points at (a build or migration killed before its end)."""
    engine = connect(url)
    try:
        return engine.temporaries(engine.check_name(name))
    finally:
        engine.close()


def remove_leftovers(url: str | StoreURL, name: str) -> list[str]:
    """Drop what `leftovers` lists (only when no build of `name` is running anywhere)."""
    engine = connect(url)
    try:
        found = engine.temporaries(engine.check_name(name))
        for physical in found:
            engine.drop_physical(physical)
        return found
    finally:
        engine.close()
