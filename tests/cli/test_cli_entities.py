"""`mlkeep datasets` and `mlkeep models` on the iris store."""

from __future__ import annotations

import pytest

from cli_support import IrisStore


@pytest.fixture
def dataset_id(iris_store: IrisStore) -> str:
    if iris_store.dataset is None:
        pytest.xfail("run.log_dataset is not available in the library yet")
    return iris_store.dataset


@pytest.fixture
def model_ids(iris_store: IrisStore) -> dict[str, str]:
    if not iris_store.models:
        pytest.xfail("run.log_model is not available in the library yet")
    return iris_store.models


def test_datasets_list(cli, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("datasets")
    assert result.exit_code == 0
    assert dataset_id[:8] in result.stdout and "iris" in result.stdout
    listed = cli("datasets", "--json").json()
    assert dataset_id in {d["id"] for d in listed}
    only = cli("datasets", "--name", "iris", "--json").json()
    assert {d["name"] for d in only} == {"iris"}


def test_dataset_show(cli, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("datasets", "show", dataset_id)
    assert result.exit_code == 0
    out = result.stdout
    for expected in ("Schema", "sepal length (cm)", "Statistics", "mean", "Histogram of petal width (cm)", "█"):
        assert expected in out, expected


def test_dataset_show_json(cli, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    data = cli("datasets", "show", dataset_id, "--json").json()
    assert data["id"] == dataset_id and data["name"] == "iris"
    assert data["num_rows"] == 105
    assert {c["name"] for c in data["columns"]} >= {"sepal length (cm)", "petal width (cm)"}


def test_models_list(cli, iris_store: IrisStore, model_ids: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    result = cli("models")
    assert result.exit_code == 0
    assert "RandomForestClassifier" in result.stdout and "Pipeline" in result.stdout
    assert {m["id"] for m in cli("models", "--json").json()} >= set(model_ids.values())
    by_run = cli("models", "--run", iris_store.runs["rf"], "--json").json()
    assert [m["id"] for m in by_run] == [model_ids["rf"]]


def test_model_show(cli, model_ids: dict[str, str], iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("models", "show", model_ids["rf"])
    assert result.exit_code == 0
    assert "RandomForestClassifier" in result.stdout and "n_estimators" in result.stdout
    pipeline = cli("models", "show", model_ids["logreg"])
    assert "Transforms" in pipeline.stdout and "StandardScaler" in pipeline.stdout
    data = cli("models", "show", model_ids["rf"], "--json").json()
    assert data["id"] == model_ids["rf"] and data["trained_on_dataset_id"] == iris_store.dataset
    assert {h["name"]: h["value"] for h in data["hyperparameters"]}["n_estimators"] == "20"
