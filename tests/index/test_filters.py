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
    ({1: 1}, "field names must be strings"),
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



ODD_KEYS = ["", "a.b", 'q"uote', "back\\slash", "sp ace", "ünï", "tab\there", "$x", "br[0]", "it's", "*", "."]


def test_any_metadata_key_can_be_filtered_on(tmp_path):
    # Issue 9: keys with quotes (and the empty key, which prepare dropped) were ingested but never matched.
    import numpy as np

    from embedops.index import FaissStore, IndexSpec

    store = FaissStore.create(tmp_path / "c", 8, IndexSpec(kind="flat"))
    metas = [{key: (i + j) % 3 for j, key in enumerate(ODD_KEYS)} | {"s": f"v{i % 2}"} for i in range(12)]
    vecs = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)
    store.upsert([f"d{i}" for i in range(12)], vecs, metas)
    for key in ODD_KEYS:
        for flt in ({key: 1}, {key: {"in": [0, 2]}}, {key: {"gte": 1}, "s": "v1"}):
            want = {f"d{i}" for i, m in enumerate(metas) if _passes(m, flt)}
            got = {h.id for h in store.search(vecs[:1], 12, flt)[0]}
            assert got == want, (key, flt)
    with pytest.raises(InputError, match="'q\"uote'.*stored values are number"):
        store.search(vecs[:1], 3, {'q"uote': "text"})
    store.close()


def _passes(meta, flt):
    for key, cond in flt.items():
        v = meta.get(key)
        if isinstance(cond, dict) and "in" in cond:
            ok = v in cond["in"]
        elif isinstance(cond, dict):
            ok = v is not None and v >= cond["gte"]
        else:
            ok = v == cond
        if not ok:
            return False
    return True
