"""Eight writer processes at once: throughput, errors and lost values, mlkeep against MLflow.

Each writer loops for a fixed time: create a run, log `VALUES` metric values
one call at a time, end the run. It counts what each call acknowledged and
every exception it caught (then carries on). Afterwards the database is
counted: lost = acknowledged − stored. Systems measured side by side:

- mlkeep on SQLite (a folder store) and on PostgreSQL;
- MLflow's SQL tracking store on SQLite and on PostgreSQL (its own client,
  `MlflowClient`, one call per value as its docs show).

PostgreSQL is a throwaway cluster (tests/postgres_server.py) unless
`MLKEEP_BENCH_POSTGRES` names a server. Run with the benchmark venv, which
has MLflow:

    .venv-bench/bin/python benchmarks/concurrency.py [--seconds 10] [--writers 8] [--reps 1]

Machines here are noisy: quote the median of several `--reps`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
VALUES = 50
ROOT = Path(__file__).resolve().parents[1]


# -- writers (run in their own processes) -----------------------------------------------
def mlkeep_writer(database: str, objects: str, seconds: float, worker: int) -> dict[str, int]:
    import mlkeep

    store = mlkeep.open(database, objects=objects or None) if objects else mlkeep.open(database)
    runs = values = errors = 0
    start_at = _ready()
    stop = start_at + seconds
    while time.time() < stop:
        try:
            with store.start_run("bench", name=f"w{worker}-{runs}") as run:
                for i in range(VALUES):
                    run.log_metric("loss", 1.0 / (i + 1), step=i)
            runs += 1
            values += VALUES  # acknowledged: the run ended, so every value is stored
        except Exception:
            errors += 1
    store.close()
    return {"runs": runs, "values": values, "errors": errors}


def mlflow_writer(uri: str, experiment_id: str, seconds: float, worker: int) -> dict[str, int]:
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.CRITICAL)
    client = MlflowClient(tracking_uri=uri)
    client.get_experiment(experiment_id)  # connected, tables checked
    runs = values = errors = 0
    start_at = _ready()
    stop = start_at + seconds
    while time.time() < stop:
        try:
            run_id = client.create_run(experiment_id, run_name=f"w{worker}-{runs}").info.run_id
        except Exception:
            errors += 1
            continue
        runs += 1
        for i in range(VALUES):
            try:
                client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
                values += 1
            except Exception:
                errors += 1
        try:
            client.set_terminated(run_id)
        except Exception:
            errors += 1
    return {"runs": runs, "values": values, "errors": errors}


def _ready() -> float:
    """Tell the parent this writer is ready; wait for the common start time and sleep until it."""
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    return start_at


# -- one measurement --------------------------------------------------------------------
def measure(system: str, target: dict[str, str], writers: int, seconds: float) -> dict[str, float]:
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", system, json.dumps(target), str(seconds), str(w)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(writers)
    ]
    for p in procs:  # every writer has imported and connected: start them together
        if p.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            raise RuntimeError(f"{system} writer failed to start: {p.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    start_at = time.time() + 0.5
    for p in procs:
        p.stdin.write(f"{start_at}\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=seconds + 300)
        if p.returncode != 0:
            raise RuntimeError(f"{system} writer failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    late = time.time() - start_at - seconds  # how long the last call of a writer overran
    acked = sum(r["values"] for r in results)
    stored_runs, stored = count(system, target)
    return {
        # by the time the last writer finished (a writer ends its run after the deadline), fair to both
        "values_per_s": stored / (seconds + max(late, 0)), "runs_per_s": stored_runs / (seconds + max(late, 0)), "errors": sum(r["errors"] for r in results),
        "acknowledged": acked, "stored": stored, "lost": max(0, acked - stored), "late_s": round(late, 1),
    }


def count(system: str, target: dict[str, str]) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    url = target["database"]
    if system.startswith("mlkeep") and not url.startswith(("sqlite", "postgresql")):
        url = f"sqlite:///{Path(url) / '.mlkeep' / 'mlkeep.db'}"
    url = url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
        values = conn.execute(text("SELECT count(*) FROM metrics")).scalar_one()
    engine.dispose()
    return int(runs), int(values)


# -- setup ------------------------------------------------------------------------------
def postgres() -> tuple[str, object | None]:
    server = os.environ.get("MLKEEP_BENCH_POSTGRES")
    if server:
        return server, None
    sys.path.insert(0, str(ROOT / "tests"))
    import postgres_server

    if not postgres_server.available():
        return "", None
    cluster = postgres_server.Cluster()
    return cluster.start(), cluster


def new_database(server: str, name: str) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(server).set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def prepare(system: str, folder: Path, server: str, rep: int) -> dict[str, str]:
    """A fresh, empty store for `system`, its schema created before the writers start."""
    if system == "mlkeep-sqlite":
        import mlkeep

        mlkeep.init(folder / f"mlkeep{rep}").close()
        return {"database": str(folder / f"mlkeep{rep}"), "objects": ""}
    if system == "mlkeep-postgresql":
        import mlkeep

        url = new_database(server, f"bench_mlkeep{rep}")
        mlkeep.open(url, objects=str(folder / f"objects{rep}")).close()
        return {"database": url, "objects": str(folder / f"objects{rep}")}
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder / f'mlflow{rep}.db'}" if system == "mlflow-sqlite" else new_database(server, f"bench_mlflow{rep}")
    exp = MlflowClient(tracking_uri=uri).create_experiment("bench")
    return {"database": uri, "experiment": exp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--systems", default="mlkeep-sqlite,mlkeep-postgresql,mlflow-sqlite,mlflow-postgresql")
    args = parser.parse_args()
    server, cluster = postgres()
    systems = [s for s in args.systems.split(",") if server or not s.endswith("postgresql")]
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
    try:
        with tempfile.TemporaryDirectory(prefix="mlkeep-bench-conc-") as tmp:
            for rep in range(args.reps):
                for system in systems:
                    target = prepare(system, Path(tmp), server, rep)
                    rows[system].append(measure(system, target, args.writers, args.seconds))
                    print(f"  {system} rep {rep + 1}: {rows[system][-1]}", file=sys.stderr, flush=True)
    finally:
        if cluster is not None:
            cluster.stop()  # type: ignore[attr-defined]
    report(rows, args)


def report(rows: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    def med(system: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[system])

    print(f"{args.writers} writer processes, {args.seconds:.0f} s each, {VALUES} values per run, "
          f"median of {args.reps} rep(s)")
    print(f"{'system':<20}{'values/s':>12}{'runs/s':>10}{'errors':>8}{'lost':>8}{'stored':>10}")
    for system in rows:
        print(f"{system:<20}{med(system, 'values_per_s'):>12.0f}{med(system, 'runs_per_s'):>10.1f}"
              f"{med(system, 'errors'):>8.0f}{med(system, 'lost'):>8.0f}{med(system, 'stored'):>10.0f}")
    for engine in ("sqlite", "postgresql"):
        ours, theirs = f"mlkeep-{engine}", f"mlflow-{engine}"
        if ours in rows and theirs in rows and med(theirs, "values_per_s"):
            print(f"mlkeep / MLflow on {engine}: {med(ours, 'values_per_s') / med(theirs, 'values_per_s'):.0f}x values/s, "
                  f"{med(ours, 'runs_per_s') / max(med(theirs, 'runs_per_s'), 1e-9):.1f}x runs/s")


def worker_main() -> None:
    system, target, seconds, worker = sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    if system.startswith("mlkeep"):
        result = mlkeep_writer(target["database"], target["objects"], seconds, worker)
    else:
        result = mlflow_writer(target["database"], target["experiment"], seconds, worker)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
    else:
        main()
