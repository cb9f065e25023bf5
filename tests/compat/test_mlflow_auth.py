"""The MLflow API under `mlkeep server --auth`: tokens checked as on mlkeep's own API, errors in MLflow's format."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mlkeep import access
from mlkeep.server import create_app
from mlkeep.store import Store

SEARCH = "/api/2.0/mlflow/experiments/search"
CREATE = "/api/2.0/mlflow/experiments/create"


def test_tokens_guard_the_mlflow_api(store: Store) -> None:
    store.create_experiment("mine")
    read = access.create_token(store, "read")[1]
    write = access.create_token(store, "write")[1]
    scoped = access.create_token(store, "write", experiment="mine")[1]
    with TestClient(create_app(store, auth=True), raise_server_exceptions=False) as api:
        anonymous = api.post(SEARCH, json={})
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
        assert api.post(SEARCH, json={}, headers={"Authorization": f"Bearer {read}"}).status_code == 200
        refused = api.post(CREATE, json={"name": "x"}, headers={"Authorization": f"Bearer {read}"})
        assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
        assert api.post(CREATE, json={"name": "x"}, headers={"Authorization": f"Bearer {scoped}"}).status_code == 403
        made = api.post(CREATE, json={"name": "x"}, headers={"Authorization": f"Bearer {write}"})
        assert made.status_code == 200 and store.get_experiment("x").id == made.json()["experiment_id"]
        # mlkeep's own API is still answered by mlkeep's app, in its own format
        assert api.get("/api/experiments").json()["error"]["code"] == "UNAUTHENTICATED"
        assert api.get("/api/2.0/mlflowish").status_code == 404
