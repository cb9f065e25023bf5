"""mlkeep end to end on the embedded default store (SQLite + a local folder).

Trains a few scikit-learn models on the bundled digits dataset, tracks
everything (datasets, params, metrics over steps, models, predictions,
evaluations), then asks the questions mlkeep exists to answer: which run was
best (search), what a model was trained on (lineage up), and which models a
faulty dataset reached (lineage down). Run it with `make demo`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mlkeep
from mlkeep.errors import StoreNotFoundError

HERE = Path(os.environ.get("MLKEEP_DEMO_DIR", "demo-store")).resolve()


def open_store() -> mlkeep.Store:
    try:
        return mlkeep.open(HERE)
    except StoreNotFoundError:
        return mlkeep.init(HERE)


def main() -> int:
    store = open_store()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    candidates = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0),
        "svm": make_pipeline(StandardScaler(), SVC(C=3.0, gamma="scale")),
    }

    print(f"mlkeep {mlkeep.__version__} demo, store at {store.uri}\n")
    with store.start_run("digits-demo", name="prepare-data") as prep:
        raw = prep.log_dataset(X, name="digits", targets=y)
        train = prep.log_dataset(X_train, name="digits-train", targets=y_train, derived_from=raw)
        test = prep.log_dataset(X_test, name="digits-test", targets=y_test, derived_from=raw)
    print(f"datasets: digits {raw.num_rows} rows -> train {train.num_rows}, test {test.num_rows}")

    for algo, estimator in candidates.items():
        with store.start_run("digits-demo", name=algo) as run:
            run.log_params({"model": algo, **_flat_params(estimator)})
            run.set_tag("team", "vision")
            for fraction in (0.25, 0.5, 1.0):  # a learning curve, logged as a metric series
                n = int(len(X_train) * fraction)
                estimator.fit(X_train[:n], y_train[:n])
                run.log_metric("val_accuracy", accuracy_score(y_test, estimator.predict(X_test)))
            model = run.log_model(estimator, name=f"digits-{algo}", trained_on=train)
            predicted = estimator.predict(X_test)
            prediction = run.log_predictions(model, test, predicted)
            scores = {"accuracy": accuracy_score(y_test, predicted), "f1_macro": f1_score(y_test, predicted, average="macro")}
            run.log_metrics(scores)
            run.log_evaluation(model, test, scores, confusion_matrix=confusion_matrix(y_test, predicted),
                               class_labels=list(range(10)), prediction=prediction)
        print(f"run {run.id[:8]} {algo:7s} accuracy {scores['accuracy']:.4f}  model {model.id[:8]}")

    query = "metrics.accuracy > 0.9 and attributes.status = 'FINISHED'"
    best = store.search_runs(query, order_by="metrics.accuracy DESC", limit=3, experiments=["digits-demo"])
    print(f"\nsearch: {query}  (best first)")
    for r in best:
        print(f"  {r.id[:8]} {r.name:7s} accuracy={r.metrics['accuracy'].value:.4f} model={r.params['model']}")

    top_model = store.list_models(best[0].id)[0]
    up = store.lineage(top_model.id, direction="up")
    print(f"\nlineage up from model {top_model.name}: trained on "
          + ", ".join(f"{n.name} (v{store.get_dataset(n.id).version})" for n in up.of_kind("dataset")))
    down = store.lineage(raw.id, direction="down")
    print(f"lineage down from dataset 'digits': {len(down.of_kind('model'))} models, "
          f"{len(down.of_kind('evaluation'))} evaluations would be affected if it were faulty")

    reloaded = store.load_model(top_model.id)
    same = np.array_equal(reloaded.predict(X_test), store.load_predictions(
        store.lineage(top_model.id, "down", depth=1).of_kind("prediction")[0].id)["prediction"].to_numpy())
    print(f"reloaded {top_model.name}: predictions identical to the logged ones: {same}")

    print("\nlook around:")
    print(f"  .venv/bin/mlkeep --store {HERE} runs search \"metrics.accuracy > 0.95\" --order-by 'metrics.accuracy DESC'")
    print(f"  .venv/bin/mlkeep --store {HERE} runs compare {' '.join(r.id for r in best[:2])}")
    print(f"  .venv/bin/mlkeep --store {HERE} lineage {raw.id} --down")
    print(f"  .venv/bin/mlkeep --store {HERE} export --format ml-experiments-schema exported/")
    return 0


def _flat_params(estimator: object) -> dict[str, object]:
    params = estimator.get_params(deep=True)  # type: ignore[attr-defined]
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool)) or v is None}


if __name__ == "__main__":
    sys.exit(main())
