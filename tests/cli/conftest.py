"""Fixtures for the CLI tests: a real folder store with scikit-learn runs on iris, and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cli_support import IrisStore, Result, invoke

import mlkeep


@pytest.fixture(scope="session")
def iris_store(tmp_path_factory: pytest.TempPathFactory) -> IrisStore:
    """A store with two finished iris runs (random forest, logistic regression) and one failed run."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = tmp_path_factory.mktemp("iris-store")
    out = IrisStore(path=root)
    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    notes = root / "notes.txt"
    notes.write_text("trained on iris\n")
    candidates = {
        "rf": (RandomForestClassifier(n_estimators=20, max_depth=3, random_state=0), {"model": "rf", "n_estimators": 20, "max_depth": 3}),
        "logreg": (make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=500)), {"model": "logreg", "C": 0.5}),
    }
    with mlkeep.init(root) as store:
        for name, (model, params) in candidates.items():
            with store.start_run("iris", name=name) as run:
                run.log_params(params)
                run.set_tag("team", "cli")
                dataset = run.log_dataset(X_train, name="iris", targets=y_train)
                model.fit(X_train, y_train)
                for epoch in range(3):  # a series, so history and min/max have something to show
                    run.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
                acc = float(model.score(X_test, y_test))
                run.log_metric("acc", acc)
                run.log_artifact(notes)
                run.log_artifact(notes, artifact_path="docs")
                logged = run.log_model(model, name=name, trained_on=dataset)
                out.models[name] = logged.id
                test_set = run.log_dataset(X_test, name="iris-test", targets=y_test)
                out.evaluations[name] = run.log_evaluation(logged, test_set, {"accuracy": acc}).id
            out.runs[name] = run.id
            out.dataset = dataset.id
        with pytest.raises(ValueError):
            with store.start_run("iris", name="broken") as run:
                run.log_param("model", "svm")
                raise ValueError("features and labels disagree")
        out.failed_run = run.id
    return out


@pytest.fixture
def cli(iris_store: IrisStore, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `mlkeep --store <iris store> ARGS...` in process; wide terminal so tables are not truncated."""
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    return lambda *args, **kw: invoke("--store", str(iris_store.path), *args, **kw)
