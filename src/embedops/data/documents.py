"""One way to turn an input row into a `Document`, shared by every entry point.

A JSONL/CSV/Parquet line, a BEIR corpus record, a dict or string given to `Collection.add` (and, later, an HTTP
body) all pass through `document_from_row` / `as_documents`, so ids and metadata mean the same everywhere:

- id: the `id_field` when given, else the first of `ID_FIELDS` present in the row. A null, empty, boolean or
  non-scalar id is an error naming the row. A row with no id field gets a *content id*: 16 hex digits of the
  SHA-256 of its title and text (`content_id`). The same text always gets the same id, so adding it twice is
  idempotent, and two different texts never replace each other (positions as ids did exactly that).
- text: the `text_field` when given, else the first of `TEXT_FIELDS` holding a value; it must be a string.
- title: the `title_field` ("title") when present; it must be a string (null means none).
- metadata: the row's `metadata` object plus every other top-level key, so nothing in a row is dropped. A key in
  both places with different values is an error, as is a non-string key or a value JSON cannot store exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from embedops.data.records import Document
from embedops.errors import InputError

TEXT_FIELDS = ("text", "body", "content", "sentence", "abstract")
ID_FIELDS = ("_id", "id", "doc_id", "docid")
METADATA_FIELD = "metadata"


def content_id(text: str, title: str = "") -> str:
    """The id of a document given without one: derived from its title and text only, so it is stable."""
    payload = json.dumps([title, text], ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.sha256(payload).hexdigest()[:16]


def is_content_id(doc: Document) -> bool:
    """Whether the document's id is the one `content_id` derives (it was given without an id)."""
    return doc.id == content_id(doc.text, doc.title)


def check_id(value: Any, where: str) -> str:
    """A document id as stored: a non-empty string (integers are written in decimal); anything else is refused."""
    if value is None:
        raise InputError("the id is null; give every document a string id (or leave the id field out to "
                         "derive one from the text)", where=where)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"the id must be a string or an integer, got {type(value).__name__} {value!r}",
                         where=where)
    text = str(value)
    if not text.strip():
        raise InputError("the id is empty", where=where)
    return text


def check_metadata(meta: Any, where: str) -> dict[str, Any]:
    """Metadata as stored: a dict with string keys and values JSON keeps exactly (no NaN or infinity)."""
    if not isinstance(meta, Mapping):
        raise InputError(f"metadata must be an object (a dict), got {type(meta).__name__}", where=where)
    for key in meta:
        if not isinstance(key, str):
            raise InputError(f"metadata keys must be strings, got {type(key).__name__} {key!r}", where=where)
    try:
        json.dumps(meta, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"metadata cannot be stored as JSON: {exc}", where=where) from exc
    return dict(meta)


def _text_key(row: Mapping[str, Any], text_field: str | None) -> str | None:
    if text_field:
        return text_field if text_field in row else None
    return next((name for name in TEXT_FIELDS if row.get(name) is not None), None)


def _id_key(row: Mapping[str, Any], id_field: str | None, where: str) -> str | None:
    if id_field:
        if id_field not in row:
            raise InputError(f"missing id field {id_field!r}", where=where)
        return id_field
    return next((name for name in ID_FIELDS if name in row), None)


def document_from_row(row: Mapping[str, Any], where: str, *, text_field: str | None = None,
                      id_field: str | None = None, title_field: str | None = "title",
                      allow_empty: bool = False) -> Document:
    """The Document a row describes, by the rules in this module's docstring; errors name `where`."""
    if not isinstance(row, Mapping):
        raise InputError(f"a document must be an object, got {type(row).__name__}", where=where)
    text_key = _text_key(row, text_field)
    if text_key is None:
        raise InputError(f"missing text field ({text_field or ' / '.join(TEXT_FIELDS)})", where=where)
    text = row[text_key]
    if not isinstance(text, str):
        raise InputError(f"text field {text_key!r} is {type(text).__name__}, expected a string", where=where)
    title_key = title_field if title_field and title_field in row and title_field != text_key else None
    title = row[title_key] if title_key else None
    if title is not None and not isinstance(title, str):
        raise InputError(f"title field {title_key!r} is {type(title).__name__}, expected a string", where=where)
    title = title or ""
    if not allow_empty and not (text.strip() or title.strip()):
        raise InputError("empty or whitespace-only text", where=where)
    id_key = _id_key(row, id_field, where)
    doc_id = content_id(text, title) if id_key is None else check_id(row[id_key], where)
    nested = row.get(METADATA_FIELD)
    meta = {} if nested is None else check_metadata(nested, f"{where}: field {METADATA_FIELD!r}")
    used = {text_key, id_key, title_key, METADATA_FIELD}
    for key, value in row.items():
        if key in used:
            continue
        if not isinstance(key, str):
            raise InputError(f"field names must be strings, got {type(key).__name__} {key!r}", where=where)
        if key in meta and not _same(meta[key], value):
            raise InputError(f"field {key!r} is both a top-level field ({value!r}) and in {METADATA_FIELD!r} "
                             f"({meta[key]!r})", where=where, hint="keep one of them")
        meta[key] = value
    return Document(id=doc_id, text=text, title=title, metadata=check_metadata(meta, where), source=where)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


def check_document(doc: Document, where: str) -> Document:
    """A Document built in Python, held to the same rules as a row (string id, string text, clean metadata)."""
    where = doc.source or where
    doc_id = check_id(doc.id, where)
    if not isinstance(doc.text, str):
        raise InputError(f"text is {type(doc.text).__name__}, expected a string", where=where)
    if not isinstance(doc.title or "", str):
        raise InputError(f"title is {type(doc.title).__name__}, expected a string", where=where)
    meta = check_metadata(doc.metadata if doc.metadata is not None else {}, where)
    if doc_id == doc.id and meta == doc.metadata and doc.source:
        return doc
    return Document(id=doc_id, text=doc.text, title=doc.title or "", metadata=meta, source=where)


def as_documents(items: Iterable[Document | Mapping[str, Any] | str]) -> list[Document]:
    """Documents from Documents, dicts (read like a file's rows) or plain strings (content ids)."""
    if isinstance(items, str | bytes | Mapping):
        raise InputError("documents must be a list (of Documents, dicts or strings), got a single "
                         f"{type(items).__name__}", hint="wrap it in a list")
    docs: list[Document] = []
    for i, item in enumerate(items):
        where = f"document {i}"
        if isinstance(item, Document):
            docs.append(check_document(item, where))
        elif isinstance(item, str):
            docs.append(Document(id=content_id(item), text=item, source=where))
        elif isinstance(item, Mapping):
            docs.append(document_from_row(item, where, allow_empty=True))
        else:
            raise InputError(f"a document must be a Document, dict or str, got {type(item).__name__}", where=where)
    return docs


def duplicate_message(doc: Document, first: str) -> str:
    """Error text for a second document with an id already seen (says when the id came from the content)."""
    if is_content_id(doc):
        return (f"duplicate id {doc.id!r}: this document and the one at {first} have the same text and no id, "
                "so both get the same content id")
    return f"duplicate id {doc.id!r} (also at {first})"
