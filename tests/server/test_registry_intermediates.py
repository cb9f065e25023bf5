"""The registry, intermediates and repository commits over HTTP: the remote store keeps the local contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlkeep import errors
from mlkeep.client import RemoteStore
from mlkeep.store import Store


@pytest.fixture(params=["local", "remote"])
def any_store(request: pytest.FixtureRequest, store: Store) -> Any:
    if request.param == "local":
        return store
    return request.getfixturevalue("remote")


def digits(n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def logged_models(store: Store) -> list[Any]:
    """Two classifiers of different strength on digits, logged in runs of one experiment."""
    from sklearn.linear_model import LogisticRegression

    X, y = digits()
    out = []
    for c in (0.01, 10.0):
        with store.start_run("digits") as run:
            data = run.log_dataset(X, "digits", targets=y)
            run.log_params({"C": c})
            est = LogisticRegression(C=c, max_iter=300).fit(X, y)
            run.log_metric("accuracy", float((est.predict(X) == y).mean()))
            out.append(run.log_model(est, "digits-logreg", trained_on=data))
    return out


def test_the_registry_reads_and_writes_the_same_through_both(store: Store, any_store: Any) -> None:
    m1, m2 = logged_models(store)
    reg = any_store.registry
    v1 = reg.register("digits-clf", m1.id, description="weak", tags={"team": "vision"})
    v2 = reg.register("digits-clf", m2.id)
    assert (v1.version, v2.version) == (1, 2) and v1.run_id == m1.run_id
    reg.set_alias("digits-clf", "production", 1, reason="first")
    reg.set_alias("digits-clf", "production", 2, reason="better", expected=1)
    with pytest.raises(errors.ConflictError):
        reg.set_alias("digits-clf", "production", 1, expected=1)  # it moved to 2
    with pytest.raises(errors.ConflictError):
        reg.set_alias("digits-clf", "production", 1, expected=None)  # it exists
    reg.set_alias("digits-clf", "staging", 1)
    reg.delete_alias("digits-clf", "staging", reason="done")
    assert [(t.alias, t.from_version, t.to_version, t.reason) for t in reg.history("digits-clf")] == [
        ("production", None, 1, "first"), ("production", 1, 2, "better"), ("staging", None, 1, None),
        ("staging", 1, None, "done")]
    assert reg.alias_version("digits-clf", "production") == 2
    assert reg.resolve("models:/digits-clf@production").version == 2
    assert reg.resolve("models:/digits-clf").version == 2 and reg.resolve("digits-clf/1").id == v1.id
    assert reg.get("digits-clf").aliases == {"production": 2}
    assert [v.aliases for v in reg.versions("digits-clf")] == [[], ["production"]]
    assert reg.update_model("digits-clf", description="digits", tags={"team": None}).tags == {}
    assert reg.update_version("digits-clf", 2, tags={"checked": "yes"}).tags == {"checked": "yes"}
    assert [m.name for m in reg.search("name like 'digits%'")] == ["digits-clf"]
    with pytest.raises(errors.FilterSyntaxError):
        reg.search("name ~ 'x'")
    with pytest.raises(errors.NotFoundError):
        reg.get_version("digits-clf", 9)
    with pytest.raises(errors.InvalidInputError):
        reg.set_alias("digits-clf", "latest", 1)  # reserved
    card = reg.model_card("digits-clf", 2)
    assert card.startswith("# Model card: digits-clf version 2") and "production" in card and "C" in card
    X, y = digits()
    loaded = any_store.load_model("models:/digits-clf@production")
    assert (loaded.predict(X) == store.load_model(m2.id).predict(X)).all()


def test_a_commit_uploads_as_safetensors_and_registers(store: Store, remote: RemoteStore, tmp_path: Any) -> None:
    rng = np.random.default_rng(1)
    weights = {"w": rng.normal(size=(32, 16)).astype(np.float32), "b": np.zeros(32, dtype=np.float32)}
    with remote.start_run("nets") as run:
        first = remote.repo("net").commit(weights, "init", run=run, code={"commit": "abc123"})
    weights["b"] = weights["b"] + 1
    from safetensors.numpy import save_file

    save_file(weights, str(tmp_path / "w.safetensors"))
    second = remote.repo("net").commit(tmp_path / "w.safetensors", "bias")
    assert store.repo("net").get("main").id == second.id and second.parents == (first.id,)
    assert first.run_id == run.id and first.code == {"commit": "abc123"}
    back = store.repo("net").checkout("main")
    assert all(np.array_equal(np.asarray(back[k]), weights[k]) for k in weights)
    assert [t.name for t in remote.repo("net").diff("main~1", "main").tensors if t.status == "changed"] == ["b"]
    v = remote.registry.register("net", "net@main")
    assert v.source == f"net@{second.id}" and v.source_kind == "commit"
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(errors.InvalidInputError):
        remote.repo("net").commit(tmp_path / "bad.safetensors")
    assert store.repo("net").get("main").id == second.id
    with pytest.raises(errors.InvalidInputError):
        remote.repo("net").commit(object())


def test_a_commit_on_a_moved_branch_is_refused(store: Store, api: TestClient, tmp_path: Any) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(tmp_path / "w.safetensors"))
    body = (tmp_path / "w.safetensors").read_bytes()
    r = api.put("/api/repositories/net/commits", params={"message": "x", "code": "no-equals"}, content=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_INPUT"
    r = api.put("/api/repositories/net/commits", params={"message": "one", "datasets": "nope"}, content=body)
    assert r.status_code == 404 and store.repositories() == []
    r = api.put("/api/repositories/net/commits", params={"message": "one"}, content=body)
    assert r.status_code == 201 and r.json()["message"] == "one"


@pytest.fixture
def captured(store: Store) -> dict[str, Any]:
    """Two versions of a digits pipeline, every stage captured over the same 240 images."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits()
    data = store.intermediates._dataset(X, y)  # noqa: SLF001 - one logged dataset for both captures
    out: dict[str, Any] = {"X": X, "y": y}
    for name, c in (("v1", 0.01), ("v2", 1.0)):
        model = Pipeline([("scale", StandardScaler()), ("pca", PCA(12, random_state=0)),
                          ("clf", LogisticRegression(C=c, max_iter=300))]).fit(X, y)
        out[name] = store.intermediates.capture(model, data, codec="exact", name=name, repo="digits-pipe")
    return out


def test_intermediates_answer_the_same_queries_through_both(store: Store, any_store: Any,
                                                            captured: dict[str, Any]) -> None:
    inter = any_store.intermediates
    local = store.intermediates
    listed = inter.list(repository="digits-pipe")
    assert sorted(i.name for i in listed) == ["v1:clf", "v1:pca", "v1:scale", "v2:clf", "v2:pca", "v2:scale"]
    pca = captured["v1"]["pca"]
    assert inter.info("v1:pca").id == pca.id and inter.info(pca.id[:10]).row_shape == (12,)
    top = inter.topk("v1:pca", 3, k=5)
    assert top["row"].tolist() == local.topk(pca, 3, k=5)["row"].tolist()
    assert np.allclose(top["value"], local.get(pca, top["row"].tolist(), [3])[:, 0])
    assert inter.last_source in ("read", "rerun")
    assert np.array_equal(inter.get("v1:pca", [0, 5], [1, 2]), local.get(pca, [0, 5], [1, 2]))
    near = inter.knn("v1:pca", 7, k=4)
    assert near["row"].tolist() == local.knn(pca, 7, k=4)["row"].tolist() and 7 not in near["row"].tolist()
    stats = inter.stats("v1:clf")
    assert len(stats) == 10 * 10 and set(stats["group"].astype(str)) == {str(d) for d in range(10)}
    best = stats.groupby(stats["group"].astype(int))["mean"].idxmax().map(stats["column"]).tolist()
    assert best == list(range(10))  # each class's own probability column is its highest
    assert inter.similarity("v1:pca", "v1:pca") == pytest.approx(1.0)
    assert 0 < inter.similarity("v1:clf", "v2:clf", "svcca") <= 1
    assert np.allclose(inter.col_diff("v1:clf", "v2:clf"), local.col_diff("v1:clf", "v2:clf"))
    assert inter.row_diff("v1:scale", "v2:scale").max() == 0  # same scaler on the same data
    with pytest.raises(errors.NotFoundError):
        inter.info("no-such-layer")
    with pytest.raises(errors.InvalidInputError):
        inter.topk("v1:pca", 3, source="sometimes")
    with pytest.raises(errors.InvalidInputError):
        inter.similarity("v1:pca", "v1:clf", "cosine")
    with pytest.raises(errors.RowsOutOfRangeError):
        inter.topk("v1:pca", 99)


def test_intermediate_inputs_are_the_dataset_rows(api: TestClient, captured: dict[str, Any]) -> None:
    r = api.get("/api/intermediates/v1:pca/inputs", params={"rows": [3, 0]})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["shape"] == [64] and np.allclose(got["inputs"], captured["X"][[3, 0]])
    assert got["targets"] == [str(captured["y"][3]), str(captured["y"][0])]
    r = api.get("/api/intermediates/v1:pca/inputs", params={"rows": [100_000]})
    assert r.status_code == 400
    r = api.get("/api/intermediates/v1:pca/values")  # 240 × 12: small enough to send whole
    assert r.status_code == 200 and np.asarray(r.json()["values"]).shape == (240, 12)
