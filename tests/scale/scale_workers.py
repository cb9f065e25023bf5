"""Writer processes for the scale tests: `python scale_workers.py MODE ARGS...`.

The store comes from MLKEEP_URI (and MLKEEP_OBJECTS for a database URL).
Every worker prints one line per acknowledged write (the call returned, so
the value is promised to be there) and, at the end, `done`; a worker that
caught an error prints `error TYPE: message` and exits 1.
"""

from __future__ import annotations

import os
import random
import sys
import traceback

import numpy as np

import mlkeep
from mlkeep.errors import ConflictError
from mlkeep.tracking.active_run import ActiveRun


def say(*words: object) -> None:
    """One acknowledgment line in one write: `print` writes each word apart, so with PYTHONUNBUFFERED a kill
    between two writes left a line cut short ("commit" without its id)."""
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


def metrics_to_one_run(store: mlkeep.Store, run_id: str, worker: int, n: int) -> None:
    """`n` values of a key of its own and of a key every worker shares, keys in a random order per batch."""
    run = ActiveRun(store.db, store.objects, run_id)
    rng = random.Random(worker)
    keys = [f"w{worker}", "shared", *(f"k{j}" for j in range(4))]
    for i in range(n):
        rng.shuffle(keys)  # different orders in different processes: deadlock bait on PostgreSQL
        for key in keys:
            run.log_metric(key, float(i), step=worker * n + i)
        if i % 97 == 0:
            run.flush()
    run.flush()


def runs(store: mlkeep.Store, worker: int, n_runs: int, n: int) -> None:
    for r in range(n_runs):
        with store.start_run("scale", name=f"w{worker}-r{r}", tags={"worker": worker}) as run:
            run.log_params({"worker": worker, "r": r})
            for i in range(n):
                run.log_metric("loss", 1.0 / (i + 1), step=i)
        say("run", run.id)


def commits(store: mlkeep.Store, worker: int, attempts: int) -> None:
    repo = store.repo("shared")
    for a in range(attempts):
        try:
            c = repo.commit({"w": np.full(16, worker * 100 + a, dtype="float32")}, f"w{worker} a{a}")
            say("won", c.id, c.parents[0] if c.parents else "-")
        except ConflictError:
            say("lost")


def blob(store: mlkeep.Store, path: str) -> None:
    oid, _ = store.objects.put_file(path)
    say("blob", oid)


def crash(store: mlkeep.Store, worker: int, workdir: str) -> None:
    """Forever: a run with metrics and an artifact, then a model commit; prints what was acknowledged."""
    rng = np.random.default_rng(worker + os.getpid())
    i = 0
    while True:
        with store.start_run("crash", name=f"w{worker}-{i}") as run:
            for j in range(200):
                run.log_metric("v", float(j), step=j)
            run.flush()
            say("metrics", run.id, 200)
            path = os.path.join(workdir, f"w{worker}-{i % 2}.bin")
            with open(path, "wb") as f:
                f.write(rng.bytes(int(rng.integers(1, 3_000_000))))
            art = run.log_artifact(path)[0]
            say("artifact", run.id, art.path, art.object)
        try:
            c = store.repo(f"crash{worker % 2}").commit(
                {"w": rng.standard_normal(100_000).astype("float32"), "b": np.arange(i, i + 10.0)}, f"w{worker} {i}"
            )
            say("commit", c.id)
        except ConflictError:
            pass
        i += 1


def capture(store: mlkeep.Store, worker: int) -> None:
    """Forever: nudge a small network's weights, capture every layer over one dataset; prints the ids."""
    import torch

    torch.manual_seed(worker)
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    X = np.random.default_rng(worker).standard_normal((3000, 32)).astype("float32")
    i = 0
    while True:
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01)
        items = store.intermediates.capture(net, X, codec="exact", name=f"w{worker}-{i}", repo=f"cap{worker}")
        say("capture", *(item.id for item in items.values()))
        i += 1


def steady(store: mlkeep.Store, seconds: float) -> None:
    """One run for `seconds`: 100 values at a time, each batch flushed and then acknowledged."""
    import time

    deadline = time.monotonic() + seconds
    with store.start_run("steady") as run:
        say("run", run.id)
        n = 0
        while time.monotonic() < deadline:
            for _ in range(100):
                run.log_metric("v", float(n))
                n += 1
            run.flush()
            say("flushed", n)
            time.sleep(0.02)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    store = mlkeep.open()
    try:
        if mode == "metrics":
            metrics_to_one_run(store, args[0], int(args[1]), int(args[2]))
        elif mode == "runs":
            runs(store, int(args[0]), int(args[1]), int(args[2]))
        elif mode == "commits":
            commits(store, int(args[0]), int(args[1]))
        elif mode == "blob":
            blob(store, args[0])
        elif mode == "crash":
            crash(store, int(args[0]), args[1])
        elif mode == "capture":
            capture(store, int(args[0]))
        elif mode == "steady":
            steady(store, float(args[0]))
        else:
            raise SystemExit(f"unknown mode {mode}")
    except Exception as exc:
        traceback.print_exc()
        say(f"error {type(exc).__name__}: {exc}")
        sys.exit(1)
    finally:
        store.close()
    say("done")


if __name__ == "__main__":
    main()
