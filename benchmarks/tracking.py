"""Tracking speed: mlkeep beside MLflow (SQLite store), same machine, same script.

    .venv-bench/bin/python benchmarks/tracking.py            # about 3-5 minutes
    .venv-bench/bin/python benchmarks/tracking.py --quick    # about 1-2 minutes

MLflow is a benchmark-only dependency: it lives in `.venv-bench` (made with
`python3 -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'`),
never in the project's `.venv`.

What is measured (each figure is the median of several repetitions, because
machines here are noisy; both stores live in one temporary folder):

1. `log_metric` one call at a time. MLflow: `MlflowClient.log_metric` inside a
   run. mlkeep: `run.log_metric`, which buffers, so the timing includes ending
   the run (the final flush): buffering is not allowed to hide the writes.
2. Values/s batched. MLflow: `log_batch` with 1,000 metrics per call. mlkeep:
   `run.log_metrics` with 1,000 metrics per step, ending the run included.
3. Runs/s: start, 10 params, 5 metrics, end.
4. `search_runs` over 10,000 runs of one experiment: a filter on a metric and
   a param, ordered by a metric, limit 100. mlkeep's runs are made through its
   API. MLflow's are written straight into its tables (the rows `create_run` +
   `log_batch` + `update_run_info` write), because its API makes ~40 runs/s and
   10,000 would take minutes; both stores get the same values, and the two
   searches must return the same 100 runs in the same order.
5. `import mlkeep` / `import mlflow` in fresh interpreters, and, as a figure
   of its own, a fresh interpreter's `import mlkeep; open; first run`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

PARAMS = 10
METRICS = 5
SEARCH_RUNS = 10_000
SEARCH_FILTER = "metrics.acc > 0.9 and params.model = 'rf'"
SEARCH_ORDER = "metrics.loss ASC"
SEARCH_LIMIT = 100
MODELS = ("rf", "svm", "knn", "lr")


@dataclass
class Sizes:
    reps: int
    one_mlkeep: int
    one_mlflow: int
    batch_steps_mlkeep: int
    batch_calls_mlflow: int
    runs_mlkeep: int
    runs_mlflow: int
    search_reps: int
    import_reps: int


FULL = Sizes(reps=5, one_mlkeep=100_000, one_mlflow=1_000, batch_steps_mlkeep=200, batch_calls_mlflow=20,
             runs_mlkeep=500, runs_mlflow=60, search_reps=15, import_reps=7)
QUICK = Sizes(reps=3, one_mlkeep=30_000, one_mlflow=300, batch_steps_mlkeep=60, batch_calls_mlflow=6,
              runs_mlkeep=200, runs_mlflow=25, search_reps=7, import_reps=5)


@dataclass
class Row:
    name: str
    unit: str
    ours: float
    anchor: float | None
    goal: str
    met: bool | None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.anchor is None or not self.ours or not self.anchor:
            return None
        return self.ours / self.anchor if self.higher_is_better else self.anchor / self.ours


def median_rate(reps: int, once: Callable[[], tuple[int, float]]) -> float:
    """Median over `reps` of count/seconds, where `once()` returns (count, seconds)."""
    rates = []
    for _ in range(reps):
        n, seconds = once()
        rates.append(n / seconds)
    return statistics.median(rates)


def say(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


# -- run data shared by both stores ----------------------------------------------------------
def run_values(i: int) -> tuple[dict[str, str | int | float], dict[str, float]]:
    rnd = random.Random(i)
    params: dict[str, str | int | float] = {
        "model": rnd.choice(MODELS),
        "lr": round(10 ** rnd.uniform(-4, -1), 6),
        "depth": rnd.randint(2, 12),
        "n_estimators": rnd.choice((50, 100, 200, 400)),
        "seed": i,
        "optimizer": rnd.choice(("adam", "sgd")),
        "batch_size": rnd.choice((32, 64, 128)),
        "dropout": round(rnd.uniform(0, 0.5), 3),
        "weight_decay": round(10 ** rnd.uniform(-6, -2), 8),
        "scheduler": rnd.choice(("cosine", "step", "none")),
    }
    acc = rnd.uniform(0.5, 1.0)
    metrics = {"acc": acc, "loss": rnd.uniform(0.01, 2.0), "f1": acc - rnd.uniform(0, 0.05),
               "precision": rnd.uniform(0.5, 1.0), "recall": rnd.uniform(0.5, 1.0)}
    return params, metrics


# -- mlkeep -----------------------------------------------------------------------------------
class Mlkeep:
    def __init__(self, folder: Path) -> None:
        import mlkeep

        self.store = mlkeep.init(folder)
        with self.store.start_run("warmup") as run:  # environment capture, statement compilation
            run.log_params({"a": 1})
            run.log_metric("x", 1.0)

    def one_at_a_time(self, n: int) -> tuple[int, float]:
        run = self.store.start_run("one")
        t = time.perf_counter()
        for i in range(n):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.end()
        return n, time.perf_counter() - t

    def batched(self, steps: int) -> tuple[int, float]:
        batches = [{f"m{j}": j * 0.001 + s for j in range(1000)} for s in range(steps)]
        run = self.store.start_run("batched")
        t = time.perf_counter()
        for s, values in enumerate(batches):
            run.log_metrics(values, step=s)
        run.end()
        return steps * 1000, time.perf_counter() - t

    def runs(self, n: int, experiment: str = "runs", first: int = 0) -> tuple[int, float]:
        data = [run_values(first + i) for i in range(n)]
        t = time.perf_counter()
        for i, (params, metrics) in enumerate(data):
            with self.store.start_run(experiment, name=f"run-{first + i:05d}") as run:
                run.log_params(params)
                run.log_metrics(metrics)
        return n, time.perf_counter() - t

    def search(self) -> tuple[list[str], float]:
        t = time.perf_counter()
        found = self.store.search_runs(SEARCH_FILTER, order_by=SEARCH_ORDER, limit=SEARCH_LIMIT,
                                       experiments=["search"])
        return [r.name for r in found], time.perf_counter() - t


# -- MLflow -------------------------------------------------------------------------------------
class Mlflow:
    def __init__(self, folder: Path) -> None:
        import logging

        import mlflow
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.artifacts = (folder / "mlartifacts").as_uri()
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        self.mlflow = mlflow
        self.experiments: dict[str, str] = {}
        run = self.client.create_run(self.experiment("warmup"))
        self.client.log_param(run.info.run_id, "a", 1)
        self.client.log_metric(run.info.run_id, "x", 1.0)
        self.client.set_terminated(run.info.run_id)

    def experiment(self, name: str) -> str:
        if name not in self.experiments:
            self.experiments[name] = self.client.create_experiment(name, artifact_location=self.artifacts)
        return self.experiments[name]

    def one_at_a_time(self, n: int) -> tuple[int, float]:
        run_id = self.client.create_run(self.experiment("one")).info.run_id
        t = time.perf_counter()
        for i in range(n):
            self.client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
        self.client.set_terminated(run_id)
        return n, time.perf_counter() - t

    def batched(self, calls: int) -> tuple[int, float]:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batches = [[Metric(f"m{j}", j * 0.001 + s, now, s) for j in range(1000)] for s in range(calls)]
        run_id = self.client.create_run(self.experiment("batched")).info.run_id
        t = time.perf_counter()
        for batch in batches:
            self.client.log_batch(run_id, metrics=batch)
        self.client.set_terminated(run_id)
        return calls * 1000, time.perf_counter() - t

    def runs(self, n: int) -> tuple[int, float]:
        mlflow = self.mlflow
        exp = self.experiment("runs")
        data = [run_values(i) for i in range(n)]
        t = time.perf_counter()
        for i, (params, metrics) in enumerate(data):
            with mlflow.start_run(experiment_id=exp, run_name=f"run-{i:05d}"):
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
        return n, time.perf_counter() - t

    def fill_search(self, n: int) -> float:
        """Write `n` finished runs straight into MLflow's tables; returns seconds taken."""
        import uuid

        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from sqlalchemy import create_engine, insert

        exp = int(self.experiment("search"))
        t = time.perf_counter()
        now = int(time.time() * 1000)
        runs, params, tags, metrics = [], [], [], []
        for i in range(n):
            run_id = uuid.uuid4().hex
            name = f"run-{i:05d}"
            runs.append({"run_uuid": run_id, "name": name, "source_type": "LOCAL", "source_name": "",
                         "entry_point_name": "", "user_id": "bench", "status": "FINISHED",
                         "start_time": now + i, "end_time": now + i + 1, "source_version": "",
                         "lifecycle_stage": "active", "artifact_uri": f"{self.artifacts}/{run_id}/artifacts",
                         "experiment_id": exp})
            tags += [{"run_uuid": run_id, "key": "mlflow.runName", "value": name},
                     {"run_uuid": run_id, "key": "mlflow.user", "value": "bench"}]
            p, m = run_values(i)
            params += [{"run_uuid": run_id, "key": k, "value": str(v)} for k, v in p.items()]
            metrics += [{"run_uuid": run_id, "key": k, "value": v, "timestamp": now + i, "step": 0, "is_nan": False}
                        for k, v in m.items()]
        engine = create_engine(self.uri)
        with engine.begin() as conn:
            conn.execute(insert(SqlRun.__table__), runs)
            conn.execute(insert(SqlTag.__table__), tags)
            conn.execute(insert(SqlParam.__table__), params)
            conn.execute(insert(SqlMetric.__table__), metrics)
            conn.execute(insert(SqlLatestMetric.__table__), metrics)
        engine.dispose()
        return time.perf_counter() - t

    def search(self) -> tuple[list[str], float]:
        t = time.perf_counter()
        found = self.client.search_runs([self.experiment("search")], filter_string=SEARCH_FILTER,
                                        order_by=[SEARCH_ORDER], max_results=SEARCH_LIMIT)
        return [r.info.run_name for r in found], time.perf_counter() - t


# -- imports in fresh interpreters ------------------------------------------------------------
IMPORT = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"
FIRST_RUN = """
import time; t0 = time.perf_counter()
import mlkeep; t1 = time.perf_counter()
store = mlkeep.open({folder!r}); t2 = time.perf_counter()
with store.start_run("first") as run:
    run.log_param("p", 1); run.log_metric("m", 1.0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t3 - t0)
"""


def fresh(code: str, reps: int) -> list[float]:
    """Median of each number `code` prints, over `reps` fresh interpreters."""
    outs = []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        outs.append([float(x) for x in out.stdout.split()])
    return [statistics.median(col) for col in zip(*outs)]


# -- the table ----------------------------------------------------------------------------------
def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit == "ms":
        return f"{x:,.1f} ms"
    if unit == "s":
        return f"{x:.3f} s"
    return f"{x:,.0f}/s"


def table(rows: list[Row]) -> str:
    head = ("benchmark", "mlkeep", "MLflow", "ratio", "goal", "met")
    body = [(r.name, fmt(r.ours, r.unit), fmt(r.anchor, r.unit), "-" if r.ratio is None else f"{r.ratio:,.1f}x",
             r.goal, {True: "yes", False: "NO", None: "-"}[r.met]) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (~1-2 min)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary stores and print where")
    args = ap.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mlkeep-bench-"))
    try:
        import mlflow  # noqa: F401  (fail early with a clear message)
    except ImportError:
        sys.exit("MLflow is missing: run this with .venv-bench/bin/python (see the docstring).")
    rows: list[Row] = []
    say(f"stores in {tmp}")
    ours = Mlkeep(tmp / "mlkeep")
    theirs = Mlflow(tmp / "mlflow")

    say("1/5 log_metric one at a time")
    a = median_rate(sizes.reps, lambda: ours.one_at_a_time(sizes.one_mlkeep))
    b = median_rate(sizes.reps, lambda: theirs.one_at_a_time(sizes.one_mlflow))
    rows.append(Row("log_metric, one call at a time", "/s", a, b, ">= 50x", a >= 50 * b))

    say("2/5 batched values")
    a = median_rate(sizes.reps, lambda: ours.batched(sizes.batch_steps_mlkeep))
    b = median_rate(sizes.reps, lambda: theirs.batched(sizes.batch_calls_mlflow))
    rows.append(Row("values, batched (1,000 per call)", "/s", a, b, ">= 10x", a >= 10 * b))

    say("3/5 runs created (10 params, 5 metrics)")
    first = [0]

    def ours_runs() -> tuple[int, float]:
        first[0] += sizes.runs_mlkeep
        return ours.runs(sizes.runs_mlkeep, first=first[0])

    a = median_rate(sizes.reps, ours_runs)
    b = median_rate(sizes.reps, lambda: theirs.runs(sizes.runs_mlflow))
    rows.append(Row("runs created", "/s", a, b, ">= 10x", a >= 10 * b))

    say(f"4/5 search over {SEARCH_RUNS:,} runs (making them)")
    n, seconds = ours.runs(SEARCH_RUNS, experiment="search")
    say(f"    mlkeep: {SEARCH_RUNS:,} runs through the API at {n / seconds:,.0f}/s")
    seconds = theirs.fill_search(SEARCH_RUNS)
    say(f"    MLflow: {SEARCH_RUNS:,} runs written into its tables in {seconds:.1f} s")
    ours.search()
    theirs.search()  # first queries warm caches on both sides
    found_a: list[str] = []
    found_b: list[str] = []
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(sizes.search_reps):
        found_a, s = ours.search()
        times_a.append(s * 1000)
        found_b, s = theirs.search()
        times_b.append(s * 1000)
    same = found_a == found_b
    a, b = statistics.median(times_a), statistics.median(times_b)
    rows.append(Row(f"search_runs, {SEARCH_RUNS:,} runs, limit {SEARCH_LIMIT}", "ms", a, b,
                    "<= 50 ms, >= 10x", a <= 50 and b / a >= 10, higher_is_better=False))

    say("5/5 imports in fresh interpreters")
    (a,) = fresh(IMPORT.format("mlkeep"), sizes.import_reps)
    (b,) = fresh(IMPORT.format("mlflow"), sizes.import_reps)
    rows.append(Row("import", "s", a, b, "<= 0.3 s", a <= 0.3, higher_is_better=False))
    imp, opened, first_run, total = fresh(FIRST_RUN.format(folder=str(tmp / "mlkeep")), sizes.import_reps)
    rows.append(Row("import + open + first run (fresh process)", "s", total, None, "-", None, False))

    print()
    print(f"mlkeep tracking benchmark{' (--quick)' if args.quick else ''}: median of {sizes.reps} repetitions "
          f"({sizes.search_reps} for search, {sizes.import_reps} for imports)")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, MLflow {mlflow_version()} on SQLite, "
          f"mlkeep on SQLite (WAL, synchronous=NORMAL)")
    print()
    print(table(rows))
    print()
    print(f"sizes per repetition: log_metric {sizes.one_mlkeep:,} calls (mlkeep) / {sizes.one_mlflow:,} (MLflow); "
          f"batched {sizes.batch_steps_mlkeep * 1000:,} values / {sizes.batch_calls_mlflow * 1000:,}; "
          f"runs {sizes.runs_mlkeep} / {sizes.runs_mlflow}")
    print(f"search: {SEARCH_FILTER!r}, order by {SEARCH_ORDER!r}, limit {SEARCH_LIMIT}; "
          f"both returned the same {len(found_a)} runs in the same order: {'yes' if same else 'NO'}")
    print(f"mlkeep fresh process: import {imp:.3f} s, open {opened:.3f} s, first run {first_run:.3f} s")
    print(f"(mlkeep times include ending each run, i.e. writing every buffered value; "
          f"benchmark took {time.perf_counter() - started:.0f} s)")
    if args.keep:
        print(f"stores kept in {tmp}")
    else:
        ours.store.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def mlflow_version() -> str:
    import mlflow

    return str(mlflow.__version__)


if __name__ == "__main__":
    main()
