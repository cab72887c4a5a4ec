"""The OpenAPI schema fuzzed with schemathesis against the real server: no 5xx, responses match the schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from .conftest import KEYS  # noqa: E402

MAX_EXAMPLES = 15  # per operation: bounded for CI; raise it in a benchmark run


@pytest.fixture(scope="module")
def schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_fuzz_the_api(server, schema):
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    failures: list[str] = []
    calls: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            calls.append(1)
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {KEYS[0]}"}, timeout=60)
            try:
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                         response_schema_conformance])
            except Exception as exc:  # noqa: BLE001 - collected and reported together
                failures.append(f"{case.method} {case.path}: {exc}")

        run()
    assert len(calls) >= 5 * 10  # every operation was exercised (writes too: only under the server's root)
    assert not failures, "\n".join(failures[:10])
