"""The official MLflow client, one script, against `mlflow server` (SQLite) and against `mlkeep server`.

    .venv-bench/bin/python benchmarks/mlflow_compat.py            # a few minutes
    .venv-bench/bin/python benchmarks/mlflow_compat.py --quick    # a tenth of the work

Each server runs as a subprocess on a loopback port over a fresh store, one
after the other so they never compete for the CPU (MLflow: `mlflow server
--backend-store-uri sqlite:///... --workers 1`; mlkeep: `mlkeep server` over a
new store). The same workload
(`--worker`, in its own process, with `MLFLOW_TRACKING_URI` pointing at one
server) is run against each, with the same client:

1. 2,000 `log_metric` calls, one value each;
2. 100 `log_batch` calls of 1,000 metric values;
3. 1,000 runs created (`create_run` with a tag);
4. `search_runs` over those runs: a tag filter ordered by start time, and a
   page of 100 ordered by name (median of 5 each).

The client's own HTTP overhead is in both figures; the ratios say how much of
each call the server costs. Goals (issue 9): ≥ 3× for logging, ≥ 10× for search.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} died (exit code {proc.returncode})")
    raise RuntimeError(f"{what} did not start in 120 s")


def workload(scale: float) -> dict[str, Any]:
    """The client script, timed per phase (run in a child process with MLFLOW_TRACKING_URI set)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    exp = client.create_experiment(f"bench-{time.time_ns()}")
    n_metric, n_batch, n_runs = int(2000 * scale), max(1, int(100 * scale)), int(1000 * scale)
    run_id = client.create_run(exp).info.run_id
    out: dict[str, Any] = {}

    t = time.perf_counter()
    for i in range(n_metric):
        client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
    out["log_metric"] = (time.perf_counter() - t, n_metric)

    now = int(time.time() * 1000)
    t = time.perf_counter()
    for b in range(n_batch):
        client.log_batch(run_id, metrics=[Metric("batched", float(v), now, b * 1000 + v) for v in range(1000)])
    out["log_batch"] = (time.perf_counter() - t, n_batch)

    t = time.perf_counter()
    for i in range(n_runs):
        client.create_run(exp, run_name=f"run-{i:05d}", tags={"group": "even" if i % 2 == 0 else "odd"})
    out["create_run"] = (time.perf_counter() - t, n_runs)

    def timed(call: Any) -> tuple[float, int]:
        times, found = [], 0
        for _ in range(6):
            t = time.perf_counter()
            found = len(call())
            times.append(time.perf_counter() - t)
        return statistics.median(times[1:]), found

    out["search_filter"] = timed(lambda: client.search_runs([exp], "tags.group = 'even'",
                                                            order_by=["attributes.start_time DESC"], max_results=1000))
    out["search_page"] = timed(lambda: client.search_runs([exp], order_by=["attributes.run_name ASC"], max_results=100))
    history = client.get_metric_history(run_id, "loss")
    out["history_points"] = len(history)
    return out


def run_worker(url: str, scale: float) -> dict[str, Any]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, __file__, "--worker", str(scale)], env=env, capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the work")
    ap.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(workload(args.worker)))
        return
    scale = 0.1 if args.quick else 1.0
    tmp = Path(tempfile.mkdtemp(prefix="mlkeep-mlflow-compat-"))
    try:
        k = against(mlkeep_server(tmp / "mlkeep"), "/api/health", scale)
        m = against(mlflow_server(tmp), "/health", scale)
        if k["history_points"] != m["history_points"]:
            raise AssertionError(f"histories differ: mlkeep {k['history_points']}, mlflow {m['history_points']}")
        print(f"\n{'what (official mlflow client)':44} {'mlkeep':>12} {'mlflow':>12} {'ratio':>8}")
        names = {"log_metric": "log_metric calls", "log_batch": "log_batch calls of 1,000 values",
                 "create_run": "runs created", "search_filter": "search_runs, tag filter (500 of them)",
                 "search_page": "search_runs, first 100 by name"}
        for key, what in names.items():
            (tk, nk), (tm, nm) = k[key], m[key]
            if key.startswith("search"):
                assert nk == nm, f"{key}: mlkeep found {nk} runs, mlflow {nm}"
                print(f"{what:44} {tk * 1000:10.1f}ms {tm * 1000:10.1f}ms {tm / tk:7.1f}×")
            else:
                print(f"{f'{nk:,} {what}':44} {nk / tk:10.0f}/s {nm / tm:10.0f}/s {tm / tk:7.1f}×")
        print("\ngoals: ≥ 3× MLflow for the logging calls, ≥ 10× for search")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mlkeep_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    import mlkeep

    mlkeep.init(folder).close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLKEEP_URI"}
    return subprocess.Popen([sys.executable, "-m", "mlkeep.cli", "--store", str(folder), "server", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT), port


def mlflow_server(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return subprocess.Popen([mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                             "--default-artifact-root", (tmp / "mlartifacts").as_uri(), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT), port


def against(server: tuple[subprocess.Popen[bytes], int], health: str, scale: float) -> dict[str, Any]:
    """Run the workload against one server, alone on the machine (the other is not started yet)."""
    proc, port = server
    try:
        wait(f"http://127.0.0.1:{port}{health}", proc, proc.args[0])
        time.sleep(2)  # let start-up work (migrations, background workers) settle
        return run_worker(f"http://127.0.0.1:{port}", scale)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
