"""scikit-learn autologging on the bundled datasets: what a fit, a search, a prediction and a metric record."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

import mlkeep
import mlkeep.sklearn
from mlkeep.integrations import AutologWarning
from mlkeep.store import Store
from mlkeep.tracking import predictions as predictions_

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "ml-experiments-schema" / "schema.json"


@pytest.fixture
def autologged(store: Store) -> Iterator[Store]:
    with mlkeep.sklearn.autolog(store=store, experiment="auto"):
        yield store


@pytest.fixture(scope="module")
def iris_xy() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


def _runs(store: Store, parent: str | None = None) -> list:
    mlkeep.sklearn.flush()  # fits are recorded in the background: wait for them
    return [r for r in store.search_runs("") if r.parent_run_id == parent]


def test_fit_records_run_model_dataset_params_and_scores(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    est = LogisticRegression(C=0.5, max_iter=500)
    assert est.fit(X, y) is est
    (run,) = _runs(autologged)
    assert run.status == "FINISHED" and run.experiment == "auto" and run.tags["autolog"] == "sklearn"
    assert run.metrics["fit_duration_s"].value > 0
    assert run.metrics["training_score"].value == pytest.approx(est.score(X, y))
    assert run.metrics["training_accuracy"].value == pytest.approx(metrics.accuracy_score(y, est.predict(X)))
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "500"
    (model,) = autologged.list_models(run.id)
    assert model.learning_algorithm == "sklearn.linear_model._logistic.LogisticRegression"
    assert model.framework == "sklearn" and model.framework_version
    hyper = {h.name: h for h in model.hyperparameters}
    assert set(hyper) == set(est.get_params(deep=True))
    assert hyper["C"].non_default is True and hyper["C"].value == "0.5"
    assert hyper["tol"].non_default is False and hyper["C"].tracked_by_user is False
    dataset = autologged.get_dataset(model.trained_on_dataset_id)
    assert dataset.num_rows == 150 and dataset.targets == "target"
    loaded = mlkeep.load_model(model.id, autologged)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    up = autologged.lineage(model.id, direction="up")
    assert {n.id for n in up.of_kind("dataset")} == {dataset.id}


def test_pipeline_is_one_model_with_its_transform_graph(autologged: Store) -> None:
    X, y = load_digits(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=10, random_state=0)),
                     ("clf", LogisticRegression(max_iter=300))])
    pipe.fit(X, y)
    mlkeep.sklearn.flush()
    (model,) = autologged.list_models()  # the inner fits made no models of their own
    assert model.learning_algorithm == "sklearn.pipeline.Pipeline"
    scale, pca, clf = model.transforms
    assert [t.name for t in model.transforms] == ["scale:StandardScaler", "pca:PCA", "clf:LogisticRegression"]
    assert pca.input_transforms == [scale.id] and clf.input_transforms == [pca.id]
    assert [c["name"] for c in pca.output] == [f"pca{i}" for i in range(10)]
    hyper = {h.name: h for h in model.hyperparameters}
    assert hyper["pca__n_components"].non_default is True and hyper["clf__max_iter"].non_default is True
    assert hyper["scale__with_mean"].non_default is False
    assert len(_runs(autologged)) == 1


def test_column_transformer_and_feature_union_record_columns(autologged: Store) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    pre = ColumnTransformer([("sepal", StandardScaler(), ["sepal length (cm)", "sepal width (cm)"]),
                             ("petal", MinMaxScaler(), ["petal length (cm)", "petal width (cm)"])])
    union = FeatureUnion([("pca", PCA(n_components=2)), ("id", StandardScaler())])
    Pipeline([("pre", pre), ("union", union), ("clf", DecisionTreeClassifier(random_state=0))]).fit(X, y)
    mlkeep.sklearn.flush()
    (model,) = autologged.list_models()
    names = [t.name for t in model.transforms]
    assert names == ["sepal:StandardScaler", "petal:MinMaxScaler", "pca:PCA", "id:StandardScaler",
                     "clf:DecisionTreeClassifier"]
    sepal = model.transforms[0]
    assert [c["name"] for c in sepal.input] == ["sepal length (cm)", "sepal width (cm)"]
    clf = model.transforms[-1]
    assert sorted(clf.input_transforms) == sorted([model.transforms[2].id, model.transforms[3].id])
    assert [c["name"] for c in model.input] == list(X.columns)


def test_the_same_data_twice_is_one_dataset(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    LogisticRegression(max_iter=300).fit(X, y)
    DecisionTreeClassifier(random_state=0).fit(X.copy(), y.copy())
    mlkeep.sklearn.flush()
    first, second = autologged.list_models()
    assert first.trained_on_dataset_id == second.trained_on_dataset_id
    assert len(autologged.list_datasets()) == 1


def test_grid_search_has_a_child_run_per_candidate_and_marks_the_best(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3], "min_samples_leaf": [1, 5]},
                          cv=3)
    assert search.fit(X, y) is search
    (parent,) = _runs(autologged)
    children = _runs(autologged, parent.id)
    assert len(children) == 6
    best = [c for c in children if c.tags["autolog.best"] == "true"]
    assert len(best) == 1 and best[0].tags["autolog.candidate"] == str(search.best_index_)
    assert parent.tags["autolog.best_run"] == best[0].id
    results = search.cv_results_
    for child in children:
        i = int(child.tags["autolog.candidate"])
        assert child.params == {k: str(v) for k, v in results["params"][i].items()}
        assert child.metrics["mean_test_score"].value == pytest.approx(results["mean_test_score"][i])
        assert child.metrics["split2_test_score"].value == pytest.approx(results["split2_test_score"][i])
    assert parent.metrics["best_cv_score"].value == pytest.approx(search.best_score_)
    models = autologged.list_models()
    assert sorted(m.name for m in models) == ["GridSearchCV", "best_estimator"]  # no model per fold
    best_model = next(m for m in models if m.name == "best_estimator")
    assert best_model.run_id == best[0].id


def test_randomized_search_keeps_the_best_candidates_only(store: Store, iris_xy) -> None:
    X, y = iris_xy
    with mlkeep.sklearn.autolog(store=store, max_tuning_runs=2):
        RandomizedSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]}, n_iter=4, cv=3,
                           random_state=0).fit(X, y)
    (parent,) = _runs(store)
    children = _runs(store, parent.id)
    assert len(children) == 2
    assert {c.metrics["rank_test_score"].value for c in children} <= {1.0, 2.0}


def test_predict_and_metric_calls_log_prediction_and_evaluation(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    est = LogisticRegression(max_iter=500).fit(X, y)
    pred = est.predict(X)
    accuracy = metrics.accuracy_score(y, pred)
    f1 = metrics.f1_score(y, pred, average="macro")
    mlkeep.sklearn.flush()
    model = autologged.list_models()[0]
    (prediction,) = predictions_.list_predictions(autologged.db)
    assert prediction.model_id == model.id and prediction.num_rows == 150
    np.testing.assert_array_equal(autologged.load_predictions(prediction.id)["prediction"].to_numpy(), pred)
    first, second = predictions_.list_evaluations(autologged.db)
    assert first.prediction_id == prediction.id and first.model_id == model.id
    assert first.scores["accuracy"] == pytest.approx(accuracy)
    assert first.scores["f1_macro"] == pytest.approx(f1)
    untracked = pred.copy()  # a copy is not the prediction: metric calls on it log nothing
    assert first.scores["precision_weighted"] == pytest.approx(
        metrics.precision_score(y, untracked, average="weighted"))
    assert first.scores["recall_class_1"] == pytest.approx(metrics.recall_score(y, untracked, average=None)[1])
    assert first.confusion_matrix == metrics.confusion_matrix(y, untracked).tolist()
    assert first.class_labels == ["0", "1", "2"]
    assert second.scores == {"f1_score(average=macro)": pytest.approx(f1)}
    metrics.accuracy_score(y, pred)  # the same prediction and labels again: nothing new
    mlkeep.sklearn.flush()
    assert len(predictions_.list_evaluations(autologged.db)) == 2
    down = autologged.lineage(model.id, direction="down")
    assert {n.id for n in down.of_kind("prediction")} == {prediction.id}


def test_predict_proba_views_are_recognised(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    est = LogisticRegression(max_iter=500).fit(X, y)
    proba = est.predict_proba(X)
    value = metrics.roc_auc_score(y, proba, multi_class="ovr")
    mlkeep.sklearn.flush()
    (evaluation,) = predictions_.list_evaluations(autologged.db)
    assert evaluation.scores == {"roc_auc_score(multi_class=ovr)": pytest.approx(value)}


def test_score_logs_an_evaluation_with_its_prediction(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
    value = pipe.score(X, y)
    mlkeep.sklearn.flush()
    (evaluation,) = predictions_.list_evaluations(autologged.db)
    assert evaluation.scores["score"] == pytest.approx(value) == pytest.approx(evaluation.scores["accuracy"])
    assert evaluation.prediction_id is not None


def test_regression_evaluation_on_diabetes(autologged: Store) -> None:
    X, y = load_diabetes(return_X_y=True)
    est = Ridge(alpha=0.5).fit(X, y)
    (run,) = _runs(autologged)
    pred = est.predict(X)
    mse = metrics.mean_squared_error(y, pred)
    mlkeep.sklearn.flush()
    (evaluation,) = predictions_.list_evaluations(autologged.db)
    assert evaluation.scores["mse"] == pytest.approx(mse)
    assert evaluation.scores["mae"] == pytest.approx(metrics.mean_absolute_error(y, pred.copy()))
    assert evaluation.scores["r2"] == pytest.approx(metrics.r2_score(y, pred.copy()))
    assert run.metrics["training_r2"].value == pytest.approx(evaluation.scores["r2"])
    assert evaluation.confusion_matrix is None


def test_fits_inside_an_active_run_use_it_and_mark_user_params(store: Store, iris_xy) -> None:
    X, y = iris_xy
    with mlkeep.sklearn.autolog(store=store), store.start_run("mine", name="by hand") as run:
        run.log_param("C", 2.0)
        LogisticRegression(C=2.0, max_iter=300).fit(X, y)
    (only,) = store.search_runs("")
    assert only.id == run.id and only.name == "by hand"
    (model,) = store.list_models(run.id)
    hyper = {h.name: h for h in model.hyperparameters}
    assert hyper["C"].tracked_by_user is True and hyper["max_iter"].tracked_by_user is False


def test_the_context_manager_undoes_the_patching(store: Store, iris_xy) -> None:
    from sklearn.base import BaseEstimator as Base

    X, y = iris_xy
    original_fit, original_accuracy = LogisticRegression.fit, metrics.accuracy_score
    with mlkeep.sklearn.autolog(store=store) as handle:
        assert handle.enabled and LogisticRegression.fit is not original_fit
    assert LogisticRegression.fit is original_fit and metrics.accuracy_score is original_accuracy
    assert "__init_subclass__" not in Base.__dict__
    LogisticRegression(max_iter=300).fit(X, y)
    assert store.search_runs("") == []


@pytest.mark.filterwarnings("ignore:mlkeep autologging skipped model.serialized")
def test_estimators_defined_after_autolog_are_tracked(autologged: Store, iris_xy) -> None:
    class Majority(ClassifierMixin, BaseEstimator):
        def __init__(self, bias: int = 0) -> None:
            self.bias = bias

        def fit(self, X, y):  # type: ignore[no-untyped-def]
            self.classes_, counts = np.unique(y, return_counts=True)
            self.label_ = self.classes_[np.argmax(counts)]
            return self

        def predict(self, X):  # type: ignore[no-untyped-def]
            return np.full(len(X), self.label_)

    X, y = iris_xy
    Majority(bias=1).fit(X, y)
    mlkeep.sklearn.flush()
    (model,) = autologged.list_models()
    assert model.learning_algorithm.endswith("Majority")
    assert {h.name: h.non_default for h in model.hyperparameters} == {"bias": True}


class _Unpicklable(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):  # type: ignore[no-untyped-def]
        self.fn_ = lambda v: v  # a lambda: pickle refuses it
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):  # type: ignore[no-untyped-def]
        return np.full(len(X), self.classes_[0])


class _Broken(BaseEstimator):
    def fit(self, X, y=None):  # type: ignore[no-untyped-def]
        raise ValueError("bad input, from the estimator itself")


class _NoParams(BaseEstimator):
    def get_params(self, deep: bool = True):  # type: ignore[no-untyped-def]
        raise RuntimeError("no params here")

    def fit(self, X, y=None):  # type: ignore[no-untyped-def]
        self.fitted_ = True
        return self


def test_what_cannot_be_tracked_is_skipped_with_a_warning_and_a_tag(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    est = _Unpicklable()
    with pytest.warns(AutologWarning, match="model.serialized"):
        assert est.fit(X, y) is est
    (run,) = _runs(autologged)
    assert "autolog.skipped.model.serialized" in run.tags
    (model,) = autologged.list_models(run.id)
    assert model.object is None and model.trained_on_dataset_id is not None  # described all the same

    with pytest.warns(AutologWarning, match="dataset"):
        from scipy import sparse

        odd = DecisionTreeClassifier(random_state=0).fit(sparse.csr_matrix(X), y)  # fine for sklearn
        mlkeep.sklearn.flush()  # recorded in the background: its warning is issued here
    assert (odd.predict(X) == y).mean() > 0.9

    no_params = _NoParams()
    with pytest.warns(AutologWarning, match="hyperparameters"):
        assert no_params.fit(X) is no_params
        mlkeep.sklearn.flush()


def test_autolog_never_changes_what_fit_raises(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    with pytest.raises(ValueError, match="from the estimator itself"):
        _Broken().fit(X, y)
    (run,) = _runs(autologged)
    assert run.status == "FAILED" and "from the estimator itself" in (run.failure or "")


def test_autologged_documents_validate_against_the_schema(autologged: Store, iris_xy, tmp_path: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"no schema at {SCHEMA}")
    X, y = iris_xy
    est = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
    metrics.accuracy_score(y, est.predict(X))
    GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 3]}, cv=3).fit(X, y)
    Ridge().fit(*load_diabetes(return_X_y=True))
    mlkeep.sklearn.flush()
    counts = autologged.export(tmp_path, schema=SCHEMA)
    assert counts["models"] == 4 and counts["evaluations"] == 1 and counts["predictions"] == 1


def test_import_mlkeep_loads_no_framework() -> None:
    import subprocess
    import sys

    code = ("import sys, mlkeep, mlkeep.sklearn, mlkeep.torch; "
            "print(sorted(m for m in ('sklearn', 'torch', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_warnings_do_not_leak_when_everything_works(autologged: Store, iris_xy) -> None:
    X, y = iris_xy
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutologWarning)
        LogisticRegression(max_iter=500).fit(X, y).predict(X)
        mlkeep.sklearn.flush()
