"""`mlkeep lineage`: the provenance graph as a tree, or as JSON."""

from __future__ import annotations

import pytest

from cli_support import IrisStore


@pytest.fixture
def dataset_id(iris_store: IrisStore) -> str:
    if iris_store.dataset is None or not iris_store.models:
        pytest.xfail("run.log_dataset / run.log_model are not available in the library yet")
    return iris_store.dataset


def test_downstream_of_a_dataset(cli, iris_store: IrisStore, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("lineage", dataset_id, "--down")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dataset iris " + dataset_id[:8])
    for model_id in iris_store.models.values():
        # each model appears expanded once, and is referenced wherever it is reached again
        mentions = [line for line in lines if model_id[:8] in line]
        assert len([m for m in mentions if "(shown" not in m]) == 1
    assert "trained_on" in result.stdout and "→ model rf" in result.stdout


def test_downstream_json(cli, iris_store: IrisStore, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    graph = cli("lineage", dataset_id, "--down", "--json").json()
    assert graph["root"] == dataset_id and graph["direction"] == "down"
    kinds = {n["kind"] for n in graph["nodes"].values()}
    assert {"dataset", "run", "model"} <= kinds
    assert set(iris_store.models.values()) <= set(graph["nodes"])


def test_upstream_of_a_model(cli, iris_store: IrisStore, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("lineage", iris_store.models["rf"])  # --up is the default
    assert result.exit_code == 0
    assert result.stdout.startswith("model rf")
    assert dataset_id[:8] in result.stdout and iris_store.runs["rf"][:8] in result.stdout
    graph = cli("lineage", iris_store.models["rf"], "--up", "--json").json()
    assert graph["direction"] == "up" and dataset_id in graph["nodes"]


def test_depth_limits_the_walk(cli, iris_store: IrisStore, dataset_id: str) -> None:  # type: ignore[no-untyped-def]
    graph = cli("lineage", dataset_id, "--down", "--depth", "1", "--json").json()
    assert max(graph["depth"].values()) == 1
    assert cli("lineage", dataset_id, "--down", "--depth", "0", "--json").json()["links"] == []


def test_run_lineage_without_datasets(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("lineage", iris_store.failed_run, "--json")
    assert result.exit_code == 0
    assert result.json()["root"] == iris_store.failed_run
