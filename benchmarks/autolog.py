"""Autologging overhead: scikit-learn `fit` plain, with `mlkeep.sklearn.autolog()`, with `mlflow.sklearn.autolog()`.

    .venv-bench/bin/python benchmarks/autolog.py            # several minutes (the GridSearchCV dominates)
    .venv-bench/bin/python benchmarks/autolog.py --quick    # fewer repetitions

Three fits on the digits data: a RandomForest (100 trees), a Pipeline of
StandardScaler + PCA + LogisticRegression, and a 20-candidate GridSearchCV
(3-fold, a small tree). Each is timed plain, under mlkeep's autolog (a SQLite +
folder store, a run per fit, everything it records: dataset, model, params,
training scores, child runs) and under MLflow's autolog (its SQLite store, its
defaults). Overhead = median(tracked) − median(plain) over repetitions, fits
interleaved so machine noise hits all alike. MLflow gets fewer repetitions: its
overhead is tens of seconds per fit, far above the noise.

MLflow lives only in `.venv-bench`. Each library is set up once (store
created, first run made) before timing, so import and schema creation are not
charged to a fit.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
warnings.filterwarnings("ignore")


def estimators() -> dict[str, Callable[[], Any]]:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    return {
        "RandomForest(100)": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
        "Pipeline(scaler+PCA+logreg)": lambda: Pipeline([
            ("scale", StandardScaler()), ("pca", PCA(n_components=30, random_state=0)),
            ("clf", LogisticRegression(max_iter=300)),
        ]),
        "GridSearchCV(20 candidates)": lambda: GridSearchCV(
            DecisionTreeClassifier(random_state=0),
            {"max_depth": [2, 4, 6, 8, 10], "min_samples_leaf": [1, 2, 4, 8]}, cv=3,
        ),
    }


def timed(make: Callable[[], Any], X: Any, y: Any) -> float:
    est = make()
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions instead of 9 (MLflow: 1 instead of 3)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow (when it is not installed)")
    args = parser.parse_args()
    reps = 5 if args.quick else 9
    # MLflow's overhead is tens of seconds a fit: a few repetitions measure it well enough
    mlflow_reps = 1 if args.quick else 3

    import sklearn
    from sklearn.datasets import load_digits

    import mlkeep
    import mlkeep.sklearn

    X, y = load_digits(return_X_y=True)
    tmp = tempfile.mkdtemp(prefix="mlkeep-autolog-bench-")
    store = mlkeep.init(os.path.join(tmp, "mlkeep"))
    mlflow = None
    if not args.no_mlflow:
        import mlflow as _mlflow

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        mlflow = _mlflow
        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
        # artifacts into the temporary folder too (by default MLflow writes ./mlruns in the working directory)
        mlflow.create_experiment("bench", artifact_location=os.path.join(tmp, "mlflow-artifacts"))
        mlflow.set_experiment("bench")
        with mlflow.start_run():
            mlflow.log_param("warmup", 1)

    # warm both: first run (environment capture, statement compilation), first fit of each kind
    with mlkeep.sklearn.autolog(store=store, experiment="warmup"):
        from sklearn.linear_model import LogisticRegression

        LogisticRegression(max_iter=50).fit(X[:200], y[:200])

    print(f"scikit-learn {sklearn.__version__}, mlkeep {mlkeep.__version__}"
          + (f", mlflow {mlflow.__version__}" if mlflow else "") + f"; digits {X.shape}; {reps} repetitions"
          + (f" ({mlflow_reps} for MLflow)" if mlflow else ""))
    print(f"{'fit':30s} {'plain s':>9s} {'mlkeep +ms':>11s} {'mlkeep %':>9s} {'mlflow +ms':>11s} "
          f"{'mlflow %':>9s} {'mlflow/mlkeep':>14s}")
    for name, make in estimators().items():
        plain, ours, theirs = [], [], []
        for rep in range(reps):
            plain.append(timed(make, X, y))
            with mlkeep.sklearn.autolog(store=store, experiment="bench"):
                ours.append(timed(make, X, y))
            if mlflow is not None and rep < mlflow_reps:
                mlflow.sklearn.autolog(silent=True)
                try:
                    theirs.append(timed(make, X, y))
                finally:
                    mlflow.sklearn.autolog(disable=True)
        base = statistics.median(plain)
        d_ours = statistics.median(ours) - base
        line = f"{name:30s} {base:9.3f} {1000 * d_ours:11.1f} {100 * d_ours / base:8.1f}%"
        if theirs:
            d_theirs = statistics.median(theirs) - base
            ratio = d_theirs / d_ours if d_ours > 0 else float("inf")
            line += f" {1000 * d_theirs:11.1f} {100 * d_theirs / base:8.1f}% {ratio:13.1f}x"
        print(line, flush=True)
    print(f"(stores in {tmp})", file=sys.stderr)


if __name__ == "__main__":
    main()
