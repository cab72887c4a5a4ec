"""Filter parsing and type checks."""

import pytest

from embedops.errors import InputError
from embedops.index.filters import check_types, parse_filter, to_sql


def test_parse_shapes():
    conds = parse_filter({"lang": "en", "tag": {"in": ["a", "b"]}, "year": {"gte": 2010, "lt": 2020}})
    assert [(c.field, c.op) for c in conds] == [("lang", "eq"), ("tag", "in"), ("year", "range")]
    assert conds[2].bounds == (("gte", 2010.0), ("lt", 2020.0))
    where, params = to_sql(conds)
    assert where.count("AND") >= 3 and len(params) > 5


@pytest.mark.parametrize("bad, words", [
    ({"year": {"gte": "2010"}}, "needs a number"),
    ({"year": {"between": [1, 2]}}, "unknown operator"),
    ({"tag": {"in": []}}, "non-empty list"),
    ({"tag": {"in": "abc"}}, "non-empty list"),
    ({"tag": None}, "must be a string"),
    ({"ta'g": 1}, "invalid filter field"),
    ({"x": {"eq": 1, "gt": 0}}, "cannot be combined"),
])
def test_bad_filters_name_the_field(bad, words):
    with pytest.raises(InputError, match=words):
        parse_filter(bad)


def test_type_mismatch_against_stored_values():
    conds = parse_filter({"year": {"gte": 2000}})
    with pytest.raises(InputError, match="'year'.*stored values are text"):
        check_types(conds, {"year": {"text"}})
    check_types(conds, {"year": {"integer", "text"}})  # some numbers: fine
    check_types(conds, {"year": set()})  # field absent: fine (empty result)
    with pytest.raises(InputError, match="'lang'"):
        check_types(parse_filter({"lang": 3}), {"lang": {"text"}})

