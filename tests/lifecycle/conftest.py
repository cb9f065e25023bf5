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


@dataclass
class Monitored:
    store: Store
    model: Any  # the fitted estimator
    X_live: Any  # held-out rows: the same distribution as the training data
    y_live: Any
    accuracy: float  # offline, on the held-out rows


@pytest.fixture
def wine_served(store: Store) -> Monitored:
    """A wine classifier trained on half of the bundled data, evaluated and registered as wine-clf@production."""
    return train_wine(store)


@pytest.fixture
def wine_folder(folder_store: Store) -> Monitored:
    """`wine_served` in a store on disk, for the CLI."""
    return train_wine(folder_store)


def train_wine(store: Store) -> Monitored:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_live, y_train, y_live = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    with store.start_run("wine") as run:
        ds = run.log_dataset(X_train, "wine-train", targets=y_train)
        est = RandomForestClassifier(n_estimators=30, random_state=0).fit(X_train, y_train)
        m = run.log_model(est, "wine-forest", trained_on=ds)
        accuracy = float((est.predict(X_live) == y_live).mean())
        run.log_evaluation(m, run.log_dataset(X_live, "wine-test"), {"accuracy": accuracy}, name="held-out")
    store.registry.register("wine-clf", m.id)
    store.registry.set_alias("wine-clf", "production", 1)
    return Monitored(store, est, X_live.reset_index(drop=True), y_live.reset_index(drop=True), accuracy)

