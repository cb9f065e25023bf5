"""Serving speed: `mlkeep serve` (prediction logging on, 10% sampled) beside a bare FastAPI endpoint.

    .venv/bin/python benchmarks/serving.py                    # about a minute
    .venv/bin/python benchmarks/serving.py --requests 1000 --rounds 1   # quicker

Both servers are subprocesses on loopback ports, one uvicorn worker each,
serving the same scikit-learn model (a logistic regression on the bundled
digits, 64 features): `mlkeep serve digits@production --log-rate 0.1`, and a
hand-written FastAPI app that unpickles the estimator and answers
`{"predictions": model.predict(inputs)}`: the floor of what Python serving
costs. This process is the load: an async httpx client keeping
`--concurrency` requests in flight until `--requests` were answered (one row
each, rows drawn from the data), after a warm-up. Figures are medians over
`--rounds` rounds, the two servers alternating so that noise from the rest of
the machine hits both.

In the last round the `production` alias is moved between two versions
several times while the load runs: every request must still be answered 200
with the version's own predictions (the count of failures is printed).

Goal (DESIGN.md): throughput >= 0.8x the bare endpoint's, p99 <= 2x its p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

PYTHON = sys.executable
BARE_APP = textwrap.dedent('''
    import pickle, sys
    import numpy as np
    import uvicorn
    from fastapi import FastAPI

    model = pickle.load(open(sys.argv[1], "rb"))
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict) -> dict:
        return {"predictions": model.predict(np.asarray(body["inputs"], dtype=float)).tolist()}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.post(f"{url}/predict", json={"inputs": [[0.0] * 64]}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


async def load(url: str, rows: list[list[float]], requests: int, concurrency: int,
               answers: dict[str, list[Any]] | None = None) -> tuple[float, list[float], int]:
    """(seconds, per-request latencies, failed requests) for `requests` requests, `concurrency` in flight."""
    import httpx

    latencies: list[float] = []
    failed = 0
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index, failed
        while next_index < requests:
            why = ""
            i = next_index
            next_index += 1
            row = rows[i % len(rows)]
            t0 = time.perf_counter()
            try:
                r = await client.post("/predict", json={"inputs": [row]})
                ok = r.status_code == 200
                why = f"HTTP {r.status_code}: {r.text[:200]}"
                if ok and answers is not None:  # answered by the version it says, with that version's prediction
                    ok = r.json()["predictions"] == [answers[r.headers["X-Mlkeep-Model-Version"]][i % len(rows)]]
                    why = "a prediction that is not the version's own"
            except httpx.HTTPError as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            latencies.append(time.perf_counter() - t0)
            if not ok:
                failed += 1
                print(f"failed request to {url}: {why}", file=sys.stderr)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, failed


def measure(url: str, rows: list[list[float]], args: argparse.Namespace, **kw: Any) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, failed) of one round after a warm-up."""
    asyncio.run(load(url, rows, min(200, args.requests), args.concurrency))
    seconds, latencies, failed = asyncio.run(load(url, rows, args.requests, args.concurrency, **kw))
    q = np.percentile(latencies, [50, 99]) * 1000
    return args.requests / seconds, float(q[0]), float(q[1]), failed


def flipper(store_dir: str, stop: Any, moves: list[int]) -> None:
    """Move `production` between versions 1 and 2 every half second until `stop` is set."""
    import mlkeep

    with mlkeep.open(store_dir) as store:
        while not stop.wait(0.5):
            current = store.registry.alias_version("digits", "production")
            store.registry.set_alias("digits", "production", 3 - current, reason="benchmark switch")
            moves.append(3 - current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="Requests per round per server.")
    parser.add_argument("--concurrency", type=int, default=16, help="Requests in flight.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds (medians are printed).")
    parser.add_argument("--log-rate", type=float, default=0.1, help="mlkeep's sampling of requests for logging.")
    args = parser.parse_args()

    import threading

    import mlkeep
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    models = [LogisticRegression(C=c, max_iter=2000).fit(X, y) for c in (1.0, 0.001)]
    rows = X[np.random.default_rng(0).permutation(len(X))].tolist()
    answers = {str(i + 1): m.predict(np.asarray(rows)).tolist() for i, m in enumerate(models)}
    with tempfile.TemporaryDirectory(prefix="mlkeep-serving-bench-") as tmp:
        store = mlkeep.init(tmp)
        with store.start_run("digits") as run:
            ds = run.log_dataset(X, "digits", targets=y)
            for m in models:
                store.registry.register("digits", run.log_model(m, trained_on=ds).id)
        store.registry.set_alias("digits", "production", 1)
        store.close()
        pickled = Path(tmp) / "model.pkl"
        pickled.write_bytes(pickle.dumps(models[0]))
        (Path(tmp) / "bare.py").write_text(BARE_APP)

        ours_port, bare_port = free_port(), free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        servers = {
            "mlkeep serve": subprocess.Popen(
                [PYTHON, "-m", "mlkeep.cli", "--store", tmp, "serve", "digits@production", "--port", str(ours_port),
                 "--log-rate", str(args.log_rate)], env=env, stderr=subprocess.PIPE),
            "bare FastAPI": subprocess.Popen([PYTHON, str(Path(tmp) / "bare.py"), str(pickled), str(bare_port)],
                                             env=env, stderr=subprocess.PIPE),
        }
        urls = {"mlkeep serve": f"http://127.0.0.1:{ours_port}", "bare FastAPI": f"http://127.0.0.1:{bare_port}"}
        try:
            for name, proc in servers.items():
                wait_ready(urls[name], proc)
            results: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name in servers:
                    results[name].append(measure(urls[name], rows, args))
            # alias switches under load: every answer must be 200 and the version's own prediction
            stop, moves = threading.Event(), list[int]()
            thread = threading.Thread(target=flipper, args=(tmp, stop, moves))
            thread.start()
            try:
                switch = measure(urls["mlkeep serve"], rows, args, answers=answers)
            finally:
                stop.set()
                thread.join()
        finally:
            for proc in servers.values():
                proc.terminate()
                proc.wait(10)
        logged = _logged(tmp)

    med = {name: [statistics.median(r[i] for r in rs) for i in range(3)] for name, rs in results.items()}
    print(f"{args.requests} requests x {args.rounds} rounds, {args.concurrency} in flight, one row each; "
          f"mlkeep logging {args.log_rate:.0%} of requests")
    print(f"{'':14} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8}   failed")
    for name, (rps, p50, p99) in med.items():
        print(f"{name:14} {rps:11.0f} {p50:8.2f} {p99:8.2f}   {sum(r[3] for r in results[name])}")
    ours, bare = med["mlkeep serve"], med["bare FastAPI"]
    print(f"throughput ratio {ours[0] / bare[0]:.2f}x (goal >= 0.8), p99 ratio {ours[2] / bare[2]:.2f}x (goal <= 2)")
    served = (args.rounds + 1) * (args.requests + min(200, args.requests))
    print(f"alias switched {len(moves)} times under load: {switch[0]:.0f} requests/s, {switch[3]} failed requests")
    print(f"{logged} predictions logged of {served} requests to mlkeep (~{served * args.log_rate:.0f} sampled; "
          "the writer yields the CPU to answers, and drops samples when it falls far behind)")


def _logged(store_dir: str) -> int:
    import mlkeep
    from mlkeep.metadata.tables import predictions
    from sqlalchemy import func, select

    with mlkeep.open(store_dir) as store, store.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(predictions)).scalar_one())


if __name__ == "__main__":
    main()
