"""Garbage collection: purging deleted runs (mlkeep against `mlflow gc`) and sweeping a large object store.

1. Purge: `--runs` runs, each with params, `METRICS` metric values and one
   small artifact file; half are deleted. mlkeep purges them with a
   retention policy (`deleted_runs_days=0`) applied by `gc`; MLflow with
   `mlflow gc` on its SQLite store and local artifact folder. Both remove
   the runs' rows and artifact bytes; the time of that one command (`mlkeep
   gc`, `mlflow gc`: a process each, as a user runs them) is measured, and
   the survivors are checked to be whole.
2. Sweep: a folder store of `--objects` blobs, half named by run artifacts
   and half unreachable and older than the grace period: time of `gc`
   (mark from every root provider, then delete), objects per second. No
   anchor here: MLflow has no mark-and-sweep of unreferenced blobs.

Run with the benchmark venv, which has MLflow:

    .venv-bench/bin/python benchmarks/gc.py [--runs 200] [--objects 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
METRICS = 20


def purge_mlkeep(root: Path, n_runs: int) -> tuple[float, int]:
    """(seconds for `gc` to purge the deleted half, runs left)."""
    import mlkeep
    from mlkeep import retention
    from mlkeep.tracking.runs import delete_run

    store = mlkeep.init(root / "mlkeep")
    files = _files(root / "mlkeep-files", n_runs)
    ids = []
    for i, f in enumerate(files):
        with store.start_run("purge", f"r{i}") as run:
            run.log_params({"i": i, "lr": 0.1})
            for s in range(METRICS):
                run.log_metric("loss", 1.0 / (s + 1), step=s)
            run.log_artifact(f)
        ids.append(run.id)
    for run_id in ids[::2]:
        delete_run(store.db, run_id)
    retention.set_policy(store, retention.RetentionPolicy(deleted_runs_days=0))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlkeep.cli", "--store", str(root / "mlkeep"), "gc", "--grace", "0",
                           "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)["retention"]["runs_purged"]) == len(ids[::2])
    left = store.search_runs("", experiments=["purge"], limit=10_000)
    assert all(len(store.list_artifacts(r.id)) == 1 for r in left)
    store.close()
    return seconds, len(left)


def purge_mlflow(root: Path, n_runs: int) -> tuple[float, int]:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=db)
    exp = client.create_experiment("purge", artifact_location=str(root / "mlflow-artifacts"))
    files = _files(root / "mlflow-files", n_runs)
    ids = []
    for i, f in enumerate(files):
        run = client.create_run(exp, run_name=f"r{i}")
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id, params=[Param("i", str(i)), Param("lr", "0.1")],
                         metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(METRICS)])
        client.log_artifact(run.info.run_id, str(f))
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    for run_id in ids[::2]:
        client.delete_run(run_id)
    mlflow = Path(sys.executable).with_name("mlflow")
    started = time.perf_counter()
    done = subprocess.run([str(mlflow), "gc", "--backend-store-uri", db], capture_output=True, text=True,
                          env={**os.environ, "MLFLOW_TRACKING_URI": db})
    assert done.returncode == 0, done.stderr[-3000:]
    seconds = time.perf_counter() - started
    left = client.search_runs([exp], max_results=10_000)
    assert all(len(client.list_artifacts(r.info.run_id)) == 1 for r in left)
    assert not any(f.is_file() for r in ids[::2] for f in (root / "mlflow-artifacts" / r).rglob("*"))
    return seconds, len(left)


def sweep(root: Path, n_objects: int) -> tuple[float, int, int]:
    """(seconds for gc, objects in the store, objects deleted)."""
    import mlkeep
    from mlkeep.gc import gc
    from mlkeep.metadata.tables import artifacts

    store = mlkeep.init(root / "sweep")
    with ThreadPoolExecutor(8) as pool:
        oids = list(pool.map(lambda i: store.objects.put_bytes(i.to_bytes(8, "little") * 16), range(n_objects)))
    old = time.time() - 7200
    for oid in oids:
        os.utime(store.objects.path(oid), (old, old))
    with store.start_run("sweep") as run:
        pass
    with store.db.begin() as conn:
        conn.execute(artifacts.insert(), [{"run_id": run.id, "path": f"a/{i}", "object": oid, "size": 128}
                                          for i, oid in enumerate(oids[::2])])
    started = time.perf_counter()
    report = gc(store, grace_seconds=3600)
    seconds = time.perf_counter() - started
    assert len(report.deleted) == n_objects - len(oids[::2]) and report.reachable >= len(oids[::2])
    store.close()
    return seconds, n_objects, len(report.deleted)


def _files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        f = folder / f"r{i}" / "notes.txt"
        f.parent.mkdir()
        f.write_bytes(os.urandom(2048))
        out.append(f)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs made for the purge (half are deleted)")
    parser.add_argument("--objects", type=int, default=50_000, help="objects in the store for the sweep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlkeep-bench-gc-") as tmp:
        ours, left_ours = purge_mlkeep(Path(tmp), args.runs)
        theirs, left_theirs = purge_mlflow(Path(tmp), args.runs)
        assert left_ours == left_theirs == args.runs - len(range(0, args.runs, 2))
        print(f"purge {args.runs // 2 + args.runs % 2} deleted runs of {args.runs}: mlkeep gc {ours:.2f} s, "
              f"mlflow gc {theirs:.2f} s, ratio {theirs / ours:.1f}x")
        seconds, n, deleted = sweep(Path(tmp), args.objects)
        print(f"sweep {n} objects ({deleted} unreachable, deleted): {seconds:.2f} s, {n / seconds:,.0f} objects/s")


if __name__ == "__main__":
    main()
