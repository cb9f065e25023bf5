"""Registered models on real data: iris and digits classifiers logged in runs, a torch net committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mlkeep.store import Store


@dataclass
class Trained:
    store: Store
    dataset: Any
    models: list[Any]  # logged Model entities
    fitted: list[Any]  # the estimators
    X: Any
    y: Any


@pytest.fixture
def iris_models(store: Store, iris: Any) -> Trained:
    """Two logistic regressions on iris (a frame), logged with their dataset, evaluation and params."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, confusion_matrix

    X, y = iris
    models, fitted = [], []
    for c in (0.05, 10.0):
        with store.start_run("iris") as run:
            ds = run.log_dataset(X, "iris", targets=y)
            est = LogisticRegression(C=c, max_iter=1000).fit(X, y)
            run.log_params({"C": c})
            pred = est.predict(X)
            run.log_metric("accuracy", float(accuracy_score(y, pred)))
            m = run.log_model(est, "iris-logreg", trained_on=ds)
            run.log_evaluation(m, ds, {"accuracy": accuracy_score(y, pred)}, confusion_matrix=confusion_matrix(y, pred),
                               class_labels=["setosa", "versicolor", "virginica"], name="train")
        models.append(m)
        fitted.append(est)
    return Trained(store, ds, models, fitted, X, y)
