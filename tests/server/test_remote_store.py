"""`RemoteStore` keeps `Store`'s contract: the same script logs and reads back the same through both."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkeep import errors
from mlkeep.client import RemoteRun, RemoteStore
from mlkeep.store import Store
from mlkeep.tracking.entities import Dataset, Metric, Model, Run


@pytest.fixture(params=["local", "remote"])
def any_store(request: pytest.FixtureRequest, store: Store) -> Any:
    if request.param == "local":
        return store
    return request.getfixturevalue("remote")


def train(s: Any, tmp_path: Path) -> dict[str, Any]:
    """A small training script, written once against the Store API."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    (tmp_path / "report.txt").write_text("accuracy is fine\n")
    with s.start_run("digits", "logreg", tags={"team": "a"}) as run:
        data = run.log_dataset(X, name="toy", targets=y)
        run.log_params({"C": 0.5, "max_iter": 50})
        for step, loss in enumerate([0.9, 0.4, 0.2]):
            run.log_metric("loss", loss)
        run.log_metrics({"acc": 0.8, "nan": float("nan")}, step=7)
        model = LogisticRegression(C=0.5, max_iter=50).fit(X, y)
        logged = run.log_model(model, trained_on=data)
        pred = model.predict(X)
        p = run.log_predictions(logged, data, pred)
        e = run.log_evaluation(logged, data, {"accuracy": float((pred == y).mean())},
                               confusion_matrix=[[10, 2], [3, 45]], prediction=p)
        run.log_artifact(tmp_path / "report.txt", "reports")
        with run.start_run("child") as child:
            child.log_metric("loss", 1.0)
    return {"run": run, "data": data, "model": logged, "X": X, "pred": p, "eval": e, "child": child}


def test_the_same_script_reads_back_the_same(any_store: Any, tmp_path: Path) -> None:
    out = train(any_store, tmp_path)
    run = any_store.get_run(out["run"].id)
    assert isinstance(run, Run) and run.status == "FINISHED" and run.name == "logreg"
    assert run.params == {"C": "0.5", "max_iter": "50"} and run.tags == {"team": "a"}
    assert run.metrics["loss"].value == 0.2 and run.metrics["loss"].count == 3 and run.metrics["acc"].step == 7
    assert math.isnan(run.metrics["nan"].value)
    assert run.environment["python"]
    history = any_store.get_metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.4), (2, 0.2)]
    assert all(isinstance(m, Metric) for m in history)
    child = any_store.get_run(out["child"].id)
    assert child.parent_run_id == run.id and child.experiment == "digits"
    found = any_store.search_runs("metrics.loss < 0.5 and params.C = '0.5'", order_by="metrics.loss")
    assert [r.id for r in found] == [run.id]
    assert [r.id for r in any_store.search_runs("", order_by="metrics.loss DESC", limit=1)] == [child.id]
    data, model = out["data"], out["model"]
    assert isinstance(data, Dataset) and data.num_rows == 60 and any_store.get_dataset(data.id) == data
    assert isinstance(model, Model) and any_store.get_model(model.id).trained_on_dataset_id == data.id
    assert [m.id for m in any_store.list_models(run.id)] == [model.id]
    loaded = any_store.load_model(model.id)
    assert (loaded.predict(out["X"]) == any_store.load_predictions(out["pred"].id)["prediction"]).all()
    assert any_store.get_evaluation(out["eval"].id).confusion_matrix == [[10, 2], [3, 45]]
    down = any_store.lineage(data.id, direction="down")
    assert {n.kind for n in down.nodes.values()} >= {"dataset", "run", "model", "prediction", "evaluation"}
    up = any_store.lineage(model.id, direction="up")
    assert data.id in up.nodes and run.id in up.nodes
    files = any_store.download_artifacts(run.id, tmp_path / "dl")
    assert [f.read_text() for f in files] == ["accuracy is fine\n"]
    assert files[0] == (tmp_path / "dl" / "reports" / "report.txt").resolve()
    assert any_store.get_experiment("digits").name == "digits"


def test_the_same_data_is_the_same_dataset_locally_and_remotely(store: Store, remote: RemoteStore) -> None:
    X = np.arange(12.0).reshape(4, 3)
    with store.start_run() as a:
        local = a.log_dataset(X, name="x")
    with remote.start_run() as b:
        far = b.log_dataset(X, name="x")
    assert far.id == local.id and far.fingerprint == local.fingerprint


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda s, r: s.get_run("missing"), errors.NotFoundError),
        (lambda s, r: s.search_runs("metrics.acc >"), errors.FilterSyntaxError),
        (lambda s, r: r.log_param("C", 2), errors.ParamConflictError),
        (lambda s, r: r.log_metric("acc", "high"), errors.InvalidMetricError),
        (lambda s, r: s.lineage(r.id, direction="sideways"), errors.InvalidInputError),
        (lambda s, r: s.repo("none").log(), errors.NotFoundError),
        (lambda s, r: s.get_model("nope"), errors.NotFoundError),
    ],
)
def test_errors_arrive_as_the_same_classes(any_store: Any, call: Any, error: type) -> None:
    with any_store.start_run("e") as run:
        run.log_param("C", 1)
        with pytest.raises(error) as info:
            call(any_store, run)
    if error is errors.FilterSyntaxError:
        assert info.value.position == 13


def test_an_ended_remote_run_refuses_more_and_a_failure_is_kept(remote: RemoteStore) -> None:
    with pytest.raises(ZeroDivisionError):
        with remote.start_run() as run:
            assert isinstance(run, RemoteRun)
            1 / 0  # noqa: B018
    info = remote.get_run(run.id)
    assert info.status == "FAILED" and "ZeroDivisionError" in (info.failure or "")
    with pytest.raises(errors.RunStateError):
        run.log_metric("x", 1.0)
    run.end()  # a no-op, as locally


def test_remote_metrics_are_batched_and_flushed(remote: RemoteStore, store: Store) -> None:
    run = remote.start_run()
    for i in range(5000):
        run.log_metric("loss", 1 / (i + 1))
    run.flush()
    assert store.get_run(run.id).metrics["loss"].count == 5000
    run.end()


def test_mlkeep_open_returns_a_remote_store_for_an_http_url() -> None:
    import mlkeep

    s = mlkeep.open("http://127.0.0.1:1", token="t")
    assert isinstance(s, RemoteStore)
    with pytest.raises(errors.StoreNotFoundError):
        s.list_experiments()
    s.close()
