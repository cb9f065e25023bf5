"""Server speed: `mlkeep server` beside `mlflow server` on the same data, same machine, same script.

    .venv-bench/bin/python benchmarks/server.py            # about 1-2 minutes
    .venv-bench/bin/python benchmarks/server.py --runs 2000 --points 20000   # quicker

Both servers run as subprocesses on loopback ports over SQLite stores in one
temporary folder, and are asked over HTTP (one kept-alive connection each,
stdlib `http.client`, so neither side pays for a client library):

1. First page of the runs table: 10,000 runs of one experiment, sorted by a
   metric, 50 per page. mlkeep: `GET /api/search/runs?order_by=...`, which
   also counts every matching run (the "10,000 runs" above the table).
   MLflow: `POST /api/2.0/mlflow/runs/search` (what its UI calls).
2. Filtered search: `metrics.acc > 0.9 and params.model = 'rf'`, sorted by
   the metric, first page of 50 (and mlkeep's count of matches), same endpoints.
3. Metric history of one run with 100,000 points. For a chart: mlkeep's
   history downsampled to first/min/max/last of at most 250 step buckets (at
   most 1,000 points), read from the bucket summaries kept at write time,
   against MLflow's own sampled endpoint (`get-history-bulk-interval`, max
   1,000, what its UI charts use). In full: every point, both sides (MLflow
   pages through `get-history` with its page tokens).

mlkeep's runs are logged through its API; MLflow's are written straight into
its tables (its API makes ~40 runs/s), with the same values. Each figure is
the median of several requests after a warm-up; mlkeep's are taken before and
again after MLflow's (the machine is shared and noisy), and MLflow's server
runs without its GenAI job runner, a second process that has nothing to do
with tracking and would compete for the CPU. Pages are checked to hold the
same runs in the same order, and mlkeep's counts to be right.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

FILTER = "metrics.acc > 0.9 and params.model = 'rf'"
ORDER = "metrics.acc DESC"
PAGE = 50


def values(i: int) -> tuple[dict[str, Any], dict[str, float]]:
    rnd = random.Random(i)
    return ({"model": ["rf", "svm", "logreg", "knn"][i % 4], "C": round(rnd.uniform(0.01, 10), 4), "seed": i},
            {"acc": round(rnd.random(), 6), "loss": round(rnd.random() * 3, 6)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):  # the server closed an idle keep-alive
            self.conn.close()
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status} {raw[:300]!r}")
        return json.loads(raw)

    def samples(self, method: str, path: str, body: Any = None, reps: int = 7) -> tuple[list[float], Any]:
        """Seconds of each of `reps` requests after a warm-up, and the last answer."""
        out = self.call(method, path, body)  # warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            out = self.call(method, path, body)
            times.append(time.perf_counter() - t)
        return times, out

    def timed(self, method: str, path: str, body: Any = None, reps: int = 7) -> tuple[float, Any]:
        times, out = self.samples(method, path, body, reps)
        return statistics.median(times), out


def wait(port: int, path: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start")


# -- loading the same data into both ------------------------------------------------------------
def load_mlkeep(folder: Path, n: int, points: int) -> str:
    import mlkeep

    store = mlkeep.init(folder)
    for i in range(n):
        p, m = values(i)
        with store.start_run("bench", f"run-{i:05d}") as run:
            run.log_params(p)
            run.log_metrics(m, step=0)
    with store.start_run("history", "long") as run:
        for s in range(points):
            run.log_metric("loss", 1.0 / (s + 1), step=s, timestamp=1_700_000_000_000 + s)
    store.close()
    return run.id


def load_mlflow(db: Path, artifacts: Path, n: int, points: int) -> tuple[str, str]:
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.tracking import MlflowClient
    from sqlalchemy import create_engine, insert

    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench", artifact_location=artifacts.as_uri())
    hist_exp = client.create_experiment("history", artifact_location=artifacts.as_uri())
    now = int(time.time() * 1000)
    runs, params, tags, metrics = [], [], [], []

    def run_row(run_id: str, name: str, i: int, experiment: str) -> dict[str, Any]:
        return {"run_uuid": run_id, "name": name, "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
                "user_id": "bench", "status": "FINISHED", "start_time": now + i, "end_time": now + i + 1,
                "source_version": "", "lifecycle_stage": "active", "experiment_id": int(experiment),
                "artifact_uri": f"{artifacts.as_uri()}/{run_id}/artifacts"}

    for i in range(n):
        run_id, name = uuid.uuid4().hex, f"run-{i:05d}"
        runs.append(run_row(run_id, name, i, exp))
        tags += [{"run_uuid": run_id, "key": "mlflow.runName", "value": name}]
        p, m = values(i)
        params += [{"run_uuid": run_id, "key": k, "value": str(v)} for k, v in p.items()]
        metrics += [{"run_uuid": run_id, "key": k, "value": v, "timestamp": now + i, "step": 0, "is_nan": False}
                    for k, v in m.items()]
    long_id = uuid.uuid4().hex
    runs.append(run_row(long_id, "long", n, hist_exp))
    series = [{"run_uuid": long_id, "key": "loss", "value": 1.0 / (s + 1), "timestamp": 1_700_000_000_000 + s,
               "step": s, "is_nan": False} for s in range(points)]
    latest = metrics + [series[-1]]
    engine = create_engine(uri)
    with engine.begin() as conn:
        conn.execute(insert(SqlRun.__table__), runs)
        conn.execute(insert(SqlTag.__table__), tags)
        conn.execute(insert(SqlParam.__table__), params)
        conn.execute(insert(SqlMetric.__table__), metrics + series)
        conn.execute(insert(SqlLatestMetric.__table__), latest)
    engine.dispose()
    return exp, long_id


# -- the measurements ------------------------------------------------------------------------------
def expected_matches(n: int) -> int:
    """How many of the loaded runs the filter matches, from the generated values."""
    return sum(1 for i in range(n) for p, m in [values(i)] if m["acc"] > 0.9 and p["model"] == "rf")


def mlflow_history(c: Client, run_id: str) -> tuple[float, int]:
    """Every point through get-history, following page tokens; (seconds, points)."""
    def once() -> int:
        got, token = 0, None
        while True:
            q = {"run_id": run_id, "metric_key": "loss", "max_results": 25000}
            if token:
                q["page_token"] = token
            out = c.call("GET", "/api/2.0/mlflow/metrics/get-history?" + urllib.parse.urlencode(q))
            got += len(out.get("metrics", []))
            token = out.get("next_page_token")
            if not token:
                return got

    once()
    times, got = [], 0
    for _ in range(3):
        t = time.perf_counter()
        got = once()
        times.append(time.perf_counter() - t)
    return statistics.median(times), got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlkeep-server-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t = time.perf_counter()
        long_k = load_mlkeep(tmp / "mlkeep", args.runs, args.points)
        exp, long_m = load_mlflow(tmp / "mlflow.db", tmp / "mlartifacts", args.runs, args.points)
        print(f"loaded {args.runs:,} runs and one {args.points:,}-point series into each store "
              f"in {time.perf_counter() - t:.0f} s")
        pk, pm = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "MLKEEP_URI"}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        procs.append(subprocess.Popen([sys.executable, "-m", "mlkeep.cli", "--store", str(tmp / "mlkeep"), "server",
                                       "--port", str(pk)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        procs.append(subprocess.Popen([mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                                       "--default-artifact-root", (tmp / "mlartifacts").as_uri(), "--host", "127.0.0.1",
                                       "--port", str(pm), "--workers", "1"], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
        wait(pk, "/api/health", procs[0], "mlkeep server")
        wait(pm, "/health", procs[1], "mlflow server")
        k, m = Client(pk), Client(pm)
        rows = []


        def both(k_path: str, m_method: str, m_path: str, m_body: Any = None) -> tuple[float, Any, float, Any]:
            """mlkeep, MLflow, mlkeep again: mlkeep's figure is the median of both of its rounds' requests."""
            t1, outk = k.samples("GET", k_path)
            tm, outm = m.timed(m_method, m_path, m_body)
            t2, outk = k.samples("GET", k_path)
            return statistics.median(t1 + t2), outk, tm, outm

        q = urllib.parse.urlencode({"order_by": ORDER, "page_size": PAGE, "experiments": "bench"})
        tk, outk, tm, outm = both(f"/api/search/runs?{q}", "POST", "/api/2.0/mlflow/runs/search",
                                  {"experiment_ids": [exp], "order_by": [ORDER], "max_results": PAGE})
        same = [r["name"] for r in outk["runs"]] == [r["info"]["run_name"] for r in outm["runs"]]
        rows.append((f"first page of {args.runs:,} runs by {ORDER}", tk, tm, same and outk["total"] == args.runs))

        q = urllib.parse.urlencode({"filter": FILTER, "order_by": ORDER, "page_size": PAGE, "experiments": "bench"})
        tk, outk, tm, outm = both(f"/api/search/runs?{q}", "POST", "/api/2.0/mlflow/runs/search",
                                  {"experiment_ids": [exp], "filter": FILTER, "order_by": [ORDER], "max_results": PAGE})
        same = [r["name"] for r in outk["runs"]] == [r["info"]["run_name"] for r in outm["runs"]]
        rows.append((f"filtered search ({FILTER})", tk, tm, same and outk["total"] == expected_matches(args.runs)))

        q = urllib.parse.urlencode({"run_ids": long_m, "metric_key": "loss", "max_results": 1000})
        tk, outk, tm, outm = both(f"/api/runs/{long_k}/metrics/loss/history?max_points=1000", "GET",
                                  f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?{q}")
        rows.append((f"{args.points:,}-point history for a chart (≤1,000 points)", tk, tm,
                     len(outk["steps"]) <= 1000 and outk["total"] == args.points))

        tk, outk = k.timed("GET", f"/api/runs/{long_k}/metrics/loss/history", reps=3)
        tm, got = mlflow_history(m, long_m)
        rows.append((f"{args.points:,}-point history in full", tk, tm, len(outk["steps"]) == got == args.points))

        print(f"\n{'what':58} {'mlkeep':>10} {'mlflow':>10} {'ratio':>8}  same answer")
        for what, a, b, ok in rows:
            print(f"{what:58} {a * 1000:8.1f}ms {b * 1000:8.1f}ms {b / a:7.1f}×  {'yes' if ok else 'NO'}")
        first = rows[0][1] * 1000
        print(f"\ngoals: ≥10× MLflow on each; first page ≤ 300 ms (mlkeep: {first:.1f} ms)")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
