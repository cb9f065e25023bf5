"""ml-experiments-schema export and import on a store of real runs (iris, digits).

Every exported document is validated against the schema in ../shared/ (CI
clones it beside the repository; the project does not copy it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import mlkeep
from mlkeep.errors import ConflictError, NotFoundError, SchemaValidationError
from mlkeep.store import Store
from mlkeep.tracking import schema as schema_export
from mlkeep.tracking.schema import FOLDERS, SchemaChecker, export_documents, import_documents
from mlkeep.tracking.schema import export as export_module

SCHEMA_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "ml-experiments-schema" / "schema.json"
needs_schema = pytest.mark.skipif(
    not SCHEMA_PATH.is_file(),
    reason=f"the ml-experiments-schema is not at {SCHEMA_PATH} (CI clones it beside the repo)",
)


@pytest.fixture
def fresh() -> Iterator[Store]:
    s = mlkeep.open("memory://")
    yield s
    s.close()


@pytest.fixture
def tracked() -> Iterator[Store]:
    """A store with what a user logs: runs, params, metric series, tags, datasets, models, predictions, evaluations."""
    s = mlkeep.open("memory://")
    _iris_runs(s)
    _digits_runs(s)
    yield s
    s.close()


def _iris_runs(s: Store) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with s.start_run("iris", name="search", tags={"team": "vision", "note": ""}) as parent:
        parent.log_param("grid", [0.1, 1.0])
        parent.log_param("comment", "")
        ds = parent.log_dataset(X, name="iris", targets=y)
        for c in (0.1, 1.0):
            with parent.start_run(name=f"C={c}") as child:
                child.log_params({"C": c, "scaler": "standard"})
                child.set_tag("stage", "candidate")
                pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=c, max_iter=300))])
                for step in range(4):
                    child.log_metric("loss", 1.0 / (step + 1 + c), step=step)
                    child.log_metric("acc", 0.8 + step * 0.04 * c, step=step)
                pipe.fit(X, y)
                model = child.log_model(pipe, name="logreg", trained_on=ds)
                predicted = pipe.predict(X)
                prediction = child.log_predictions(model, ds, predicted)
                child.log_evaluation(
                    model, ds, {"accuracy": accuracy_score(y, predicted)},
                    confusion_matrix=confusion_matrix(y, predicted), class_labels=["setosa", "versicolor", "virginica"],
                    prediction=prediction,
                )


def _digits_runs(s: Store) -> None:
    X, y = load_digits(return_X_y=True)
    with s.start_run("digits", name="prep") as prep:
        raw = prep.log_dataset(X, name="digits", targets=y)
        scaled = prep.log_dataset(X / 16.0, name="digits-scaled", targets=y, derived_from=raw)
    with s.start_run("digits", name="tree") as run:
        run.log_param("max_depth", 8)
        tree = DecisionTreeClassifier(max_depth=8, random_state=0).fit(X / 16.0, y)
        tree_model = run.log_model(tree, name="tree", trained_on=scaled)
        run.log_model(DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y), name="untracked-data")
        run.log_metrics({"depth": 8.0, "nan-metric": float("nan")})
    with s.start_run("digits", name="eval-only") as ev:
        ev.log_evaluation(tree_model, scaled, {"accuracy": float(np.mean(tree.predict(X / 16.0) == y))})


# -- helpers ------------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def _documents(root: Path) -> dict[str, dict[str, Any]]:
    return {rel: json.loads(data) for rel, data in _files(root).items()}


def _series(s: Store, run_id: str, key: str) -> list[tuple[int, int, float | None]]:
    """A metric's history with NaN as None, so two histories compare equal."""
    return [(m.step, m.timestamp, None if np.isnan(m.value) else m.value) for m in s.get_metric_history(run_id, key)]


def _links(rel: str, body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(folder kind, id) for every id a document points at, schema fields and mlkeep annotations alike."""
    for key, kind in (("derivedFromDatasetId", "datasets"), ("trainedOnDatasetId", "datasets"),
                      ("computedOnDatasetId", "datasets"), ("computedByModelId", "models"),
                      ("forModelId", "models"), ("forPredictionId", "predictions")):
        if key in body:
            yield kind, body[key]
    notes = body.get("annotations", {})
    for key, value in notes.items():
        if key in ("mlkeep.runId", "mlkeep.parentRunId"):
            yield "training_runs", value
        elif key == "mlkeep.otherModelIds":
            yield from (("models", m) for m in value.split(","))
        elif key.startswith("input."):
            yield "datasets", key[len("input."):]


# -- export ---------------------------------------------------------------------------------------------


@needs_schema
def test_every_document_is_valid_and_every_link_resolves(tracked: Store, tmp_path: Path) -> None:
    counts = export_documents(tracked, tmp_path, schema=SCHEMA_PATH)
    docs = _documents(tmp_path)
    assert counts == {"datasets": 3, "training_runs": 3, "runs_without_model": 3, "models": 3,
                      "models_without_dataset": 1, "predictions": 2, "evaluations": 3}
    assert sum(counts.values()) == len(docs)
    checker = SchemaChecker(schema_export.load_schema(SCHEMA_PATH))
    for rel, body in docs.items():
        folder, name = rel.rsplit("/", 1)
        assert folder in FOLDERS and name == f"{body['id']}.json"
        checker.check(schema_export.Document(folder, body["id"], body))
    ids = {(rel.rsplit("/", 2)[-2], body["id"]) for rel, body in docs.items()}
    for rel, body in docs.items():
        for link in _links(rel, body):
            assert link in ids, f"{rel} links to {link}, which was not exported"


@needs_schema
def test_schema_folders_hold_only_documents_valid_without_relaxation(tracked: Store, tmp_path: Path) -> None:
    """The five schema folders are valid for any reader; mlkeep/ holds what the schema cannot express."""
    from jsonschema import Draft7Validator

    export_documents(tracked, tmp_path, schema=SCHEMA_PATH)
    schema = schema_export.load_schema(SCHEMA_PATH)
    for rel, body in _documents(tmp_path).items():
        folder = rel.rsplit("/", 1)[0]
        if folder.startswith("mlkeep/"):
            assert "forModelId" not in body and "trainedOnDatasetId" not in body
            continue
        Draft7Validator({**schema, "$ref": f"#/{FOLDERS[folder]}"}).validate(body)


def test_mapping_of_each_entity(tracked: Store, tmp_path: Path) -> None:
    export_documents(tracked, tmp_path)
    docs = _documents(tmp_path)
    child = next(r for r in tracked.search_runs("attributes.name = 'C=1.0'"))
    run = docs[f"training_runs/{child.id}.json"]
    model = tracked.list_models(child.id)[0]
    assert run["forModelId"] == model.id and run["name"] == "C=1.0"
    assert run["startTime"] == run["creationTime"] == child.start_time and run["endTime"] == child.end_time
    assert {"name": "C", "value": "1.0", "typing": "STRING", "trackedByUser": True} in run["hyperparameters"]
    losses = [s for s in run["scoresOverTime"] if s["score"]["metric"] == "loss"]
    assert [s["epoch"] for s in losses] == [0, 1, 2, 3]
    assert losses[0]["score"] == {"metric": "loss", "value": repr(1.0 / 2.0), "typing": "DOUBLE"}
    notes = run["annotations"]
    assert notes["mlkeep.experiment"] == "iris" and notes["mlkeep.status"] == "FINISHED"
    assert notes["tag.stage"] == "candidate" and notes["mlkeep.parentRunId"] == child.parent_run_id
    assert run["environment"]["python"]

    parent = docs[f"mlkeep/training_runs/{child.parent_run_id}.json"]
    assert parent["annotations"]["param.comment"] == "" and parent["annotations"]["tag.note"] == ""
    assert all(p["value"] for p in parent["hyperparameters"])

    m = docs[f"models/{model.id}.json"]
    assert m["learningAlgorithm"] == "sklearn.pipeline.Pipeline" and m["location"] == f"mlkeep://models/{model.id}"
    assert m["fromFramework"] == "sklearn" and m["fromFrameworkVersion"]
    scale, clf = m["transforms"]
    assert clf["inputTransforms"] == [scale["id"]]
    assert {"name": "C", "value": "1.0", "typing": "STRING"} in clf["parameters"]
    assert [c["name"] for c in m["input"]] == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                                               "petal width (cm)"]

    ds = docs[f"datasets/{m['trainedOnDatasetId']}.json"]
    assert ds["name"] == "iris" and ds["version"] == "1" and ds["location"].startswith("mlkeep://objects/")
    mean = next(s for s in ds["dataStatistics"] if s["name"] == "mean" and s["columns"] == ["sepal length (cm)"])
    assert float(mean["value"]) == pytest.approx(5.8433, abs=1e-4) and mean["typing"] == "DOUBLE"
    hist = next(h for h in ds["histograms"] if h["column"] == "sepal length (cm)")
    assert hist["bucketLabels"][0] == "[4.3, 4.66)" and hist["bucketLabels"][-1].endswith("7.9]")
    assert sum(int(v) for v in hist["bucketValues"]) == 150

    evaluation = next(b for r, b in docs.items() if r.startswith("evaluations/") and b["computedByModelId"] == model.id)
    matrix = tracked.get_evaluation(evaluation["id"]).confusion_matrix
    assert matrix is not None
    assert evaluation["confusionMatrix"]["values"] == [matrix[i][j] for j in range(3) for i in range(3)]
    assert evaluation["confusionMatrix"]["classLabels"] == ["setosa", "versicolor", "virginica"]
    assert docs[f"predictions/{evaluation['forPredictionId']}.json"]["computedByModelId"] == model.id


def test_a_run_exported_while_running_moves_when_it_logs_a_model(fresh: Store, tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    with fresh.start_run("live") as run:
        run.log_metric("loss", 1.0)
        run.flush()
        assert export_documents(fresh, tmp_path)["runs_without_model"] == 1
        ds = run.log_dataset(X, targets=y)
        run.log_model(LogisticRegression(max_iter=300).fit(X, y), trained_on=ds)
    counts = export_documents(fresh, tmp_path)
    assert counts["training_runs"] == 1 and counts["runs_without_model"] == 0
    assert sorted(_files(tmp_path)) == sorted(
        f"{folder}/{i}.json" for folder, i in [("training_runs", run.id), ("models", fresh.list_models()[0].id),
                                               ("datasets", ds.id)]
    )
    other = mlkeep.open("memory://")
    assert import_documents(other, tmp_path)["training_runs"] == 1


def test_confusion_matrix_is_column_major(fresh: Store, tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    with fresh.start_run("cm") as run:
        ds = run.log_dataset(X, targets=y)
        model = run.log_model(LogisticRegression(max_iter=300).fit(X, y), trained_on=ds)
        run.log_evaluation(model, ds, {"acc": 0.5}, confusion_matrix=np.array([[1, 2], [3, 4]]))
    export_documents(fresh, tmp_path)
    (doc,) = [b for r, b in _documents(tmp_path).items() if r.startswith("evaluations/")]
    assert doc["confusionMatrix"] == {"numberOfClasses": 2, "values": [1, 3, 2, 4]}


# -- import ---------------------------------------------------------------------------------------------


def test_export_import_export_is_byte_identical(tracked: Store, fresh: Store, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    counts = export_documents(tracked, first)
    imported = import_documents(fresh, first)
    assert imported == {"datasets": 3, "models": 4, "training_runs": 6, "predictions": 2, "evaluations": 3,
                        "already_present": 0}
    assert export_documents(fresh, second) == counts
    assert _files(second) == _files(first)


def test_import_restores_runs_metrics_and_lineage(tracked: Store, fresh: Store, tmp_path: Path) -> None:
    export_documents(tracked, tmp_path)
    import_documents(fresh, tmp_path)
    for run in tracked.search_runs(""):
        copy = fresh.get_run(run.id)
        assert (copy.experiment, copy.name, copy.status, copy.params, copy.tags, copy.parent_run_id) == (
            run.experiment, run.name, run.status, run.params, run.tags, run.parent_run_id)
        assert copy.metrics.keys() == run.metrics.keys()
        for key, summary in run.metrics.items():
            got = copy.metrics[key]
            assert (got.step, got.count, got.timestamp) == (summary.step, summary.count, summary.timestamp)
            assert _series(fresh, run.id, key) == _series(tracked, run.id, key)
    raw = next(d for d in tracked.list_datasets("digits"))
    for direction in ("up", "down"):
        for entity in [raw.id, *[m.id for m in tracked.list_models()]]:
            before, after = tracked.lineage(entity, direction), fresh.lineage(entity, direction)
            assert sorted(before.nodes) == sorted(after.nodes)
            assert sorted(map(repr, before.links)) == sorted(map(repr, after.links))
    assert fresh.get_dataset(raw.id) == raw


def test_imported_content_is_metadata_only(tracked: Store, fresh: Store, tmp_path: Path) -> None:
    export_documents(tracked, tmp_path)
    import_documents(fresh, tmp_path)
    model = tracked.list_models()[0]
    assert fresh.get_model(model.id) == model
    with pytest.raises(NotFoundError):
        fresh.load_model(model.id)


def test_import_twice_changes_nothing(tracked: Store, fresh: Store, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    export_documents(tracked, first)
    import_documents(fresh, first)
    again = import_documents(fresh, first)
    assert again == {"datasets": 0, "models": 0, "training_runs": 0, "predictions": 0, "evaluations": 0,
                     "already_present": 18}
    export_documents(fresh, second)
    assert _files(second) == _files(first)


def test_import_into_the_source_store_changes_nothing(tracked: Store, tmp_path: Path) -> None:
    export_documents(tracked, tmp_path / "a")
    assert import_documents(tracked, tmp_path / "a")["already_present"] == 18
    export_documents(tracked, tmp_path / "b")
    assert _files(tmp_path / "b") == _files(tmp_path / "a")


def _one(root: Path, folder: str) -> Path:
    return sorted((root / folder).glob("*.json"))[0]


@pytest.mark.parametrize(
    ("folder", "corrupt", "where"),
    [
        ("models", lambda d: d.pop("learningAlgorithm"), "learningAlgorithm"),
        ("training_runs", lambda d: d.update(creationTime="yesterday"), "creationTime"),
        ("evaluations", lambda d: d["scores"][0].update(value=0.9), "scores"),
        ("datasets", lambda d: d.update(name=""), "name"),
        ("evaluations", lambda d: d["confusionMatrix"]["values"].pop(), "confusionMatrix"),
    ],
)
@pytest.mark.parametrize("with_schema", [True, False])
def test_a_corrupt_document_imports_nothing(
    tracked: Store, fresh: Store, tmp_path: Path, folder: str, corrupt: Any, where: str, with_schema: bool
) -> None:
    if with_schema and not SCHEMA_PATH.is_file():
        pytest.skip(f"the ml-experiments-schema is not at {SCHEMA_PATH}")
    export_documents(tracked, tmp_path)
    if folder == "evaluations":  # the one with a confusion matrix
        path = next(p for p in (tmp_path / folder).glob("*.json") if "confusionMatrix" in json.loads(p.read_text()))
    else:
        path = _one(tmp_path, folder)
    body = json.loads(path.read_text())
    corrupt(body)
    path.write_text(json.dumps(body))
    with pytest.raises(SchemaValidationError) as info:
        import_documents(fresh, tmp_path, schema=SCHEMA_PATH if with_schema else None)
    assert path.name in str(info.value) and where in str(info.value)
    assert fresh.search_runs("") == [] and fresh.list_datasets() == [] and fresh.list_models() == []


def test_export_refuses_an_invalid_store_before_writing(
    tracked: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"the ml-experiments-schema is not at {SCHEMA_PATH}")
    real = export_module._model_body

    def broken(model: Any, extra: Any) -> dict[str, Any]:
        return {**real(model, extra), "creationTime": -1}

    monkeypatch.setattr(export_module, "_model_body", broken)
    monkeypatch.setenv(schema_export.SCHEMA_ENV, str(SCHEMA_PATH))
    with pytest.raises(SchemaValidationError, match=r"models/\w+\.json: /creationTime"):
        tracked.export(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_link_to_an_unknown_id_imports_nothing(tracked: Store, fresh: Store, tmp_path: Path) -> None:
    export_documents(tracked, tmp_path)
    for path in (tmp_path / "datasets").glob("*.json"):
        path.unlink()
    with pytest.raises(NotFoundError, match="names no dataset"):
        import_documents(fresh, tmp_path)
    assert fresh.search_runs("") == []


def test_same_content_under_another_id_conflicts(tracked: Store, tmp_path: Path) -> None:
    export_documents(tracked, tmp_path)
    other = mlkeep.open("memory://")
    X, y = load_iris(return_X_y=True, as_frame=True)
    with other.start_run("mine") as run:
        run.log_dataset(X, name="iris", targets=y)
    with pytest.raises(ConflictError, match="same content"):
        import_documents(other, tmp_path)
    assert len(other.list_datasets()) == 1 and len(other.search_runs("")) == 1


def test_foreign_fields_and_documents_without_mlkeep_annotations(fresh: Store, tmp_path: Path) -> None:
    """Documents of another tool: ids from file names, unknown fields kept, the run found by forModelId."""
    docs = {
        "datasets/d1.json": {"name": "census", "location": "s3://bucket/census.csv", "comments": "from the 1994 census",
                             "annotations": {"owner": "data-team"}},
        "models/m1.json": {"id": "m1", "name": "gbt", "learningAlgorithm": "GBT", "creationTime": 5,
                           "trainedOnDatasetId": "d1", "location": "s3://bucket/gbt.bin"},
        "training_runs/r1.json": {"id": "r1", "creationTime": 4, "forModelId": "m1",
                                  "hyperparameters": [{"name": "depth", "value": "3", "typing": "INT"}]},
    }
    for rel, body in docs.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(body))
    import_documents(fresh, tmp_path, schema=SCHEMA_PATH if SCHEMA_PATH.is_file() else None)
    assert fresh.get_model("m1").run_id == "r1" and fresh.get_run("r1").params == {"depth": "3"}
    out = tmp_path / "out"
    export_documents(fresh, out)
    again = _documents(out)
    assert again["datasets/d1.json"]["comments"] == "from the 1994 census"
    assert again["datasets/d1.json"]["annotations"]["owner"] == "data-team"
    assert again["models/m1.json"]["location"] == "s3://bucket/gbt.bin"
    assert again["training_runs/r1.json"]["forModelId"] == "m1"


def test_unsafe_ids_are_refused(fresh: Store, tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "x.json").write_text(json.dumps({"id": "../../etc", "name": "n", "location": "l"}))
    with pytest.raises(SchemaValidationError, match="/id"):
        import_documents(fresh, tmp_path)
