"""Models, predictions, evaluations and the lineage questions users ask about them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import mlkeep
from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.store import Store


def test_model_description_and_round_trip(store: Store, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    pipe = Pipeline([
        ("cols", ColumnTransformer([("std", StandardScaler(), ["sepal length (cm)", "sepal width (cm)"]),
                                    ("mm", MinMaxScaler(), ["petal length (cm)", "petal width (cm)"])])),
        ("clf", LogisticRegression(C=0.5, max_iter=500)),
    ]).fit(X, y)
    with store.start_run("iris") as run:
        ds = run.log_dataset(X, name="iris", targets=y)
        model = run.log_model(pipe, name="pipe", trained_on=ds)
    assert model.learning_algorithm == "sklearn.pipeline.Pipeline"
    assert model.framework == "sklearn" and model.framework_version
    names = {t.id.split("/", 1)[1]: t for t in model.transforms}
    assert set(names) == {"cols/std", "cols/mm", "clf"}
    assert names["clf"].input_transforms == [model.id + "/cols/std", model.id + "/cols/mm"]
    assert names["clf"].parameters["C"] == "0.5"
    assert [c["name"] for c in names["cols/std"].input] == ["sepal length (cm)", "sepal width (cm)"]
    assert [c["name"] for c in model.input] == list(X.columns)
    loaded = mlkeep.load_model(model.id, store=store)
    assert np.array_equal(loaded.predict(X), pipe.predict(X))
    assert store.list_models(run.id) == [store.get_model(model.id)]


def test_non_default_hyperparameters(store: Store, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    rf = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    with store.start_run("iris") as run:
        model = run.log_model(rf)
    flags = {h.name: h.non_default for h in model.hyperparameters}
    assert flags["n_estimators"] is True and flags["random_state"] is True and flags["max_depth"] is False
    with pytest.raises(InvalidInputError):
        with store.start_run("iris") as run:
            run.log_model("not a model")


def test_faulty_dataset_finds_every_model_and_evaluation_downstream(store: Store, digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    with store.start_run("digits", name="prep") as prep:
        raw = prep.log_dataset(X, name="digits", targets=y)
        scaled = prep.log_dataset(X / 16.0, name="digits-scaled", targets=y, derived_from=raw)
    evaluations = []
    for c in (0.1, 1.0):
        with store.start_run("digits", name=f"lr-{c}") as run:
            clf = LogisticRegression(C=c, max_iter=200).fit(scaled_data := X / 16.0, y)
            model = run.log_model(clf, trained_on=scaled)
            pred = clf.predict(scaled_data)
            p = run.log_predictions(model, scaled, pred)
            evaluations.append(run.log_evaluation(
                model, scaled, {"accuracy": accuracy_score(y, pred)},
                confusion_matrix=confusion_matrix(y, pred), class_labels=list(range(10)), prediction=p))
    down = store.lineage(raw.id, direction="down")
    assert {n.name for n in down.of_kind("dataset")} == {"digits-scaled"}
    assert len(down.of_kind("model")) == 2 and len(down.of_kind("evaluation")) == 2
    assert len(down.of_kind("run")) == 3
    one_step = store.lineage(raw.id, direction="down", depth=1)
    assert not one_step.of_kind("model")
    up = store.lineage(evaluations[0].id, direction="up")
    assert {n.id for n in up.of_kind("dataset")} == {raw.id, scaled.id}
    assert store.get_evaluation(evaluations[-1].id).confusion_matrix == confusion_matrix(y, pred).tolist()
    assert store.get_evaluation(evaluations[-1].id).class_labels == [str(i) for i in range(10)]
    assert store.load_predictions(p.id)["prediction"].tolist() == pred.tolist()


def test_prediction_and_evaluation_validation(store: Store, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    with store.start_run("iris") as run:
        ds = run.log_dataset(X, targets=y)
        model = run.log_model(LogisticRegression(max_iter=300).fit(X, y), trained_on=ds)
        with pytest.raises(InvalidInputError, match="one per row"):
            run.log_predictions(model, ds, np.zeros(10))
        with pytest.raises(InvalidInputError, match="square"):
            run.log_evaluation(model, ds, {"acc": 0.9}, confusion_matrix=[[1, 2, 3]])
        with pytest.raises(InvalidInputError, match="real number"):
            run.log_evaluation(model, ds, {"acc": "high"})
        with pytest.raises(NotFoundError):
            run.log_predictions("no-such-model", ds, np.zeros(150))
    with pytest.raises(NotFoundError):
        store.lineage("nothing-has-this-id")
    with pytest.raises(InvalidInputError):
        store.lineage(ds.id, direction="sideways")


def test_a_model_whose_framework_is_missing_names_the_module(store: Store, iris, vanishing_framework) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.errors import MissingDependencyError

    X, _ = iris
    fitted, uninstall = vanishing_framework
    with store.start_run("iris") as run:
        model = run.log_model(fitted, name="majority")
    assert mlkeep.load_model(model.id, store=store).predict(X[:2]) == fitted.predict(X[:2])
    uninstall()
    with pytest.raises(MissingDependencyError, match="'rarefw'") as err:
        mlkeep.load_model(model.id, store=store)
    assert err.value.package == "rarefw" and err.value.http_status == 503
