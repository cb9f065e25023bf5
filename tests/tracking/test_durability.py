"""The durability promise of metric logging, tested against a process killed with SIGKILL.

A value is on disk when `run.flush()` returns, when the run ends, and at most
about a second after `log_metric` (the background flusher runs every 0.5 s).
Here a real Python process logs through the public API into a folder store,
reports on stdout what it has logged and flushed, and is killed mid-stream;
the test then counts what the store kept.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlkeep
from mlkeep.store import Store

FLUSHED_ROUNDS = 5
PER_ROUND = 1000
LOGGING_SECONDS = 2.5  # of unflushed logging before the kill
MARGIN = 1.5  # values logged this long before the kill must be stored

CHILD = textwrap.dedent(
    """
    import sys, time
    import mlkeep

    store = mlkeep.open(sys.argv[1])
    run = store.start_run("durability", name="killed")
    print("run", run.id, flush=True)
    for r in range({rounds}):
        for i in range({per_round}):
            step = r * {per_round} + i
            run.log_metric("flushed", step * 0.5, step=step)
        run.flush()
        print("flushed", (r + 1) * {per_round}, flush=True)
    n = 0
    while True:  # never flushed explicitly: only the background flusher writes these
        for _ in range(50):
            run.log_metric("unflushed", n * 0.25, step=n)
            n += 1
        print("logged", n, flush=True)
        time.sleep(0.01)
    """
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    mlkeep.init(tmp_path).close()
    return tmp_path


@pytest.fixture
def folder_store(folder: Path) -> Iterator[Store]:
    s = mlkeep.open(folder)
    yield s
    s.close()


def _read_lines(proc: subprocess.Popen[str], sink: list[tuple[float, list[str]]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.append((time.monotonic(), line.split()))


def _wait_for(lines: list[tuple[float, list[str]]], word: str, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(parts and parts[0] == word for _, parts in lines):
        if proc.poll() is not None:
            raise AssertionError(f"the logging process exited early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {word!r} line from the logging process within {timeout} s")
        time.sleep(0.01)


def test_sigkill_loses_nothing_flushed_nor_older_than_a_second(folder: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(rounds=FLUSHED_ROUNDS, per_round=PER_ROUND), str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder,
    )
    lines: list[tuple[float, list[str]]] = []
    reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, "logged", proc, timeout=60)  # interpreter start-up is slow on a loaded machine
        time.sleep(LOGGING_SECONDS)
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    assert proc.returncode == -signal.SIGKILL

    run_id = next(parts[1] for _, parts in lines if parts[0] == "run")
    flushed = max(int(parts[1]) for _, parts in lines if parts[0] == "flushed")
    # Every line was printed after its values were logged and read here later still,
    # so the receive time bounds the logging time from above.
    old_enough = [int(parts[1]) for t, parts in lines if parts[0] == "logged" and t <= killed_at - MARGIN]
    must_have = max(old_enough, default=0)
    assert flushed == FLUSHED_ROUNDS * PER_ROUND
    assert must_have > 0, "the test logged nothing early enough to check the background flusher"

    db_file = folder / ".mlkeep" / "mlkeep.db"
    with sqlite3.connect(db_file) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with mlkeep.open(folder) as store:
        history = store.get_metric_history(run_id, "flushed")
        assert [m.step for m in history] == list(range(flushed))
        assert [m.value for m in history] == [s * 0.5 for s in range(flushed)]

        unflushed = store.get_metric_history(run_id, "unflushed")
        # What the flusher wrote is a prefix of what was logged: no holes, no duplicates.
        assert [m.step for m in unflushed] == list(range(len(unflushed)))
        assert [m.value for m in unflushed] == [s * 0.25 for s in range(len(unflushed))]
        assert len(unflushed) >= must_have, (
            f"{must_have} values were logged more than {MARGIN} s before the kill, only {len(unflushed)} were stored"
        )

        summary = store.get_run(run_id).metrics
        assert summary["flushed"].count == flushed
        assert summary["unflushed"].count == len(unflushed)
        assert store.get_run(run_id).status == "RUNNING"  # killed: nobody ended it

        with store.start_run("durability", name="after") as run:  # the store still takes new runs
            run.log_params({"after": "kill"})
            run.log_metric("x", 1.0)
        after = store.get_run(run.id)
        assert after.status == "FINISHED" and after.metrics["x"].value == 1.0


def test_values_are_durable_when_flush_and_end_return_without_any_wait(folder: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys, signal
        import mlkeep

        store = mlkeep.open(sys.argv[1])
        flushed = store.start_run("durability", name="flushed")
        for i in range(300):
            flushed.log_metric("m", float(i))
        flushed.flush()
        with store.start_run("durability", name="ended") as ended:
            ended.log_metrics({"a": 1.0, "b": 2.0})
        flushed.log_metric("m", 999.0)  # not flushed: may or may not survive
        print(flushed.id, ended.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no background flush after this line
        """
    )
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL, out.stderr
    flushed_id, ended_id = out.stdout.split()
    with mlkeep.open(folder) as store:
        steps = [m.step for m in store.get_metric_history(flushed_id, "m")]
        assert steps[:300] == list(range(300)) and len(steps) in (300, 301)
        ended = store.get_run(ended_id)
        assert ended.status == "FINISHED"
        assert {k: v.value for k, v in ended.metrics.items()} == {"a": 1.0, "b": 2.0}


def test_many_threads_logging_to_one_run_lose_nothing(folder_store: Store) -> None:
    threads, per_thread = 8, 3000
    errors: list[BaseException] = []
    run = folder_store.start_run("threads")

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                run.log_metric(f"own{t}", float(i), step=i)
                run.log_metric("shared", float(t))  # step picked by the buffer: must stay unique
                if i % 3 == 0:
                    run.log_metrics({"batch": float(i), f"batch{t}": float(i)})
                if i % 700 == 0:
                    run.flush()  # flushes racing each other and the background flusher
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    run.end()
    assert not errors

    for t in range(threads):
        own = folder_store.get_metric_history(run.id, f"own{t}")
        assert [m.step for m in own] == list(range(per_thread))
        assert len(folder_store.get_metric_history(run.id, f"batch{t}")) == per_thread // 3
    shared = folder_store.get_metric_history(run.id, "shared")
    assert sorted(m.step for m in shared) == list(range(threads * per_thread))
    assert sorted(m.value for m in shared) == sorted(float(t) for t in range(threads) for _ in range(per_thread))
    assert len(folder_store.get_metric_history(run.id, "batch")) == threads * (per_thread // 3)
    info = folder_store.get_run(run.id)
    assert info.metrics["shared"].count == threads * per_thread
    assert info.metrics["shared"].step == threads * per_thread - 1
    assert info.metrics["own0"].min == 0.0 and info.metrics["own0"].max == per_thread - 1


def test_many_threads_on_an_in_memory_store_lose_nothing() -> None:
    """The in-memory store is one connection shared by all threads; flushes must not interleave."""
    with mlkeep.open("memory://") as store:
        runs = [store.start_run("threads") for _ in range(4)]

        def work(r: int) -> None:
            for i in range(2000):
                runs[r].log_metric("m", float(i))
                if i % 500 == 0:
                    runs[r].flush()

        workers = [threading.Thread(target=work, args=(r,)) for r in range(len(runs))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for run in runs:
            run.end()
            assert len(store.get_metric_history(run.id, "m")) == 2000
            assert store.get_run(run.id).metrics["m"].count == 2000
