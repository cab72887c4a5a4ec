"""The filter language of embedops.index.filters, translated to a Milvus boolean expression or a Qdrant filter.

Both translations keep the FAISS store's semantics, checked by the shared contract tests (tests/index/
test_store_contract.py): equality of strings, numbers (2015 equals 2015.0) and booleans, where a number never equals
a boolean or a string; `in` is any of the values; a range matches numbers only. What an engine cannot express
exactly is refused with an error naming the field, never answered differently:

- Milvus: metadata keys that are empty or hold `"`, `\\` or control characters (its expression parser takes JSON
  keys literally); infinite range bounds.
- Qdrant: keys holding `"` (a quoted JSON path cannot carry one); fields whose stored values include lists or
  objects (Qdrant matches a list when any element matches, the FAISS store never does); infinite range bounds.
"""

from __future__ import annotations

import json
import math
from typing import Any

from embedops.errors import InputError
from embedops.index.filters import Condition

_MILVUS_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_EXACT_FLOAT = 2**53  # integers beyond this are not exact as floats: compare them as integers


def _refuse(field: str, engine: str, why: str) -> InputError:
    return InputError(f"filter on {field!r} cannot be sent to {engine}: {why}", where="filter",
                      hint="the FAISS store (index.store: faiss) takes it")


def _check_bounds(c: Condition, engine: str) -> None:
    for op, value in c.bounds:
        if math.isinf(value):
            raise _refuse(c.field, engine, f"{op} {value} is not a finite number")


# -- Milvus --------------------------------------------------------------------------------------------------------
def milvus_key(field: str) -> str:
    """`meta["field"]`, or an error when Milvus cannot address the key."""
    if not field or any(ch in field for ch in '"\\') or any(ord(ch) < 32 for ch in field):
        raise _refuse(field, "Milvus", "its JSON keys cannot be empty or hold quotes, backslashes or control "
                                       "characters")
    return f'meta["{field}"]'


def milvus_literal(value: Any) -> str:
    """A value as a Milvus expression literal (strings JSON-escaped, which its parser reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def check_milvus(conditions: list[Condition]) -> None:
    """Refuse what a Milvus expression cannot say exactly."""
    for c in conditions:
        milvus_key(c.field)
        _check_bounds(c, "Milvus")


def milvus_expr(conditions: list[Condition]) -> str:
    """The conditions ANDed as one Milvus boolean expression ('' for none)."""
    parts = []
    for c in conditions:
        key = milvus_key(c.field)
        if c.op == "range":
            parts.append("(" + " and ".join(f"{key} {_MILVUS_OPS[op]} {milvus_literal(v)}" for op, v in c.bounds)
                         + ")")
        else:
            # ORed equalities, not `in [...]`: Milvus 2.3 fails an `in` list that mixes value types.
            parts.append("(" + " or ".join(f"{key} == {milvus_literal(v)}" for v in c.values) + ")")
    return " and ".join(parts)


def milvus_ids(ids: list[str]) -> str:
    """`id in [...]` with each id JSON-escaped (pymilvus's own helper does not escape quotes)."""
    return "id in [" + ", ".join(json.dumps(i, ensure_ascii=False) for i in ids) + "]"


# -- Qdrant --------------------------------------------------------------------------------------------------------
def qdrant_key(field: str) -> str:
    """The quoted payload path of a metadata key, or an error when Qdrant cannot address it."""
    if '"' in field:
        raise _refuse(field, "Qdrant", "a quoted JSON path cannot hold a double quote")
    return f'meta."{field}"'


def check_qdrant(conditions: list[Condition], types: dict[str, frozenset[str]]) -> None:
    """Refuse what a Qdrant filter cannot say exactly (see the module docstring)."""
    for c in conditions:
        qdrant_key(c.field)
        _check_bounds(c, "Qdrant")
        nested = types.get(c.field, frozenset()) & {"array", "object"}
        if nested:
            raise _refuse(c.field, "Qdrant", f"some stored values are {' and '.join(sorted(nested))}s, which "
                                             "Qdrant matches element by element")


def qdrant_filter(conditions: list[Condition]) -> Any:
    """A qdrant_client `Filter` with every condition in `must` (None for no conditions)."""
    from qdrant_client import models

    if not conditions:
        return None
    must: list[Any] = []
    for c in conditions:
        key = qdrant_key(c.field)
        if c.op == "range":
            must.append(models.FieldCondition(key=key, range=models.Range(**{op: v for op, v in c.bounds})))
            continue
        options = [_qdrant_equal(key, v) for v in c.values]
        must.append(options[0] if len(options) == 1 else models.Filter(should=options))
    return models.Filter(must=must)


def _qdrant_equal(key: str, value: Any) -> Any:
    from qdrant_client import models

    if isinstance(value, bool) or isinstance(value, str):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    if isinstance(value, int) and abs(value) > _EXACT_FLOAT:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    # A range [v, v] matches an integer or a float payload alike (2015 == 2015.0), and never a boolean.
    return models.FieldCondition(key=key, range=models.Range(gte=float(value), lte=float(value)))
