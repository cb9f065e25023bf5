"""The background recorder: records are snapshots of the fit, durable at flush, run end and exit, failures loud."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mlkeep
import mlkeep.sklearn
from mlkeep.integrations import AutologWarning
from mlkeep.integrations import _sklearn_record as record
from mlkeep.integrations._recorder import recorder
from mlkeep.store import Store


@contextmanager
def recorder_held() -> Iterator[None]:
    """Keep the recorder busy until the block ends: what the block does is only queued."""
    gate = threading.Event()
    recorder.submit(gate.wait)
    try:
        yield
    finally:
        gate.set()


def test_a_refit_or_changed_data_after_fit_does_not_reach_the_first_fits_records(store: Store) -> None:
    X, y = load_iris(return_X_y=True)
    with mlkeep.sklearn.autolog(store=store, experiment="snap"):
        est = LogisticRegression(C=0.5, max_iter=500)
        with recorder_held():
            est.fit(X, y)
            as_fitted, first_mean = copy.deepcopy(est), X[:, 0].mean()
            X[:, 0] += 100.0  # the caller changes its data in place ...
            est.set_params(C=0.01).fit(X, y)  # ... and refits the same object, before anything was written
            assert store.list_models() == []
        mlkeep.sklearn.flush()
    first, second = sorted(store.list_models(), key=lambda m: m.creation_time)
    assert {h.name: h.value for h in first.hyperparameters}["C"] == "0.5"
    assert {h.name: h.value for h in second.hyperparameters}["C"] == "0.01"
    X[:, 0] -= 100.0
    loaded = mlkeep.load_model(first.id, store)
    np.testing.assert_array_equal(loaded.predict(X), as_fitted.predict(X))
    np.testing.assert_array_equal(loaded.coef_, as_fitted.coef_)
    dataset = store.get_dataset(first.trained_on_dataset_id)
    assert dataset.statistics["x0"]["mean"] == pytest.approx(first_mean)
    assert first.trained_on_dataset_id != second.trained_on_dataset_id


def test_a_run_ends_only_once_the_records_of_its_fits_are_written(store: Store) -> None:
    X, y = load_iris(return_X_y=True)
    gate = threading.Event()
    with mlkeep.sklearn.autolog(store=store):
        recorder.submit(gate.wait)
        try:
            with store.start_run("mine") as run:
                est = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
                assert store.list_models(run.id) == []  # only queued: the recorder is held
                threading.Timer(0.2, gate.set).start()
        finally:
            gate.set()
        # leaving the run waited for the records, with no flush asked for
        (model,) = store.list_models(run.id)
        ended = store.get_run(run.id)
    assert ended.status == "FINISHED"
    assert ended.metrics["training_accuracy"].value == pytest.approx(est.score(X, y))
    np.testing.assert_array_equal(mlkeep.load_model(model.id, store).predict(X), est.predict(X))


def test_a_failure_in_the_recorder_is_issued_as_a_warning_and_a_tag(store: Store, monkeypatch) -> None:
    X, y = load_iris(return_X_y=True)

    def broken(*args: object) -> None:
        raise RuntimeError("scoring exploded")

    monkeypatch.setattr(record, "training_scores", broken)
    with mlkeep.sklearn.autolog(store=store):
        with warnings.catch_warnings():
            warnings.simplefilter("error", AutologWarning)  # nothing is issued in the fit itself
            est = LogisticRegression(max_iter=500).fit(X, y)
        with pytest.warns(AutologWarning, match="training_score: RuntimeError: scoring exploded"):
            mlkeep.sklearn.flush()
    (run,) = store.search_runs("")
    assert run.status == "FINISHED" and "scoring exploded" in run.tags["autolog.skipped.training_score"]
    (model,) = store.list_models(run.id)  # the rest of the fit was recorded
    np.testing.assert_array_equal(mlkeep.load_model(model.id, store).predict(X), est.predict(X))


def test_an_error_that_escapes_a_job_is_reported_not_lost() -> None:
    recorder.submit(lambda: [][1])  # type: ignore[func-returns-value]
    with pytest.warns(AutologWarning, match="failed to record: IndexError"):
        recorder.settle()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorder.settle()  # reported once


def test_records_are_written_by_interpreter_exit(tmp_path: Path) -> None:
    script = f"""
import mlkeep, mlkeep.sklearn
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from mlkeep.integrations._recorder import recorder
X, y = load_iris(return_X_y=True)
store = mlkeep.init({str(tmp_path)!r})
mlkeep.sklearn.autolog(store=store)
recorder.submit(lambda: __import__("time").sleep(0.5))  # the fit below is still queued at exit
RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
print(recorder.pending)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert int(out.stdout.strip()) >= 1, "the fit was recorded before exit: the test proves nothing"
    with mlkeep.open(str(tmp_path)) as store:
        (run,) = store.search_runs("")
        (model,) = store.list_models(run.id)
        assert run.status == "FINISHED" and "training_score" in run.metrics
        X, y = load_iris(return_X_y=True)
        expected = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y).predict(X)
        np.testing.assert_array_equal(mlkeep.load_model(model.id, store).predict(X), expected)


def test_tracked_model_waits_until_its_model_can_be_loaded(store: Store) -> None:
    X, y = load_iris(return_X_y=True)
    with mlkeep.sklearn.autolog(store=store):
        with recorder_held():
            est = LogisticRegression(max_iter=500).fit(X, y)
            assert store.list_models() == []
        tracked = mlkeep.sklearn.tracked_model(est)
        assert tracked is not None and tracked.dataset_id is not None
        np.testing.assert_array_equal(mlkeep.load_model(tracked.model_id, store).predict(X), est.predict(X))
