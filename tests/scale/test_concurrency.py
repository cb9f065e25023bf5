"""Many writers at once lose nothing: every value, run, commit and blob is counted afterwards.

Each test runs on a SQLite file with a local folder and on PostgreSQL with
S3 (SeaweedFS), with 8 writer processes (or threads) at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from scale_team import Team, in_threads
from mlkeep.metadata.tables import latest_metrics, metrics, runs
from mlkeep.tracking.active_run import ActiveRun

WRITERS = 8


def _wait_all(procs: list) -> list[list[list[str]]]:  # type: ignore[type-arg]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, out[-2000:] + err[-3000:]
        assert "database is locked" not in err
        outs.append([line.split() for line in out.splitlines()])
    return outs


def _count(team: Team, table, *where) -> int:  # type: ignore[no-untyped-def]
    with team.store.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_processes_logging_to_one_run_lose_nothing(team: Team) -> None:
    n = 200
    with team.store.start_run("scale") as run:
        procs = [team.start("metrics", run.id, w, n) for w in range(WRITERS)]
        _wait_all(procs)
    assert _count(team, metrics, metrics.c.run_id == run.id) == WRITERS * n * 6
    shared = team.store.get_metric_history(run.id, "shared")
    assert sorted(m.step for m in shared) == list(range(WRITERS * n))
    with team.store.db.connect() as conn:
        counts = dict(conn.execute(select(latest_metrics.c.key, latest_metrics.c.count)
                                   .where(latest_metrics.c.run_id == run.id)).all())
    assert counts["shared"] == WRITERS * n and counts["w3"] == n


def test_processes_creating_runs_lose_nothing(team: Team) -> None:
    n_runs, n = 6, 40
    outs = _wait_all([team.start("runs", w, n_runs, n) for w in range(WRITERS)])
    acknowledged = {line[1] for out in outs for line in out if line[0] == "run"}
    assert len(acknowledged) == WRITERS * n_runs
    stored = {r.id for r in team.store.search_runs("", experiments=["scale"], limit=10_000)}
    assert stored == acknowledged
    assert _count(team, metrics) == WRITERS * n_runs * n
    assert all(r.status == "FINISHED" for r in team.store.get_runs(sorted(stored)))


def test_threads_logging_to_one_run_and_to_runs_of_their_own(team: Team) -> None:
    n = 500
    shared = team.store.start_run("threads")

    def work(w: int) -> None:
        for i in range(n):
            shared.log_metric("shared", float(i), step=w * n + i)
        with team.store.start_run("threads", name=f"t{w}") as own:
            own.log_metrics({"a": 1.0, "b": 2.0})
            for i in range(n):
                own.log_metric("loss", float(i))
        shared.flush()

    in_threads(work, WRITERS)
    shared.end()
    assert len(team.store.get_metric_history(shared.id, "shared")) == WRITERS * n
    assert _count(team, runs) == WRITERS + 1
    assert _count(team, metrics) == WRITERS * n + WRITERS * (n + 2)


def test_concurrent_commits_to_one_branch_move_it_by_compare_and_swap(team: Team) -> None:
    team.store.repo("shared").commit({"w": np.zeros(16, dtype="float32")}, "root")
    attempts = 4
    outs = _wait_all([team.start("commits", w, attempts) for w in range(WRITERS)])
    lines = [line for out in outs for line in out if line[0] in ("won", "lost")]
    assert len(lines) == WRITERS * attempts
    won = [line for line in lines if line[0] == "won"]
    history = [c.id for c in team.store.repo("shared").log("main")]
    # every winner is on the branch, nothing else is, and each won against the head it saw
    assert sorted(history[:-1]) == sorted(line[1] for line in won)
    parents = {line[1]: line[2] for line in won}
    for child, parent in zip(history, history[1:]):
        assert parents.get(child, parent) == parent
    assert len(won) >= 1


def test_concurrent_uploads_of_the_same_blob(team: Team, tmp_path: Path) -> None:
    src = tmp_path / "same.bin"
    src.write_bytes(os.urandom(2_500_000))
    outs = _wait_all([team.start("blob", src) for _ in range(WRITERS)])
    ids = {line[1] for out in outs for line in out if line[0] == "blob"}
    assert len(ids) == 1
    oid = ids.pop()
    assert list(team.store.objects) == [oid] and team.store.objects.verify(oid)
    assert team.store.objects.temporary_files() == []


def test_a_new_store_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    """Eight processes opening (and so creating the schema of) one new SQLite store: no lock errors."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = ("import mlkeep,sys; s=mlkeep.open(sys.argv[1], objects=sys.argv[2]); "
            "r=s.start_run('x'); r.log_metric('m', 1.0); r.end(); print(s.db.revision())")
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(tmp_path / "o")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(WRITERS)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    import mlkeep

    with mlkeep.open(url, objects=str(tmp_path / "o")) as store:
        assert len(store.search_runs("")) == WRITERS


def test_activerun_is_reachable_for_other_processes(team: Team) -> None:
    """The workers above attach to a run by id; that handle writes like the one that started it."""
    with team.store.start_run("attach") as run:
        other = ActiveRun(team.store.db, team.store.objects, run.id)
        other.log_metric("m", 1.0)
        other.flush()
    assert len(team.store.get_metric_history(run.id, "m")) == 1
