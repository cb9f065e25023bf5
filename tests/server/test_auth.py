"""Access control: tokens stored as hashes, 401 without one, 403 beyond its role or scope, nothing changes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlkeep import access, errors
from mlkeep.client import RemoteStore
from mlkeep.store import Store

X64 = "0" * 64


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def world(store: Store) -> dict[str, str]:
    """Two experiments with a run each, and a token of every kind."""
    with store.start_run("mine", "a") as a:
        a.log_metric("acc", 0.9)
        a.log_param("p", 1)
    with store.start_run("theirs", "b") as b:
        b.log_metric("acc", 0.5)
    open_run = store.start_run("mine", "open")
    ids = {"a": a.id, "b": b.id, "open": open_run.id}
    for role in access.ROLES:
        ids[role] = access.create_token(store, role)[1]
    ids["scoped"] = access.create_token(store, "write", experiment="mine")[1]
    store.repo("net").commit({"w": np.ones((4, 4), dtype=np.float32)}, "init")
    store.registry.register("net", "net@main")
    store.registry.set_alias("net", "staging", 1)
    store.set_experiment_tags("mine", {"team": "a"})
    return ids


def snapshot(store: Store) -> object:
    runs = store.search_runs("")
    registry = [(m, store.registry.versions(m.name), store.registry.history(m.name))
                for m in store.registry.list_models()]
    return sorted((r.id, r.status, r.params, r.tags, {k: m.count for k, m in r.metrics.items()}) for r in runs), \
        [(e.name, e.tags) for e in store.list_experiments()], [(t.id, t.revoked_time) for t in access.list_tokens(store)], \
        registry, {name: store.repo(name).branches() for name in store.repositories()}


def safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    return save({"w": np.zeros((4, 4), dtype=np.float32)})


WRITES = [
    ("POST", "/api/experiments", {"json": {"name": "new"}}),
    ("PATCH", "/api/experiments/mine/tags", {"json": {"values": {"team": "b"}}}),
    ("DELETE", "/api/experiments/mine/tags/team", {}),
    ("POST", "/api/runs", {"json": {"experiment": "mine"}}),
    ("POST", "/api/runs/{open}/params", {"json": {"values": {"x": 1}}}),
    ("POST", "/api/runs/{open}/tags", {"json": {"values": {"x": "1"}}}),
    ("POST", "/api/runs/{open}/metrics", {"json": {"points": [["x", 1.0, 0, 0]]}}),
    ("POST", "/api/runs/{open}/end", {"json": {}}),
    ("PUT", "/api/runs/{open}/artifacts/f.txt", {"content": b"hello"}),
    ("PUT", "/api/objects", {"content": b"blob"}),
    ("POST", "/api/runs/{open}/datasets", {"json": {"dataset_id": "x"}}),
    ("POST", "/api/runs/{open}/models", {"json": {"model": {}}}),
    ("POST", "/api/runs/{open}/predictions", {"json": {"model_id": "m", "dataset_id": "d", "object": X64}}),
    ("POST", "/api/runs/{open}/evaluations", {"json": {"model_id": "m", "dataset_id": "d", "scores": {}}}),
    ("POST", "/api/tokens", {"json": {"role": "admin"}}),
    ("DELETE", "/api/tokens/{write_id}", {}),
    ("POST", "/api/registry/models/net/versions", {"json": {"source": "net@main"}}),
    ("PATCH", "/api/registry/models/net", {"json": {"description": "changed"}}),
    ("PATCH", "/api/registry/models/net/versions/1", {"json": {"description": "changed"}}),
    ("PUT", "/api/registry/models/net/aliases/production", {"json": {"version": 1}}),
    ("DELETE", "/api/registry/models/net/aliases/staging", {}),
    ("PUT", "/api/repositories/net/commits", {"content": safetensors_bytes()}),
]
READS_BY_POST = {("POST", "/api/runs/get"), ("POST", "/api/search/runs")}  # a body too long for a URL; no change
OWN = {"experiments", "runs", "artifacts", "search", "entities", "lineage", "repositories", "registry",
       "intermediates", "tokens"}  # the routers of this package (others test their own)


def test_the_write_list_covers_every_write_route(store: Store) -> None:
    """Read from the OpenAPI document: FastAPI no longer lists included routers' routes in `app.routes`."""
    from starlette.routing import compile_path

    from mlkeep.server import create_app

    paths = create_app(store).openapi()["paths"]
    writes = {(method.upper(), path) for path, ops in paths.items() for method, op in ops.items()
              if method not in ("get", "head") and set(op.get("tags", ())) & OWN}
    assert ("PATCH", "/api/experiments/{name_or_id}/tags") in writes  # the document is read, not empty
    covered = set()
    for method, path, _ in WRITES:
        url = path.format(open="x", write_id="x")
        covered |= {(m, p) for m, p in writes if m == method and compile_path(p)[0].match(url)}
    assert writes - covered == READS_BY_POST


def test_reads_by_post_are_reads(auth_api: TestClient, world: dict[str, str]) -> None:
    read = bearer(world["read"])
    assert auth_api.post("/api/search/runs", json={"filter": ""}, headers=read).json()["total"] == 3
    assert [r["id"] for r in auth_api.post("/api/runs/get", json={"ids": [world["a"]]}, headers=read).json()] == \
        [world["a"]]


@pytest.mark.parametrize("method,path,kwargs", WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_every_write_route_refuses_a_missing_or_read_token_and_changes_nothing(
    auth_api: TestClient, store: Store, world: dict[str, str], method: str, path: str, kwargs: dict
) -> None:
    write_id = next(t.id for t in access.list_tokens(store) if t.role == "write" and not t.experiment_id)
    url = path.format(**world, write_id=write_id)
    before = snapshot(store)
    for headers, status, code in [({}, 401, "UNAUTHENTICATED"), (bearer("mlk_wrong"), 401, "UNAUTHENTICATED"),
                                  (bearer(world["read"]), 403, "PERMISSION_DENIED")]:
        r = auth_api.request(method, url, headers=headers, **kwargs)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert snapshot(store) == before
    if path.startswith("/api/tokens"):
        r = auth_api.request(method, url, headers=bearer(world["write"]), **kwargs)
        assert r.status_code == 403 and snapshot(store) == before


def test_a_scoped_token_sees_and_writes_only_its_experiment(auth_api: TestClient, store: Store,
                                                           world: dict[str, str]) -> None:
    h = bearer(world["scoped"])
    page = auth_api.get("/api/search/runs", headers=h).json()
    assert {r["experiment"] for r in page["runs"]} == {"mine"}
    assert page["total"] == len(page["runs"])  # the count sees only its experiment too
    assert [e["name"] for e in auth_api.get("/api/experiments", headers=h).json()] == ["mine"]
    assert auth_api.get(f"/api/runs/{world['b']}", headers=h).status_code == 403
    assert auth_api.get(f"/api/runs/{world['a']}", headers=h).status_code == 200
    assert auth_api.get("/api/search/runs", params={"experiments": "theirs"}, headers=h).status_code == 403
    assert auth_api.post("/api/runs", json={"experiment": "theirs"}, headers=h).status_code == 403
    assert auth_api.post("/api/runs", json={"experiment": "mine"}, headers=h).status_code == 201
    assert auth_api.get(f"/api/runs/{world['b']}/metrics/acc/history", headers=h).status_code == 403
    assert auth_api.get("/api/repositories", headers=h).status_code == 403
    assert auth_api.get("/api/tokens", headers=h).status_code == 403
    assert auth_api.get("/api/registry/models", headers=h).status_code == 403
    assert auth_api.get("/api/intermediates", headers=h).status_code == 403


def test_roles_allow_what_they_name(auth_api: TestClient, world: dict[str, str]) -> None:
    assert auth_api.get("/api/search/runs", headers=bearer(world["read"])).status_code == 200
    r = auth_api.post(f"/api/runs/{world['open']}/metrics", headers=bearer(world["write"]),
                      json={"points": [["x", 1.0, 0, 0]]})
    assert r.status_code == 204
    made = auth_api.post("/api/tokens", json={"role": "read"}, headers=bearer(world["admin"]))
    assert made.status_code == 201 and made.json()["secret"].startswith("mlk_")
    assert auth_api.get("/api/health").status_code == 200  # the health check needs no token


def test_tokens_are_stored_only_as_hashes_and_revocation_is_immediate(store: Store, auth_api: TestClient) -> None:
    token, secret = access.create_token(store, "read")
    from mlkeep.metadata.tables import tokens

    with store.db.connect() as conn:
        rows = [tuple(r) for r in conn.execute(tokens.select()).all()]
    assert not any(secret in str(v) for row in rows for v in row)
    assert any(hashlib.sha256(secret.encode()).hexdigest() in row for row in rows)
    assert auth_api.get("/api/experiments", headers=bearer(secret)).status_code == 200
    access.revoke_token(store, token.id[:10])
    assert auth_api.get("/api/experiments", headers=bearer(secret)).status_code == 401


def test_the_remote_store_sends_its_token_and_raises_the_access_errors(store: Store, world: dict[str, str]) -> None:
    from mlkeep.server import create_app

    app = create_app(store, auth=True)
    with RemoteStore("http://testserver", token=world["read"], client=TestClient(app)) as r:
        assert r.get_run(world["a"]).name == "a"
        with pytest.raises(errors.PermissionDeniedError):
            r.start_run("mine")
    with RemoteStore("http://testserver", client=TestClient(app)) as anonymous:
        with pytest.raises(errors.AuthenticationError):
            anonymous.list_experiments()


def test_token_cli_prints_the_secret_once_on_its_last_line(folder_store: Store) -> None:
    from typer.testing import CliRunner

    from mlkeep.cli import app

    uri = str(folder_store.location.root) if hasattr(folder_store.location, "root") else folder_store.uri
    folder_store.create_experiment("mine")
    runner = CliRunner()
    out = runner.invoke(app, ["--store", uri, "token", "create", "--role", "write", "--experiment", "mine"])
    assert out.exit_code == 0, out.output
    secret = out.stdout.strip().splitlines()[-1]
    assert secret.startswith("mlk_")
    assert access.verify_token(folder_store, secret).experiment_id == folder_store.get_experiment("mine").id
    listed = runner.invoke(app, ["--store", uri, "token", "list", "--json"])
    assert secret not in listed.stdout and '"role": "write"' in listed.stdout
    token_id = access.list_tokens(folder_store)[0].id
    assert runner.invoke(app, ["--store", uri, "token", "revoke", token_id[:8]]).exit_code == 0
    with pytest.raises(errors.AuthenticationError):
        access.verify_token(folder_store, secret)
    bad = runner.invoke(app, ["--store", uri, "token", "create", "--role", "root"])
    assert bad.exit_code == 1 and "error:" in bad.output
