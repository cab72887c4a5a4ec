"""Metadata filters: equality, `in`, and numeric ranges, compiled to SQL over the JSON metadata column.

Syntax (keys are ANDed)::

    {"lang": "en"}                         equality (string, number or boolean)
    {"lang": {"in": ["en", "de"]}}         any of
    {"year": {"gte": 2010, "lt": 2020}}    numeric range (gt, gte, lt, lte)
    {"year": {"eq": 2015}}                 explicit equality

Any metadata key can be filtered on, whatever its characters (dots, quotes, spaces, the empty key): plain keys go
through a quoted JSON path, others through `json_each`, whose keys SQLite compares decoded (its JSON paths compare
a label with the stored, escaped text, so `"` or `\\` in a key could never match there).

A field that no document has matches nothing (an empty result, not an error). A filter whose value type cannot
match the stored values (a range on a text field, a text value for a numeric field) is an error that names the
field, because a silently empty answer would hide the typo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from embedops.errors import InputError

# Keys a quoted JSON path finds: no quote, backslash, control or non-ASCII character (all stored escaped or raw).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:@/ $-]*")
_RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_OPS = {"eq", "in", *_RANGE_OPS}
NUMERIC_TYPES = {"integer", "real"}


@dataclass(frozen=True)
class Condition:
    """One compiled condition on one field: `op` is eq, in, or range (with its bounds)."""

    field: str
    op: str
    values: tuple[Any, ...]
    bounds: tuple[tuple[str, float], ...] = ()

    @property
    def wants(self) -> str:
        """'number', 'text' or 'boolean' (what stored type can match)."""
        if self.op == "range":
            return "number"
        kinds = {_kind(v) for v in self.values}
        return kinds.pop() if len(kinds) == 1 else "mixed"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "text"


def _check_scalar(field: str, value: Any) -> Any:
    if value is None or not isinstance(value, str | int | float | bool):
        raise InputError(f"filter on {field!r}: value {value!r} must be a string, number or boolean",
                         where="filter")
    if isinstance(value, float) and value != value:
        raise InputError(f"filter on {field!r}: NaN cannot be compared", where="filter")
    return value


def parse_filter(spec: dict[str, Any] | None) -> list[Condition]:
    """Validate a filter dict and turn it into conditions; errors name the field and the problem."""
    if not spec:
        return []
    if not isinstance(spec, dict):
        raise InputError(f"a filter must be a JSON object, got {type(spec).__name__}", where="filter")
    out: list[Condition] = []
    for field, cond in spec.items():
        if not isinstance(field, str):
            raise InputError(f"filter field names must be strings, got {type(field).__name__} {field!r}",
                             where="filter")
        if not isinstance(cond, dict):
            out.append(Condition(field, "eq", (_check_scalar(field, cond),)))
            continue
        unknown = set(cond) - _OPS
        if unknown or not cond:
            raise InputError(f"filter on {field!r}: unknown operator(s) {sorted(unknown) or '{}'}; "
                             f"use eq, in, gt, gte, lt, lte", where="filter")
        if "eq" in cond:
            if len(cond) > 1:
                raise InputError(f"filter on {field!r}: 'eq' cannot be combined with other operators",
                                 where="filter")
            out.append(Condition(field, "eq", (_check_scalar(field, cond["eq"]),)))
        elif "in" in cond:
            if len(cond) > 1:
                raise InputError(f"filter on {field!r}: 'in' cannot be combined with other operators",
                                 where="filter")
            values = cond["in"]
            if not isinstance(values, list | tuple) or not values:
                raise InputError(f"filter on {field!r}: 'in' needs a non-empty list", where="filter")
            out.append(Condition(field, "in", tuple(_check_scalar(field, v) for v in values)))
        else:
            bounds = []
            for op, value in cond.items():
                if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                    raise InputError(f"filter on {field!r}: range operator {op!r} needs a number, got "
                                     f"{type(value).__name__} {value!r}", where="filter")
                bounds.append((op, float(value)))
            out.append(Condition(field, "range", (), tuple(bounds)))
    return out


def json_path(field: str) -> str:
    """SQLite JSON path for a plain top-level key (quoted so dots and dashes are literal)."""
    return f'$."{field}"'


def is_plain(field: str) -> bool:
    """Whether a quoted JSON path addresses `field` (else it is looked up with json_each)."""
    return _PLAIN_KEY.fullmatch(field) is not None


def field_types_sql(field: str, column: str = "meta") -> tuple[str, list[Any]]:
    """A query for the distinct JSON types `field` takes among live rows."""
    if is_plain(field):
        return f"SELECT DISTINCT json_type({column}, ?) FROM docs WHERE deleted = 0", [json_path(field)]
    return (f"SELECT DISTINCT je.type FROM docs, json_each(docs.{column}) AS je WHERE docs.deleted = 0 "
            f"AND je.key = ?", [field])


def check_types(conditions: list[Condition], stored: dict[str, set[str]]) -> None:
    """Refuse a condition whose value type no stored value of that field has (fields absent are fine)."""
    for c in conditions:
        types = stored.get(c.field, set())
        if not types:
            continue  # no document has the field: the result is simply empty
        kinds = {"number" if t in NUMERIC_TYPES else "boolean" if t in ("true", "false") else t for t in types}
        wants = c.wants
        ok = wants == "mixed" or wants in kinds
        if not ok:
            shown = ", ".join(sorted(kinds))
            raise InputError(f"filter on {c.field!r} compares with a {wants} value but the stored values are "
                             f"{shown}", where="filter", hint="check the value's type (e.g. 2020 vs \"2020\")")


def to_sql(conditions: list[Condition], column: str = "meta") -> tuple[str, list[Any]]:
    """A WHERE fragment (ANDed) and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for c in conditions:
        if is_plain(c.field):
            path = json_path(c.field)
            sql, values = _condition(c, f"json_type({column}, ?)", f"json_extract({column}, ?)", [path])
        else:
            # The key as a parameter, compared decoded: the same test on the matching json_each row.
            sql, values = _condition(c, "je.type", "je.value", [])
            sql = f"EXISTS (SELECT 1 FROM json_each({column}) AS je WHERE je.key = ? AND {sql})"
            values = [c.field, *values]
        parts.append(sql)
        params.extend(values)
    return " AND ".join(parts) or "1", params


def _condition(c: Condition, type_expr: str, value_expr: str, key: list[Any]) -> tuple[str, list[Any]]:
    """One condition over a type and a value expression; `key` is the parameter each expression takes."""
    params: list[Any] = []
    if c.op == "range":
        # Only numbers take part in a range: SQLite would otherwise order text after all numbers.
        sub = [f"{type_expr} IN ('integer', 'real')"]
        params.extend(key)
        for op, value in c.bounds:
            sub.append(f"{value_expr} {_RANGE_OPS[op]} ?")
            params.extend([*key, value])
        return "(" + " AND ".join(sub) + ")", params
    ors = []
    for v in c.values:
        if isinstance(v, bool):
            # JSON true/false come back from json_extract as 1/0; compare the JSON type too.
            ors.append(f"{type_expr} = ?")
            params.extend([*key, "true" if v else "false"])
        elif isinstance(v, int | float):
            ors.append(f"({type_expr} IN ('integer', 'real') AND {value_expr} = ?)")
            params.extend([*key, *key, v])
        else:
            ors.append(f"({type_expr} = 'text' AND {value_expr} = ?)")
            params.extend([*key, *key, v])
    return "(" + " OR ".join(ors) + ")", params
