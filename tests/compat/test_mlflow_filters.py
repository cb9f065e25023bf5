"""MLflow's search syntax in mlkeep's terms: every filter the MLflow client may send selects the runs MLflow would."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkeep.compat.mlflow import datasets, filters
from mlkeep.metadata.id_lists import ids_value
from mlkeep.errors import FilterSyntaxError, InvalidInputError, UnsupportedError
from mlkeep.store import Store
from mlkeep.tracking import runs
from mlkeep.tracking.entities import Experiment

# (name, model param, acc metric, team tag) of the runs every filter below is checked against.
ROWS = [("rf-1", "rf", 0.91, "vision"), ("rf-2", "rf", 0.72, "nlp"), ("svm-1", "svm", 0.95, "vision"),
        ("svm-2", "svm", None, "nlp"), ("knn_1", "knn", 0.55, "vision")]


# MLflow datasets (name, digest, context or None) each run logs through LogInputs.
INPUTS = {"rf-1": [("iris", "d1", "training")], "svm-1": [("iris", "d1", "eval"), ("wine", "d2", "training")],
          "knn_1": [("wine", "d2", None)]}


def _dataset_input(name: str, digest: str, context: str | None) -> dict[str, object]:
    tags = [{"key": datasets.CONTEXT_TAG, "value": context}] if context else []
    return {"dataset": {"name": name, "digest": digest, "source_type": "local", "source": f"/data/{name}.csv"},
            "tags": tags}


@pytest.fixture
def seeded(store: Store) -> Iterator[Store]:
    for name, model, acc, team in ROWS:
        with store.start_run("filters", name, tags={"team": team}) as run:
            run.log_params({"model": model})
            if acc is not None:
                run.log_metric("acc", acc)
            datasets.log_inputs(store, run.id, [_dataset_input(*i) for i in INPUTS.get(name, [])])
            if name == "svm-2":  # a dataset logged through mlkeep's own API
                run.log_dataset(np.arange(12.0).reshape(4, 3), "digits", context="training")
    runs.delete_run(store.db, store.search_runs("attributes.run_name = 'knn_1'")[0].id)
    yield store


# MLflow filter, then the names it selects among the live runs (order: as sorted by name).
CASES = [
    ("", ["rf-1", "rf-2", "svm-1", "svm-2"]),
    ("metrics.acc > 0.9", ["rf-1", "svm-1"]),
    ("metrics.acc >= 0.72 and params.model = 'rf'", ["rf-1", "rf-2"]),
    ("params.model != 'rf'", ["svm-1", "svm-2"]),
    ("tags.team = 'nlp'", ["rf-2", "svm-2"]),
    ('tags."team" = "vision"', ["rf-1", "svm-1"]),
    ("tags.`team` LIKE 'vis%'", ["rf-1", "svm-1"]),
    ("attributes.run_name ILIKE 'SVM%'", ["svm-1", "svm-2"]),
    ("run_name = 'rf-2'", ["rf-2"]),
    ("attribute.status = 'FINISHED' and metrics.acc < 0.8", ["rf-2"]),
    ("params.model IN ('svm', 'knn')", ["svm-1", "svm-2"]),
    ("metrics.acc > 0.1 AND tags.team = 'vision' AND params.model = 'svm'", ["svm-1"]),
    ("attributes.start_time > 0", ["rf-1", "rf-2", "svm-1", "svm-2"]),
    ("datasets.name = 'iris'", ["rf-1", "svm-1"]),
    ("dataset.digest = 'd2'", ["svm-1"]),
    ("datasets.context = 'training'", ["rf-1", "svm-1", "svm-2"]),
    ("datasets.name = 'iris' AND datasets.context = 'eval'", ["svm-1"]),
    ("datasets.name IN ('wine', 'digits')", ["svm-1", "svm-2"]),
    ("datasets.name LIKE 'i%' OR datasets.name ILIKE 'DIG%'", ["rf-1", "svm-1", "svm-2"]),
    ("datasets.name != 'iris'", ["svm-1", "svm-2"]),
    ("datasets.name IS NULL", ["rf-2"]),
    ("NOT datasets.name = 'iris' AND params.model = 'svm'", ["svm-2"]),
]


@pytest.mark.parametrize("mlflow_filter,names", CASES, ids=[c[0] or "(none)" for c in CASES])
def test_mlflow_filters_select_what_mlflow_would(seeded: Store, mlflow_filter: str, names: list[str]) -> None:
    found = seeded.search_runs(filters.run_filter(mlflow_filter), ["attributes.run_name ASC"])
    assert [r.name for r in found] == names


@pytest.mark.parametrize("view,names", [("ACTIVE_ONLY", ["rf-1", "rf-2", "svm-1", "svm-2"]), ("DELETED_ONLY", ["knn_1"]),
                                        ("ALL", ["knn_1", "rf-1", "rf-2", "svm-1", "svm-2"]), (2, ["knn_1"]),
                                        (None, ["rf-1", "rf-2", "svm-1", "svm-2"])])
def test_view_types_choose_by_lifecycle_stage(seeded: Store, view: object, names: list[str]) -> None:
    found = seeded.search_runs("", ["attributes.run_name ASC"], stage=filters.view_stage(view))
    assert [r.name for r in found] == names


def test_order_by_as_mlflow_writes_it(seeded: Store) -> None:
    found = seeded.search_runs(filters.run_filter(""), filters.order_by(["metrics.acc DESC", " ", "name"]))
    assert [r.name for r in found] == ["svm-1", "rf-1", "rf-2", "svm-2"]  # a run lacking the metric comes last


def test_a_dataset_logged_through_mlkeep_is_searched_by_its_fingerprint_and_shown_to_mlflow(seeded: Store) -> None:
    (svm2,) = seeded.search_runs("attributes.run_name = 'svm-2'")
    with seeded.db.connect() as conn:
        (shown,) = datasets.inputs_of_runs(conn, ids_value(conn.dialect.name, [svm2.id]))[svm2.id]
    assert shown["dataset"]["name"] == "digits" and shown["dataset"]["source_type"] == "mlkeep"
    assert shown["tags"] == [{"key": datasets.CONTEXT_TAG, "value": "training"}]
    digest = shown["dataset"]["digest"]
    assert [r.name for r in seeded.search_runs(f"datasets.digest = '{digest}'")] == ["svm-2"]


def test_dataset_inputs_come_back_with_their_context(seeded: Store) -> None:
    (svm1,) = seeded.search_runs("attributes.run_name = 'svm-1'")
    with seeded.db.connect() as conn:
        shown = datasets.inputs_of_runs(conn, ids_value(conn.dialect.name, [svm1.id]))[svm1.id]
    assert sorted((i["dataset"]["name"], i["dataset"]["digest"], i["tags"][0]["value"]) for i in shown) == [
        ("iris", "d1", "eval"), ("wine", "d2", "training")]


def test_bad_dataset_keys_inputs_and_view_types_are_refused_by_name(seeded: Store) -> None:
    with pytest.raises(FilterSyntaxError, match="datasets.name, datasets.digest, datasets.context"):
        seeded.search_runs("datasets.rows = 'abc'")
    with pytest.raises(FilterSyntaxError, match="several datasets"):
        seeded.search_runs("", ["datasets.name"])
    with pytest.raises(FilterSyntaxError, match="quote"):
        seeded.search_runs("datasets.digest = 12")
    run_id = seeded.search_runs("attributes.run_name = 'rf-2'")[0].id
    with pytest.raises(UnsupportedError, match="mlflow.data.context"):
        datasets.log_inputs(seeded, run_id, [{"dataset": {"name": "x"}, "tags": [{"key": "owner", "value": "me"}]}])
    with pytest.raises(InvalidInputError, match="needs a name"):
        datasets.log_inputs(seeded, run_id, [_dataset_input("iris", "d1", None), {"dataset": {}}])
    assert seeded.search_runs("datasets.name IS NOT NULL AND attributes.run_name = 'rf-2'") == []  # nothing written
    with pytest.raises(InvalidInputError, match="ACTIVE_ONLY"):
        filters.view_stage("SOMETIMES")


# Clauses of MLflow's grammar over keys of every kind; any AND/OR/parentheses combination of them must
# compile: a translation never turns a valid MLflow filter into a syntax error.
KEYS = st.sampled_from(["metrics.acc", "metrics.`my loss`", 'metrics."a.b"', "params.model", "params.`lr`",
                        "tags.team", "tags.`mlflow.runName`", "attributes.run_name", "run_name",
                        "attributes.status", "attribute.start_time", "attributes.end_time", "datasets.name",
                        "dataset.digest", "datasets.context"])
NUMBER = st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: repr(round(x, 4)))
TEXT = st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=8).map(lambda s: f"'{s}'")


@st.composite
def clause(draw: st.DrawFn) -> str:
    key = draw(KEYS)
    numeric = key.startswith("metrics") or key.endswith("_time")
    if numeric:
        return f"{key} {draw(st.sampled_from(['=', '!=', '<', '<=', '>', '>=']))} {draw(NUMBER)}"
    op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IN"]))
    if op == "IN":
        return f"{key} IN ({', '.join(draw(st.lists(TEXT, min_size=1, max_size=3)))})"
    return f"{key} {op} {draw(TEXT)}"


expression = st.recursive(clause(), lambda inner: st.tuples(inner, st.sampled_from([" and ", " AND ", " or "]),
                                                              inner).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
                          max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(expression)
def test_every_mlflow_filter_translates_to_a_valid_mlkeep_filter(text: str) -> None:
    from mlkeep.tracking.filters import parse_filter

    parse_filter(filters.run_filter(text))  # raises FilterSyntaxError if the translation broke it


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=40), st.integers(1, 10))
def test_pages_cover_every_item_once_in_order(items: list[int], size: int) -> None:
    seen, token = [], None
    while True:
        chunk, token = filters.page(items, filters.offset_of(token), size)
        seen += chunk
        if token is None:
            break
    assert seen == items


@pytest.mark.parametrize("text,expected", [
    ("name = 'a'", ["a"]), ("name LIKE 'a%'", ["a", "ab"]), ("name ilike 'A_'", ["ab"]), ("name != 'a'", ["ab", "b"]),
    ("name LIKE 'a%' AND name != 'a'", ["ab"]), ("", ["a", "ab", "b"]),
    ("tags.team = 'x'", ["a"]), ("tags.team != 'x'", ["ab"]), ("tags.team IS NULL", ["b"]),
    ("tags.team IN ('x', 'y')", ["a", "ab"]), ("tags.`team` ILIKE 'Y' or name = 'b'", ["ab", "b"]),
    ("not tags.team = 'x'", ["ab", "b"]), ("experiment_id = 'b'", ["b"]),
])
def test_experiment_filters(text: str, expected: list[str]) -> None:
    tags = {"a": {"team": "x"}, "ab": {"team": "y"}, "b": {}}
    found = [Experiment(id=n, name=n, creation_time=i, tags=tags[n]) for i, n in enumerate(["a", "ab", "b"])]
    keep = filters.experiment_filter(text)
    assert [e.name for e in filters.sort_experiments([e for e in found if keep(e)], ["name ASC"])] == expected


def test_experiment_filters_mlflow_has_and_mlkeep_does_not_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="name, experiment_id and tags"):
        filters.experiment_filter("params.k = 'v'")
    with pytest.raises(UnsupportedError, match="not >"):
        filters.experiment_filter("tags.k > 3")
    with pytest.raises(FilterSyntaxError):
        filters.experiment_filter("tags.k = ")
    with pytest.raises(FilterSyntaxError):
        filters.sort_experiments([], ["owner DESC"])
    assert re.search("offset", filters.token_for(3)) is None  # opaque to clients


def test_a_search_answer_holds_the_messages_built_from_rows(seeded: Store) -> None:
    """SQLite writes a search answer's JSON itself; it must say what the Python-built messages say, for
    every kind of value: NaN and infinite metrics, doubles needing 17 digits, quotes, newlines and
    non-ASCII text, a running run (no end time), a run without params, datasets and a logged model."""
    import json

    from mlkeep.compat.mlflow import logged_models
    from mlkeep.compat.mlflow.run_messages import run_messages, search_answer
    from mlkeep.tracking.search import search_run_ids

    run = seeded.start_run("filters", "odd-values", tags={"note": 'say "hi"\n\\ – ünïcode ✓'})
    run.log_metrics({"nan": float("nan"), "up": float("inf"), "down": -float("inf"), "third": 0.1 + 0.2,
                     "tiny": 5e-324, "big": 1.7976931348623157e308, "whole": 3.0})
    run.flush()
    model = logged_models.create(seeded, {"source_run_id": run.id, "name": "m"})
    ids = search_run_ids(seeded.db, "", order_by=["attributes.run_name"], stage=None)
    answer = json.loads(search_answer(seeded.db, ids, "next"))
    assert answer == {"runs": run_messages(seeded.db, ids), "next_page_token": "next"}
    odd = next(r for r in answer["runs"] if r["info"]["run_name"] == "odd-values")
    assert "end_time" not in odd["info"] and "params" not in odd["data"]
    assert {m["key"]: m["value"] for m in odd["data"]["metrics"]} == {
        "nan": "NaN", "up": "Infinity", "down": "-Infinity", "third": 0.1 + 0.2, "tiny": 5e-324,
        "big": 1.7976931348623157e308, "whole": 3.0}
    assert odd["outputs"] == {"model_outputs": [{"model_id": model["info"]["model_id"], "step": 0}]}
    assert sum(1 for r in answer["runs"] if r["inputs"]) == 4  # rf-1, svm-1, svm-2 and the deleted knn_1
    assert json.loads(search_answer(seeded.db, [], None)) == {"runs": []}
