"""The official MLflow client, one script, against `mlflow server` (SQLite) and against `mlkeep server`.

    .venv-bench/bin/python benchmarks/mlflow_compat.py            # a few minutes
    .venv-bench/bin/python benchmarks/mlflow_compat.py --quick    # a tenth of the work

Each server runs as a subprocess on a loopback port over a fresh store
(MLflow: `mlflow server --backend-store-uri sqlite:///... --workers 1`;
mlkeep: `mlkeep server` over a new store). The same logging workload
(`--worker`, in its own process, with `MLFLOW_TRACKING_URI` pointing at one
server) runs against each, one after the other so they never compete for the
CPU; the searches (`--searches`) then alternate between the two servers round
by round, so a machine shared with other work slows both alike:

1. 2,000 `log_metric` calls, one value each;
2. 100 `log_batch` calls of 1,000 metric values;
3. 1,000 runs created (`create_run` with a tag);
4. `search_runs` over those runs, each of which has then been given three
   metrics and three params (one `log_batch` per run, not timed): a tag filter
   ordered by start time, a page of 100 ordered by name, the best 10 by a
   metric among those passing a metric filter (`metrics.acc > 0.5`, ordered by
   `metrics.acc DESC`), and a param filter (two params, one run in 24) (median
   of 10 rounds each); then the same searches as bare REST calls (the JSON body
   the client sends, the answer decoded as JSON but not parsed into protobuf
   messages and entities). Every search's answer from mlkeep must equal
   MLflow's: the same runs with the same params, metrics and tags, in the same
   order (for runs ordered by start time, which differs between servers, each
   in its own server's order); the script stops with the difference otherwise.

The client's own overhead is in every client figure, so it bounds the ratio.
The "client own" column measures it (the client process's CPU per logging call;
for a search, the client's parsing of mlkeep's answer into protobuf and `Run`
entities, timed alone), and "ceiling" is MLflow's time over it: the ratio a
server answering in no time would reach. For 500 runs the client's parsing
takes several times longer than mlkeep takes to answer, so the ceiling for
client searches is well under 10×. The bare REST rows show what the servers
themselves cost. Goals (issue 9): ≥ 3× for logging, ≥ 10× for search.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} died (exit code {proc.returncode})")
    raise RuntimeError(f"{what} did not start in 600 s")


def workload(scale: float) -> dict[str, Any]:
    """The logging part of the client script, timed per phase (a child process with MLFLOW_TRACKING_URI set)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    exp = client.create_experiment(f"bench-{time.time_ns()}")
    n_metric, n_batch, n_runs = int(2000 * scale), max(1, int(100 * scale)), int(1000 * scale)
    # The logging run has an experiment of its own: the searches see exactly the 1,000 runs created.
    run_id = client.create_run(client.create_experiment(f"bench-logging-{time.time_ns()}")).info.run_id
    out: dict[str, Any] = {"experiment": exp}

    # Each phase: (wall seconds, calls, this client process's own CPU seconds).
    t, c = time.perf_counter(), cpu_seconds()
    for i in range(n_metric):
        client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
    out["log_metric"] = (time.perf_counter() - t, n_metric, cpu_seconds() - c)

    now = int(time.time() * 1000)
    t, c = time.perf_counter(), cpu_seconds()
    for b in range(n_batch):
        client.log_batch(run_id, metrics=[Metric("batched", float(v), now, b * 1000 + v) for v in range(1000)])
    out["log_batch"] = (time.perf_counter() - t, n_batch, cpu_seconds() - c)

    t, c = time.perf_counter(), cpu_seconds()
    made = [client.create_run(exp, run_name=f"run-{i:05d}", tags={"group": "even" if i % 2 == 0 else "odd"})
            for i in range(n_runs)]
    out["create_run"] = (time.perf_counter() - t, n_runs, cpu_seconds() - c)
    # What the searches look for, logged outside the timed part: each run's scores and hyperparameters.
    for i, run in enumerate(made):
        metrics, params = run_results(i)
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
    out["history_points"] = len(client.get_metric_history(run_id, "loss"))
    return out


RESULTS_TIME = 1_700_000_000_000  # the metrics' timestamp: fixed, so both servers' answers can be compared


def run_results(i: int) -> tuple[list[Any], list[Any]]:
    """Run i's final metrics and its params, the same on both servers: `acc` is distinct for every run
    (a permutation of i), so ordering by it has no ties to break differently."""
    from mlflow.entities import Metric, Param

    now = RESULTS_TIME
    acc = (i * 7919 % 1000) / 1000
    metrics = [Metric("acc", acc, now, 10), Metric("loss", round(1 - acc, 3), now, 10),
               Metric("f1", round(acc * 0.9, 4), now, 10)]
    params = [Param("model", ("rf", "gbm", "linear")[i % 3]), Param("depth", str(2 + i % 8)),
              Param("lr", str((0.1, 0.01, 0.001)[i % 3]))]
    return metrics, params


SEARCHES = {"search_filter": {"filter": "tags.group = 'even'", "order_by": ["attributes.start_time DESC"],
                              "max_results": 1000},
            "search_page": {"order_by": ["attributes.run_name ASC"], "max_results": 100},
            # The search users make most: the best runs by a metric, and the runs of one configuration.
            "search_best": {"filter": "metrics.acc > 0.5", "order_by": ["metrics.acc DESC"], "max_results": 10},
            "search_param": {"filter": "params.model = 'rf' and params.depth = '5'", "order_by": [],
                             "max_results": 1000}}
# Searches whose runs come newest first: start times differ between the servers, so their answers are
# compared as sets of runs, each server's checked for its own order; the others must match run for run.
BY_START_TIME = {"search_filter", "search_param"}
ROUNDS = 11


def cpu_seconds() -> float:
    """This process's CPU time (user + system): the client's own share of a call, whatever the server does."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_parse(text: str) -> int:
    """What the official client does with a search_runs answer once it has it (`RestStore._search_runs`):
    JSON to the protobuf message, then each run to an entity. Returns the number of runs."""
    from mlflow.entities import Run
    from mlflow.protos.service_pb2 import SearchRuns
    from mlflow.utils.proto_json_utils import parse_dict

    message = SearchRuns.Response()
    parse_dict(json.loads(text), message)
    return len([Run.from_proto(r) for r in message.runs])


def search_workload(targets: dict[str, tuple[str, str]]) -> dict[str, dict[str, tuple[float, int]]]:
    """Each search against each server (name -> (url, experiment id)), interleaved round by round so both
    see the same load on a shared machine; medians of the rounds after the first (a warm-up).

    `*_parse` is the client's own work on the answer (`client_parse` of the text the server sent), no
    server or HTTP in it: a client search can take no less, which bounds the ratio a server can reach."""
    import requests
    from mlflow import MlflowClient

    session = requests.Session()
    calls: dict[str, dict[str, Any]] = {name: {} for name in targets}
    answers: dict[str, dict[str, Any]] = {}
    for name, (url, exp) in targets.items():
        client = MlflowClient(tracking_uri=url)
        for what, kw in SEARCHES.items():
            calls[name][what] = lambda c=client, e=exp, kw=kw: c.search_runs(
                [e], kw.get("filter", ""), order_by=kw["order_by"], max_results=kw["max_results"])
            # The same search as a bare REST call: the server and HTTP, without the client's protobuf parsing.
            body = {"experiment_ids": [exp], "run_view_type": "ACTIVE_ONLY", **kw}
            calls[name][what + "_rest"] = lambda u=url + "/api/2.0/mlflow/runs/search", b=body: session.post(
                u, json=b).json()["runs"]
            text = session.post(url + "/api/2.0/mlflow/runs/search", json=body).text
            calls[name][what + "_parse"] = lambda text=text: range(client_parse(text))
            answers.setdefault(what, {})[name] = json.loads(text)
    for what, by_server in answers.items():
        same_answer(what, by_server)
    times: dict[str, dict[str, list[float]]] = {name: {what: [] for what in calls[name]} for name in targets}
    found: dict[str, dict[str, int]] = {name: {} for name in targets}
    order = list(targets)
    for what in calls[order[0]]:
        for r in range(ROUNDS):
            for name in order if r % 2 == 0 else order[::-1]:
                t = time.perf_counter()
                found[name][what] = len(calls[name][what]())
                times[name][what].append(time.perf_counter() - t)
    session.close()
    return {name: {what: (statistics.median(ts[1:]), found[name][what]) for what, ts in times[name].items()}
            for name in targets}


def same_answer(what: str, by_server: dict[str, Any]) -> None:
    """Every server's answer to one search holds the same runs, with the same data, in the same order
    (runs ordered by start time, which differs between servers, each in its own server's order).
    Raises AssertionError naming the first difference."""

    def content(run: dict[str, Any]) -> tuple[Any, ...]:
        info, data = run["info"], run.get("data", {})
        return (info["run_name"], info["status"], info["lifecycle_stage"], info.get("user_id", ""),
                sorted((p["key"], p.get("value", "")) for p in data.get("params", [])),
                sorted((m["key"], m["value"], int(m["step"]), int(m["timestamp"])) for m in data.get("metrics", [])),
                sorted((t["key"], t.get("value", "")) for t in data.get("tags", [])))

    runs = {name: answer.get("runs", []) for name, answer in by_server.items()}
    contents = {name: [content(r) for r in found] for name, found in runs.items()}
    (first, expected), *others = contents.items()
    for name, got in others:
        if what in BY_START_TIME:
            for server, found in runs.items():
                starts = [int(r["info"]["start_time"]) for r in found]
                assert starts == sorted(starts, reverse=True), f"{what}: {server} not newest first"
            got, expected = sorted(got), sorted(expected)
        if got != expected:
            diff = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(got), len(expected)))
            raise AssertionError(f"{what}: {name} and {first} answer differently from run {diff} on "
                                 f"({len(got)} and {len(expected)} runs): "
                                 f"{got[diff:diff + 1]} vs {expected[diff:diff + 1]}")


def run_worker(url: str, args: list[str]) -> Any:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the work")
    ap.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--searches", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(workload(args.worker)))
        return
    if args.searches is not None:
        print(json.dumps(search_workload(json.loads(args.searches))))
        return
    scale = 0.1 if args.quick else 1.0
    tmp = Path(tempfile.mkdtemp(prefix="mlkeep-mlflow-compat-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        k_url = start(mlkeep_server(tmp / "mlkeep"), "/api/health", servers)
        k = run_worker(k_url, ["--worker", str(scale)])  # alone on the machine: the other is not started yet
        m_url = start(mlflow_server(tmp), "/health", servers)
        m = run_worker(m_url, ["--worker", str(scale)])
        if k["history_points"] != m["history_points"]:
            raise AssertionError(f"histories differ: mlkeep {k['history_points']}, mlflow {m['history_points']}")
        found = run_worker(k_url, ["--searches", json.dumps({"mlkeep": [k_url, k["experiment"]],
                                                             "mlflow": [m_url, m["experiment"]]})])
        k.update(found["mlkeep"])
        m.update(found["mlflow"])
        print(f"\n{'what (official mlflow client)':44} {'mlkeep':>12} {'mlflow':>12} {'ratio':>8} "
              f"{'client own':>11} {'ceiling':>8}")
        names = {"log_metric": "log_metric calls", "log_batch": "log_batch calls of 1,000 values",
                 "create_run": "runs created", "search_filter": "search_runs, tag filter (half the runs)",
                 "search_page": "search_runs, first 100 by name",
                 "search_best": "search_runs, best 10 by metric filter+order",
                 "search_param": "search_runs, param filter (1 run in 24)",
                 "search_filter_rest": "tag filter, bare REST call (no client parsing)",
                 "search_page_rest": "first 100, bare REST call (no client parsing)",
                 "search_best_rest": "best 10, bare REST call (no client parsing)",
                 "search_param_rest": "param filter, bare REST call (no client parsing)"}
        for key, what in names.items():
            (tk, nk, *ck), (tm, nm, *_) = k[key], m[key]
            # The client's own time per call (its CPU for logging calls; parsing mlkeep's answer for a search):
            # with a server that took no time at all, the ratio would be MLflow's time over this.
            own = k[key + "_parse"][0] if key + "_parse" in k else ck[0] / nk if ck else None
            per_call = tm if key.startswith("search") else tm / nm
            bound = f"{own * 1000:9.2f}ms {per_call / own:7.1f}×" if own else ""
            if key.startswith("search"):
                assert nk == nm, f"{key}: mlkeep found {nk} runs, mlflow {nm}"
                print(f"{what:44} {tk * 1000:10.1f}ms {tm * 1000:10.1f}ms {tm / tk:7.1f}× {bound}")
            else:
                print(f"{f'{nk:,} {what}':44} {nk / tk:10.0f}/s {nm / tm:10.0f}/s {tm / tk:7.1f}× {bound}")
        print("\nclient own: the official client's own time per call (its CPU for a logging call; turning the answer "
              "into protobuf and Run entities for a search), the part no server can remove; ceiling: MLflow's time "
              "over it, the best ratio a server taking no time at all could reach.")
        print("\ngoals: ≥ 3× MLflow for the logging calls, ≥ 10× for search")
    finally:
        for proc in servers:
            stop(proc)
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


def start(server: tuple[subprocess.Popen[bytes], int], health: str, started: list[subprocess.Popen[bytes]]) -> str:
    """Wait for a server to answer, then let its start-up work (migrations, background workers) settle."""
    proc, port = server
    started.append(proc)
    wait(f"http://127.0.0.1:{port}{health}", proc, str(proc.args[0]))
    time.sleep(2)
    return f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    main()
