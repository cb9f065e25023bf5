"""Experiment tags through the REST API and `RemoteStore`: the same answers as the local Store."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlkeep import access, errors
from mlkeep.client import RemoteStore
from mlkeep.store import Store


@pytest.fixture(params=["local", "remote"])
def any_store(request: pytest.FixtureRequest, store: Store) -> Any:
    return store if request.param == "local" else request.getfixturevalue("remote")


def test_experiment_tags_behave_alike_locally_and_remotely(any_store: Store | RemoteStore) -> None:
    made = any_store.create_experiment("remote-tags", "about it", tags={"team": "a", "path/key": "x"})
    assert made.tags == {"team": "a", "path/key": "x"} and made.description == "about it"
    assert any_store.set_experiment_tags(made.id, {"team": "b"}).tags == {"team": "b", "path/key": "x"}
    any_store.delete_experiment_tag("remote-tags", "path/key")
    assert any_store.get_experiment("remote-tags").tags == {"team": "b"}
    assert [e.tags for e in any_store.list_experiments() if e.name == "remote-tags"] == [{"team": "b"}]
    with pytest.raises(errors.NotFoundError):
        any_store.delete_experiment_tag("remote-tags", "path/key")
    with pytest.raises(errors.InvalidInputError):
        any_store.set_experiment_tags("remote-tags", {"": "empty key"})


def test_a_scoped_token_tags_only_its_own_experiment(auth_api: TestClient, store: Store) -> None:
    mine, theirs = store.create_experiment("mine"), store.create_experiment("theirs")
    scoped = access.create_token(store, "write", experiment="mine")[1]
    headers = {"Authorization": f"Bearer {scoped}"}
    ok = auth_api.patch(f"/api/experiments/{mine.id}/tags", json={"values": {"k": "v"}}, headers=headers)
    assert ok.status_code == 200 and ok.json()["tags"] == {"k": "v"}
    refused = auth_api.patch(f"/api/experiments/{theirs.id}/tags", json={"values": {"k": "v"}}, headers=headers)
    assert refused.status_code == 403 and store.get_experiment("theirs").tags == {}
    assert auth_api.delete(f"/api/experiments/{theirs.id}/tags/k", headers=headers).status_code == 403
    assert auth_api.delete(f"/api/experiments/{mine.id}/tags/k", headers=headers).status_code == 204
