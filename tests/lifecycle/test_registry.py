"""Registry: versions from logged models and commits, aliases moved by compare-and-swap, history, URIs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import mlkeep
from mlkeep.errors import ConflictError, FilterSyntaxError, InvalidInputError, NotFoundError


def test_register_numbers_versions_and_links_lineage(iris_models: Any) -> None:
    s, (m1, m2) = iris_models.store, iris_models.models
    v1 = s.registry.register("iris-clf", m1.id, description="weak", tags={"stage": "candidate"})
    v2 = s.registry.register("iris-clf", m2.id)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.run_id == m1.run_id and v1.dataset_id == iris_models.dataset.id
    got = s.registry.get_version("iris-clf", 1)
    assert got.description == "weak" and got.tags == {"stage": "candidate"} and got.owner
    up = s.lineage(v1.id, "up")
    assert up.nodes[v1.id].kind == "model_version"
    assert {n.kind for n in up.nodes.values()} >= {"model", "run", "dataset"}
    assert v2.id in s.lineage(m2.id, "down").nodes
    assert s.registry.get("iris-clf").latest_version == 2


def test_aliases_move_and_every_move_is_in_the_history(iris_models: Any) -> None:
    s, (m1, m2) = iris_models.store, iris_models.models
    s.registry.register("iris-clf", m1.id)
    s.registry.register("iris-clf", m2.id)
    s.registry.set_alias("iris-clf", "production", 1, reason="first")
    s.registry.set_alias("iris-clf", "production", 2, reason="better accuracy")
    s.registry.set_alias("iris-clf", "staging", 1)
    s.registry.delete_alias("iris-clf", "staging", reason="done")
    h = s.registry.history("iris-clf")
    assert [(t.alias, t.from_version, t.to_version, t.reason) for t in h] == [
        ("production", None, 1, "first"), ("production", 1, 2, "better accuracy"),
        ("staging", None, 1, None), ("staging", 1, None, "done"),
    ]
    assert all(t.user and t.time for t in h)
    assert s.registry.get("iris-clf").aliases == {"production": 2}
    assert s.registry.get_version("iris-clf", 2).aliases == ["production"]
    with pytest.raises(ConflictError):  # compare-and-swap against a stale expectation
        s.registry.set_alias("iris-clf", "production", 1, expected=1)
    s.registry.set_alias("iris-clf", "production", 1, expected=2)
    assert len(s.registry.history("iris-clf", "production")) == 3


def test_bad_references_are_readable_errors(iris_models: Any) -> None:
    s = iris_models.store
    s.registry.register("iris-clf", iris_models.models[0].id)
    with pytest.raises(NotFoundError, match="no version 7"):
        s.registry.set_alias("iris-clf", "production", 7)
    with pytest.raises(NotFoundError, match="no alias"):
        s.registry.resolve("models:/iris-clf@nope")
    with pytest.raises(NotFoundError, match="No registered model"):
        s.registry.resolve("models:/unknown/1")
    with pytest.raises(NotFoundError):
        s.registry.register("iris-clf", "0123456789abcdef0123456789abcdef")
    with pytest.raises(InvalidInputError):
        s.registry.set_alias("iris-clf", "latest", 1)
    with pytest.raises(InvalidInputError):
        s.registry.register("bad/name", iris_models.models[0].id)
    with pytest.raises(FilterSyntaxError):
        s.registry.search("name ~ 'x'")


def test_load_by_uri_gives_identical_predictions(iris_models: Any) -> None:
    s, X = iris_models.store, iris_models.X
    for m in iris_models.models:
        s.registry.register("iris-clf", m.id)
    s.registry.set_alias("iris-clf", "production", 2)
    want = iris_models.fitted[1].predict(X)
    for uri in ("models:/iris-clf@production", "models:/iris-clf/2", "models:/iris-clf", "models:/iris-clf@latest"):
        assert np.array_equal(mlkeep.load_model(uri, store=s).predict(X), want)
    assert np.array_equal(s.load_model("models:/iris-clf/1").predict(X), iris_models.fitted[0].predict(X))


def test_commits_register_and_load_torch_and_sklearn(store: Any, digits: Any) -> None:
    import torch
    from lifecycle_nets import DigitsNet
    from sklearn.tree import DecisionTreeClassifier

    X, y = digits
    torch.manual_seed(0)
    net = DigitsNet()
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    with store.start_run("digits") as run:
        ds = run.log_dataset(X, "digits", targets=y)
        c = store.repo("digits-net").commit(net, "init", run=run, datasets=[ds])
        store.repo("digits-tree").commit(tree, "fit", run=run, datasets=[ds])
    v1 = store.registry.register("digits", "digits-net@main")
    v2 = store.registry.register("digits", c.id[:10])  # a commit id prefix finds the repository
    store.registry.register("digits", "digits-tree@main")
    assert v1.model_id == v2.model_id and v1.dataset_id == ds.id and v1.run_id == run.id
    loaded = store.load_model("models:/digits/2")
    x = torch.as_tensor(X[:5], dtype=torch.float32)
    assert torch.equal(loaded(x), net(x))
    assert np.array_equal(store.load_model("models:/digits/3").predict(X), tree.predict(X))
    assert c.id in store.lineage(v1.id, "up").nodes


def test_organization_descriptions_tags_owners_and_search(iris_models: Any) -> None:
    s = iris_models.store
    s.registry.register("iris-clf", iris_models.models[0].id)
    s.registry.register("iris-small", iris_models.models[1].id)
    s.registry.register("digits-x", iris_models.models[1].id)
    s.registry.update_model("iris-clf", description="Classifies irises.", owner="ana", tags={"team": "botany"})
    s.registry.update_version("iris-clf", 1, description="baseline", tags={"reviewed": "yes"})
    rm = s.registry.get("iris-clf")
    assert (rm.description, rm.owner, rm.tags) == ("Classifies irises.", "ana", {"team": "botany"})
    assert s.registry.get_version("iris-clf", 1).tags == {"reviewed": "yes"}
    assert [m.name for m in s.registry.search("name like 'iris%'")] == ["iris-clf", "iris-small"]
    assert [m.name for m in s.registry.search("tags.team = 'botany'")] == ["iris-clf"]
    assert [m.name for m in s.registry.search("name ilike 'IRIS%' and owner = 'ana'")] == ["iris-clf"]
    assert [m.name for m in s.registry.list_models()] == ["digits-x", "iris-clf", "iris-small"]
    s.registry.update_model("iris-clf", tags={"team": ""})
    assert s.registry.get("iris-clf").tags == {}


def test_create_claims_a_name_with_no_versions(store: Any) -> None:
    made = store.registry.create("empty", description="for later", tags={"team": "vision"})
    assert made.name == "empty" and made.description == "for later" and made.tags == {"team": "vision"}
    assert store.registry.versions("empty") == []
    with pytest.raises(ConflictError):
        store.registry.create("empty")
    with pytest.raises(InvalidInputError):
        store.registry.create("")


def test_rename_moves_versions_aliases_and_history(iris_models: Any) -> None:
    s, (m1, m2) = iris_models.store, iris_models.models
    s.registry.register("iris-clf", m1.id)
    s.registry.set_alias("iris-clf", "production", 1)
    s.registry.create("taken")
    with pytest.raises(ConflictError, match="taken"):
        s.registry.rename("iris-clf", "taken")
    with pytest.raises(InvalidInputError):
        s.registry.rename("iris-clf", "no spaces allowed")
    rm = s.registry.rename("iris-clf", "iris-classifier")
    assert rm.aliases == {"production": 1} and rm.latest_version == 1
    assert s.registry.resolve("models:/iris-classifier@production").model_id == m1.id
    assert s.registry.get_version("iris-classifier", 1).name == "iris-classifier"
    assert len(s.registry.history("iris-classifier")) == 1
    with pytest.raises(NotFoundError):
        s.registry.get("iris-clf")
    assert s.registry.register("iris-clf", m2.id).version == 1  # the old name is free


def test_a_deleted_version_is_gone_but_its_number_is_never_reused(iris_models: Any) -> None:
    s, (m1, m2) = iris_models.store, iris_models.models
    v1 = s.registry.register("iris-clf", m1.id, tags={"ok": "yes"})
    s.registry.register("iris-clf", m2.id)
    s.registry.set_alias("iris-clf", "production", 2)
    s.registry.delete_version("iris-clf", 2)
    assert [v.version for v in s.registry.versions("iris-clf")] == [1]
    rm = s.registry.get("iris-clf")
    assert rm.aliases == {} and rm.latest_version == 1
    assert s.registry.resolve("models:/iris-clf").version == 1
    for missing in ("models:/iris-clf/2", "models:/iris-clf@production"):
        with pytest.raises(NotFoundError):
            s.registry.resolve(missing)
    assert [(t.alias, t.from_version, t.to_version, t.reason) for t in s.registry.history("iris-clf")][-1] == (
        "production", 2, None, "version deleted")
    with pytest.raises(NotFoundError):
        s.registry.set_alias("iris-clf", "production", 2)
    with pytest.raises(NotFoundError):
        s.registry.delete_version("iris-clf", 2)
    assert s.registry.register("iris-clf", m2.id).version == 3
    assert s.get_model(m2.id).id == m2.id  # the logged model itself stays
    s.registry.delete_version("iris-clf", 1)
    assert v1.id not in s.lineage(m1.id, "down").nodes


def test_delete_removes_the_model_and_frees_its_name(iris_models: Any) -> None:
    s, (m1, _) = iris_models.store, iris_models.models
    v1 = s.registry.register("iris-clf", m1.id, tags={"ok": "yes"})
    s.registry.update_model("iris-clf", tags={"team": "vision"})
    s.registry.set_alias("iris-clf", "production", 1)
    s.registry.delete("iris-clf")
    assert "iris-clf" not in [rm.name for rm in s.registry.list_models()]
    with pytest.raises(NotFoundError):
        s.registry.delete("iris-clf")
    assert v1.id not in s.lineage(m1.id, "down").nodes
    again = s.registry.register("iris-clf", m1.id)
    assert again.version == 1 and again.tags == {} and s.registry.get("iris-clf").tags == {}
    assert s.registry.history("iris-clf") == []
