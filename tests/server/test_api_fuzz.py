"""Property-based API tests from the OpenAPI spec (schemathesis): any request the spec allows, or nearly allows,
gets an answer below 500 (malformed ones a 4xx with the JSON error body)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import mlkeep
from mlkeep.server import create_app

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

STORE = mlkeep.open("memory://")


def _populate() -> None:
    """Something for the generated ids to hit or miss: a run with metrics, a repository, a registered model."""
    import numpy as np

    with STORE.start_run("fuzz", "r") as run:
        run.log_params({"a": 1})
        for step in range(20):
            run.log_metric("loss", 1 / (step + 1), step=step)
    STORE.repo("net").commit({"w": np.ones((3, 3), dtype=np.float32)}, "init")
    STORE.registry.register("net", "net@main")


_populate()
# Routers of other packages (MLflow compatibility, monitoring) are fuzzed by their own tests.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(STORE)).exclude(
    path_regex=r"^/(api/2\.0|ajax-api|api/monitoring)/")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_spec_allows_gets_a_server_error(case: Any) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}
