"""Autologging overhead: scikit-learn `fit` plain, with `mlkeep.sklearn.autolog()`, with `mlflow.sklearn.autolog()`.

    .venv-bench/bin/python benchmarks/autolog.py            # several minutes (the GridSearchCV dominates)
    .venv-bench/bin/python benchmarks/autolog.py --quick    # fewer repetitions

Three fits on the digits data: a RandomForest (100 trees), a Pipeline of
StandardScaler + PCA + LogisticRegression, and a 20-candidate GridSearchCV
(3-fold, a small tree), plus a single small tree (a fit of tens of
milliseconds, for the "≤ 50 ms on any fit" goal). Each is timed plain, under
mlkeep's autolog (a SQLite + folder store, a run per fit, everything it records:
dataset, model, params, training scores, child runs) and under MLflow's autolog
(its SQLite store, its defaults). Overhead = median(tracked) − median(plain)
over repetitions, fits interleaved so machine noise hits all alike. MLflow gets
fewer repetitions: its overhead is seconds per fit, far above the noise.

mlkeep records in a background thread, so two figures are printed for it:
`fit` is what the caller waits for (the fit returns), `durable` adds
`mlkeep.sklearn.flush()` right after it, the time until every record is in the
store. The next fit starts only after that flush, so background work never
overlaps (and never slows) a fit being timed. MLflow is synchronous: its figure
is both at once. On a shared machine a difference of medians (`Δmedian`) swings
by more than mlkeep's whole overhead, so mlkeep's is also measured `direct`: the
tracked call's time minus the inner `fit`'s own time, which the wrapper records
as the run's `fit_duration_s`. The ratios use the direct figures.

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
        "DecisionTree (small fit)": lambda: DecisionTreeClassifier(max_depth=8, random_state=0),
    }


def timed(make: Callable[[], Any], X: Any, y: Any) -> float:
    est = make()
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start


def timed_mlkeep(make: Callable[[], Any], X: Any, y: Any, store: Any) -> tuple[float, float, float]:
    """(seconds until `fit` returns, until its records are durable, inside scikit-learn's own fit).

    The last is the run's `fit_duration_s`, timed around the original `fit` by the
    wrapper itself: the first two minus it are the overhead of this very call,
    free of the run-to-run noise a difference of medians carries.
    """
    import mlkeep.sklearn

    with mlkeep.sklearn.autolog(store=store, experiment="bench"):
        est = make()
        start = time.perf_counter()
        est.fit(X, y)
        returned = time.perf_counter()
        mlkeep.sklearn.flush()
        durable = time.perf_counter()
    tracked = mlkeep.sklearn.tracked_model(est)
    assert tracked is not None, "autologging recorded no model"
    inner = store.get_run(tracked.run_id).metrics["fit_duration_s"].value
    return returned - start, durable - start, inner


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
    print("overhead in ms and % of the plain fit; 'direct' = this call minus its own inner fit time, "
          "'Δmedian' = median(tracked) - median(plain)")
    print(f"{'':30s} {'':>8s} | {'mlkeep: fit returns':^26s} | {'mlkeep: durable':^26s} | {'mlflow':^17s} | "
          f"{'mlflow/mlkeep':^13s}")
    print(f"{'fit':30s} {'plain s':>8s} | {'direct':>8s}{'%':>8s}{'Δmedian':>10s} | {'direct':>8s}{'%':>8s}"
          f"{'Δmedian':>10s} | {'Δmedian':>9s}{'%':>8s} | {'fit':>6s}{'durable':>8s}")
    for name, make in estimators().items():
        plain, returned, durable, direct_fit, direct_durable, theirs = [], [], [], [], [], []
        for rep in range(reps):
            plain.append(timed(make, X, y))
            fit_s, durable_s, inner_s = timed_mlkeep(make, X, y, store)
            returned.append(fit_s)
            durable.append(durable_s)
            direct_fit.append(fit_s - inner_s)
            direct_durable.append(durable_s - inner_s)
            if mlflow is not None and rep < mlflow_reps:
                mlflow.sklearn.autolog(silent=True)
                try:
                    theirs.append(timed(make, X, y))
                finally:
                    mlflow.sklearn.autolog(disable=True)
        base = statistics.median(plain)
        d_fit, d_durable = statistics.median(direct_fit), statistics.median(direct_durable)
        line = (f"{name:30s} {base:8.3f} | {1000 * d_fit:8.1f}{100 * d_fit / base:7.1f}%"
                f"{1000 * (statistics.median(returned) - base):10.1f} | {1000 * d_durable:8.1f}"
                f"{100 * d_durable / base:7.1f}%{1000 * (statistics.median(durable) - base):10.1f} |")
        if theirs:
            d_theirs = statistics.median(theirs) - base
            line += (f" {1000 * d_theirs:9.0f}{100 * d_theirs / base:7.0f}% | "
                     f"{_ratio(d_theirs, d_fit):>6s}{_ratio(d_theirs, d_durable):>8s}")
        print(line, flush=True)
    print(f"(stores in {tmp})", file=sys.stderr)


def _ratio(theirs: float, ours: float) -> str:
    """theirs / ours; below the noise floor (ours ≤ 0) there is no meaningful ratio."""
    return f"{theirs / ours:.0f}x" if ours > 0 else "ours≈0"


if __name__ == "__main__":
    main()
