"""Fixtures for the models tests: one ONNX export per test session, in the session's temporary cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def onnx_encoder():
    """The bundled model through the onnx backend (fp32); exported once into the hermetic cache."""
    from embedops.models import load_encoder

    return load_encoder(backend="onnx", threads=2)


@pytest.fixture(scope="session")
def sts_test(shared_data):
    """STS Benchmark test pairs."""
    from embedops.data import load_sts

    return load_sts(shared_data / "stsbenchmark", "test")
