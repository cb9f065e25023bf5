"""`import_mlflow` on MLflow stores made by the official client: every count and metric history intact."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlkeep
from mlkeep.compat.mlflow.importer import import_mlflow
from mlkeep.errors import InvalidInputError

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

N_RUNS = 104


def _fill(client: MlflowClient, root: Path, experiment: str, n: int, seed: int) -> dict[str, Any]:
    """`n` runs of varied shape in `experiment`; returns what each holds, to compare after import."""
    rng = random.Random(seed)
    exp_id = client.create_experiment(experiment, artifact_location=(root / "artifacts" / experiment).as_uri())
    made: dict[str, Any] = {}
    parent = None
    for i in range(n):
        tags = {"team": rng.choice(["a", "b"])}
        if parent is not None and i % 10 == 1:
            tags["mlflow.parentRunId"] = parent
        run = client.create_run(exp_id, run_name=f"{experiment}-{i}", tags=tags)
        run_id = run.info.run_id
        points = [Metric("loss", rng.random(), 1_700_000_000_000 + s, s) for s in range(rng.randint(1, 60))]
        points += [Metric("acc", float("nan") if i == 3 else i / n, 1_700_000_000_000, 0)]
        client.log_batch(run_id, metrics=points, params=[Param("i", str(i)), Param("lr", str(rng.random()))],
                         tags=[RunTag("kind", "bulk")])
        if i % 25 == 0:
            art = root / f"report-{i}.txt"
            art.write_text(f"report {i}")
            client.log_artifact(run_id, str(art), artifact_path="reports")
        client.set_terminated(run_id, "FAILED" if i % 17 == 5 else "FINISHED")
        if i % 10 == 0:
            parent = run_id
        made[run_id] = points
    return {"experiment_id": exp_id, "runs": made}


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An MLflow SQLite store with ≥100 runs, a deleted run, a logged model, a registered model and aliases."""
    root = tmp_path_factory.mktemp("mlflow-source")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient(uri, uri)
        first = _fill(client, root, "alpha", N_RUNS - 4, seed=1)
        second = _fill(client, root, "beta", 4, seed=2)
        deleted = next(iter(second["runs"]))
        client.delete_run(deleted)
        X, y = load_iris(return_X_y=True)
        mlflow.set_experiment(experiment_id=first["experiment_id"])
        models = []
        for depth in (2, 4):
            with mlflow.start_run() as run:
                model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
                mlflow.log_input(mlflow.data.from_numpy(X, targets=y, name="iris"), context="training")
                info = mlflow.sklearn.log_model(model, name="tree", registered_model_name="iris-tree",
                                                serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
                models.append((run.info.run_id, info.model_id, model))
        client.set_registered_model_alias("iris-tree", "champion", "2")
        client.set_registered_model_tag("iris-tree", "team", "vision")
        yield {"uri": uri, "client": client, "root": root, "alpha": first, "beta": second, "deleted": deleted,
               "models": models, "X": X}
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_registry_uri(previous)


@pytest.mark.slow  # the MLflow source store takes the official client about a minute to write
def test_a_store_of_over_100_runs_migrates_with_every_count_and_history(mlflow_store: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    with mlkeep.init(tmp_path) as store:
        report = import_mlflow(store, mlflow_store["uri"], progress=lambda *a: seen.append(a))
        assert report.verified, report.mismatches
        source_runs = {**mlflow_store["alpha"]["runs"], **mlflow_store["beta"]["runs"]}
        assert report.runs == len(source_runs) + 2 >= 100 and report.runs_skipped == 0
        assert report.metric_points >= sum(len(p) for p in source_runs.values())
        assert (report.logged_models, report.model_versions, report.aliases) == (2, 2, 1), report.skipped
        assert seen and seen[-1][1] == seen[-1][2]  # progress reached the end of its stage
        for run_id, points in random.Random(0).sample(sorted(source_runs.items()), 10):
            loss = store.get_metric_history(run_id, "loss")
            want = [(p.step, p.timestamp, p.value) for p in points if p.key == "loss"]
            assert [(m.step, m.timestamp, m.value) for m in loss] == want
        client = mlflow_store["client"]
        for run_id in source_runs:
            mine, theirs = store.get_run(run_id), client.get_run(run_id)
            assert (mine.name, mine.status, mine.start_time, mine.end_time) == (
                theirs.info.run_name, theirs.info.status, theirs.info.start_time, theirs.info.end_time)
            assert mine.params == theirs.data.params and mine.tags == theirs.data.tags
            assert mine.lifecycle_stage == theirs.info.lifecycle_stage
        assert math.isnan(store.get_run(list(mlflow_store["alpha"]["runs"])[3]).metrics["acc"].value)
        assert store.get_run(mlflow_store["deleted"]).lifecycle_stage == "deleted"
        children = [r for r in store.search_runs("tags.`mlflow.parentRunId` IS NOT NULL")]
        assert children and all(r.parent_run_id == r.tags["mlflow.parentRunId"] for r in children)
        reports = [a for r in source_runs for a in store.list_artifacts(r)]
        assert {a.path.split("/")[0] for a in reports} == {"reports"} and len(reports) == 4 + 1
        # logged models, registry and datasets came along, and load without MLflow
        X = mlflow_store["X"]
        for run_id, model_id, model in mlflow_store["models"]:
            assert store.get_model(model_id).run_id == run_id
            np.testing.assert_array_equal(store.load_model(model_id).predict(X), model.predict(X))
            assert [d.name for d in store.lineage(run_id).of_kind("dataset")] == ["iris"]
        champion = store.registry.resolve("models:/iris-tree@champion")
        assert champion.version == 2 and champion.model_id == mlflow_store["models"][1][1]
        assert store.registry.get("iris-tree").tags == {"team": "vision"}


@pytest.mark.slow  # the MLflow source store takes the official client about a minute to write
def test_re_running_imports_only_what_is_new(mlflow_store: dict[str, Any], tmp_path: Path) -> None:
    with mlkeep.init(tmp_path) as store:
        first = import_mlflow(store, mlflow_store["uri"])
        again = import_mlflow(store, mlflow_store["uri"])
        assert again.verified and again.runs == 0 and again.runs_skipped == first.runs
        assert (again.experiments, again.metric_points, again.model_versions, again.logged_models) == (0, 0, 0, 0)
        client = mlflow_store["client"]
        run = client.create_run(mlflow_store["beta"]["experiment_id"], run_name="late")
        client.log_batch(run.info.run_id, metrics=[Metric("loss", 0.5, 1, s) for s in range(7)])
        client.set_terminated(run.info.run_id)
        third = import_mlflow(store, mlflow_store["uri"])
        assert (third.runs, third.metric_points, third.runs_skipped) == (1, 7, first.runs)
        assert store.get_run(run.info.run_id).metrics["loss"].count == 7


def test_a_file_store_and_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its folder store behind a flag
    from mlkeep.cli.main import app

    source = tmp_path / "mlruns"
    client = MlflowClient(source.as_uri())
    exp = client.create_experiment("files", artifact_location=(tmp_path / "art").as_uri(), tags={"team": "a"})
    client.set_experiment_tag(exp, "mlflow.note.content", "imported notes")
    run = client.create_run(exp, run_name="one")
    client.log_batch(run.info.run_id, metrics=[Metric("m", float(s), 5, s) for s in range(30)],
                     params=[Param("p", "1")])
    client.set_terminated(run.info.run_id)
    mlkeep.init(tmp_path / "dest").close()
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "dest"), "import-mlflow", f"file:{source}", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["verified"] and out["runs"] == 1 and out["metric_points"] == 30
    with mlkeep.open(tmp_path / "dest") as store:
        assert [m.value for m in store.get_metric_history(run.info.run_id, "m")] == [float(s) for s in range(30)]
        imported = store.get_experiment("files")
        assert (imported.tags, imported.description) == ({"team": "a"}, "imported notes")
        with pytest.raises(InvalidInputError):
            import_mlflow(store, str(tmp_path / "nothing-here"))
    bad = CliRunner().invoke(app, ["--store", str(tmp_path / "dest"), "import-mlflow", "sqlite:///no/such.db"])
    assert bad.exit_code == 1 and "No MLflow database" in bad.output
