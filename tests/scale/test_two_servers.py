"""Two `mlkeep server` processes in front of one PostgreSQL + S3 store serve the same data.

What one server writes, the other reads at once (runs, params, tags, metric
histories, artifacts, model versions); writers going through both at the same
time lose nothing; commits racing on one branch through both servers each
either win or get `ConflictError`, and leave one history both servers show.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import mlkeep
from mlkeep.client import RemoteRun, RemoteStore
from mlkeep.errors import ConflictError
from scale_team import Team, in_threads

pytestmark = pytest.mark.slow  # PostgreSQL, SeaweedFS and two server processes


@pytest.fixture
def two(pg_team: Team) -> Iterator[tuple[RemoteStore, RemoteStore]]:
    with pg_team.server() as url_a, pg_team.server() as url_b:
        a, b = mlkeep.open(url_a), mlkeep.open(url_b)
        assert isinstance(a, RemoteStore) and isinstance(b, RemoteStore)
        yield a, b
        a.close()
        b.close()


def test_what_one_server_writes_the_other_serves(pg_team: Team, two: tuple[RemoteStore, RemoteStore],
                                                  tmp_path: Path) -> None:
    a, b = two
    big = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "weights.bin").write_bytes(big)
    with a.start_run("two-servers", "written-through-a") as run:
        run.log_params({"lr": 0.01, "layers": 3})
        run.set_tag("team", "vision")
        for i in range(1000):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.log_artifact(tmp_path / "weights.bin", "ckpt")
    got = b.get_run(run.id)
    assert got.status == "FINISHED" and got.params == {"lr": "0.01", "layers": "3"}
    assert got.tags["team"] == "vision" and got.metrics["loss"].count == 1000
    assert [m.step for m in b.get_metric_history(run.id, "loss")] == list(range(1000))
    assert [r.id for r in b.search_runs("params.layers = '3' and tags.team = 'vision'")] == [run.id]
    (back,) = b.download_artifacts(run.id, tmp_path / "back")
    assert back.read_bytes() == big

    weights = np.random.default_rng(0).standard_normal(50_000).astype("float32")
    commit = a.repo("net").commit({"w": weights}, "v1", run=run.id)
    assert b.repo("net").get("main").id == commit.id
    assert np.array_equal(b.repo("net").checkout("main")["w"], weights)
    b.repo("net").commit({"w": weights + 1}, "v2")
    assert [c.message for c in a.repo("net").log()] == [c.message for c in b.repo("net").log()] == ["v2", "v1"]
    assert np.array_equal(a.repo("net").checkout("main")["w"], weights + 1)
    assert pg_team.store.fsck().ok


def test_writers_through_both_servers_at_once_lose_nothing(two: tuple[RemoteStore, RemoteStore]) -> None:
    a, b = two
    writers, n = 6, 300
    shared_id = a.start_run("both").id
    made: list[str] = []

    def work(w: int) -> None:
        server = (a, b)[w % 2]
        shared = RemoteRun(server, server.get_run(shared_id))  # one run, written through both servers
        for i in range(n):
            shared.log_metric("shared", float(i), step=w * n + i)
        shared.flush()
        for r in range(2):
            with server.start_run("both", name=f"w{w}-{r}") as own:
                own.log_params({"w": w, "r": r})
                own.log_metrics({"loss": 1.0 / (w + 1)})
            made.append(own.id)

    in_threads(work, writers)
    for server in (a, b):
        assert sorted(m.step for m in server.get_metric_history(shared_id, "shared")) == list(range(writers * n))
        found = {r.id for r in server.search_runs("attributes.status = 'FINISHED'", experiments=["both"])}
        assert found == set(made) and len(made) == writers * 2


def test_commits_racing_on_one_branch_through_both_servers(two: tuple[RemoteStore, RemoteStore]) -> None:
    a, b = two
    a.repo("shared").commit({"w": np.zeros(16, dtype="float32")}, "root")
    writers, attempts = 6, 4
    outcomes: list[tuple[str, str | None]] = []  # ("won", commit id) or ("lost", None)

    def work(w: int) -> None:
        repo = (a, b)[w % 2].repo("shared")
        for i in range(attempts):
            try:
                c = repo.commit({"w": np.full(16, w * 100 + i, dtype="float32")}, f"w{w} a{i}")
                outcomes.append(("won", c.id))
            except ConflictError:
                outcomes.append(("lost", None))

    in_threads(work, writers)
    assert len(outcomes) == writers * attempts  # every attempt moved the branch or got ConflictError
    won = [cid for outcome, cid in outcomes if outcome == "won"]
    through_a = [c.id for c in a.repo("shared").log()]
    through_b = [c.id for c in b.repo("shared").log()]
    assert through_a == through_b  # one history, whichever server is asked
    assert sorted(through_a[:-1]) == sorted(won)  # every winner is on the branch, nothing else is
