"""IndexSpec validation and its mapping from the project file's index section."""

import pytest

from embedops.config.schema import IndexConfig
from embedops.errors import InputError
from embedops.index import IndexSpec, spec_from_config


def test_index_spec_refuses_typos():
    with pytest.raises(InputError, match="unknown index kind 'hnws'"):
        IndexSpec(kind="hnws")
    with pytest.raises(InputError, match="ef_search must be a positive integer"):
        IndexSpec(ef_search=0)


def test_spec_from_config():
    spec = spec_from_config(IndexConfig(kind="hnsw", vectors="int8", ef_search=64))
    assert (spec.kind, spec.vectors, spec.ef_search, spec.rescore_oversample) == ("hnsw", "int8", 64, 4)
