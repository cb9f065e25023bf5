"""Runs: status, nesting, params, tags, metrics, artifacts, and the errors users get."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from mlkeep.errors import (
    InvalidInputError,
    InvalidMetricError,
    NotFoundError,
    ParamConflictError,
    RunStateError,
    UnsafePathError,
)
from mlkeep.store import Store


def test_run_lifecycle_and_times(store: Store) -> None:
    with store.start_run("digits", name="baseline") as run:
        assert store.get_run(run.id).status == "RUNNING"
    info = store.get_run(run.id)
    assert info.status == "FINISHED" and info.name == "baseline" and info.experiment == "digits"
    assert info.end_time is not None and info.end_time >= info.start_time
    assert info.environment["python"]


def test_exception_marks_failed_with_traceback(store: Store) -> None:
    with pytest.raises(ValueError):
        with store.start_run("digits") as run:
            run.log_metric("loss", 0.5)
            raise ValueError("diverged")
    info = store.get_run(run.id)
    assert info.status == "FAILED"
    assert "ValueError: diverged" in (info.failure or "")
    assert info.metrics["loss"].value == 0.5


def test_nested_runs(store: Store) -> None:
    with store.start_run("search") as parent:
        with store.start_run("search", name="c1") as c1:
            pass
        c2 = parent.start_run(name="c2")
        c2.end()
    assert store.get_run(c1.id).parent_run_id == parent.id
    assert store.get_run(c2.id).parent_run_id == parent.id
    assert store.get_run(parent.id).parent_run_id is None


def test_params_and_conflicts(store: Store) -> None:
    with store.start_run("e") as run:
        run.log_params({"lr": 0.1, "layers": [64, 32], "name": "rf"})
        run.log_param("lr", 0.1)  # same value again: fine
        with pytest.raises(ParamConflictError, match="cannot become"):
            run.log_param("lr", 0.2)
        with pytest.raises(ParamConflictError):
            run.log_params({"new": 1, "lr": 0.3})
    params = store.get_run(run.id).params
    assert params == {"lr": "0.1", "layers": "[64, 32]", "name": "rf"}


def test_metric_series_steps_and_summary(store: Store) -> None:
    with store.start_run("e") as run:
        for loss in (0.9, 0.5, 0.7):
            run.log_metric("loss", loss)
        run.log_metric("acc", 0.8, step=10)
        run.log_metrics({"acc": 0.85, "f1": 0.7}, step=20)
        run.log_metric("nan", math.nan)
    history = store.get_metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.7)]
    s = store.get_run(run.id).metrics
    assert (s["loss"].value, s["loss"].min, s["loss"].max, s["loss"].count) == (0.7, 0.5, 0.9, 3)
    assert s["acc"].value == 0.85 and s["acc"].step == 20
    assert math.isnan(s["nan"].value)


def test_latest_metric_is_by_step_not_arrival(store: Store) -> None:
    with store.start_run("e") as run:
        run.log_metric("m", 2.0, step=5)
        run.flush()
        run.log_metric("m", 1.0, step=3)
    assert store.get_run(run.id).metrics["m"].value == 2.0


@pytest.mark.parametrize("bad", ["0.5", None, [1], True, b"1"])
def test_non_numeric_metric_is_refused_and_nothing_changes(store: Store, bad: object) -> None:
    with store.start_run("e") as run:
        run.log_metric("ok", 1.0)
        with pytest.raises(InvalidMetricError, match="real number"):
            run.log_metric("bad", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError):
            run.log_metrics({"fine": 1.0, "bad": bad})  # type: ignore[dict-item]
    assert set(store.get_run(run.id).metrics) == {"ok"}


def test_bad_keys_and_unknown_runs(store: Store) -> None:
    with store.start_run("e") as run:
        with pytest.raises(InvalidInputError):
            run.log_param("", 1)
        with pytest.raises(InvalidInputError):
            run.set_tag("x" * 300, 1)
    with pytest.raises(NotFoundError, match="No run"):
        store.get_run("deadbeef")
    with pytest.raises(RunStateError):
        run.log_metric("late", 1.0)


def test_tags_overwrite(store: Store) -> None:
    with store.start_run("e", tags={"team": "a"}) as run:
        run.set_tag("team", "b")
        run.set_tag("stage", "dev")
    assert store.get_run(run.id).tags == {"team": "b", "stage": "dev"}


def test_threads_logging_to_one_run_lose_nothing(store: Store) -> None:
    with store.start_run("e") as run:
        def work(i: int) -> None:
            for step in range(500):
                run.log_metric(f"t{i}", float(step), step=step)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    metrics = store.get_run(run.id).metrics
    assert all(metrics[f"t{i}"].count == 500 for i in range(4))


def test_artifacts_files_and_folders(folder_store: Store, tmp_path: Path) -> None:
    (tmp_path / "out" / "plots").mkdir(parents=True)
    (tmp_path / "out" / "report.txt").write_text("accuracy 0.97\n")
    (tmp_path / "out" / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    with folder_store.start_run("e") as run:
        run.log_artifact(tmp_path / "out" / "report.txt")
        run.log_artifact(tmp_path / "out", artifact_path="results")
    paths = [a.path for a in folder_store.list_artifacts(run.id)]
    assert paths == ["report.txt", "results/plots/roc.csv", "results/report.txt"]
    assert [a.path for a in folder_store.list_artifacts(run.id, "results/plots")] == ["results/plots/roc.csv"]
    written = folder_store.download_artifacts(run.id, tmp_path / "dl", "results")
    assert (tmp_path / "dl" / "results" / "plots" / "roc.csv").read_text() == "fpr,tpr\n0,0\n1,1\n"
    assert len(written) == 2


@pytest.mark.parametrize("path", ["../escape", "a/../../b", "/etc", "C:/x", ".."])
def test_artifact_paths_cannot_escape(folder_store: Store, tmp_path: Path, path: str) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    with folder_store.start_run("e") as run:
        with pytest.raises(UnsafePathError):
            run.log_artifact(f, artifact_path=path)
    assert folder_store.list_artifacts(run.id) == []
