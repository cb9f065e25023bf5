"""Shared fixtures: a private in-memory store by default, a folder store when a test needs files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: a second OpenMP thread per worker only spins waiting for a core
    # (a CNN capture test took 29 s in the suite and 4 s alone). Set before anything imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import mlkeep
from mlkeep.store import Store

SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "ml-experiments-schema" / "schema.json"
_cluster = None


def pytest_configure(config: pytest.Config) -> None:
    """Start a throwaway PostgreSQL unless MLKEEP_TEST_POSTGRES names one (or no binaries exist)."""
    global _cluster
    if os.environ.get("MLKEEP_TEST_POSTGRES") or os.environ.get("MLKEEP_TEST_NO_POSTGRES"):
        return
    import postgres_server

    if postgres_server.available():
        _cluster = postgres_server.Cluster()
        os.environ["MLKEEP_TEST_POSTGRES"] = _cluster.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _cluster is not None:
        _cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A private store: in-memory SQLite, and the same tests again on PostgreSQL (one contract)."""
    if request.param == "sqlite":
        with mlkeep.open("memory://") as s:
            yield s
        return
    server, template = request.getfixturevalue("postgres_template")
    from postgres_server import fresh_database

    with fresh_database(server, template) as url, mlkeep.open(url, objects=f"memory://{uuid.uuid4().hex}") as s:
        yield s


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[str, str]]:
    """(server URL, name of a database migrated to head) to copy test databases from."""
    server = os.environ.get("MLKEEP_TEST_POSTGRES")
    if not server:
        pytest.skip("no PostgreSQL: install PostgreSQL 15 or set MLKEEP_TEST_POSTGRES")
    from postgres_server import fresh_database
    from sqlalchemy.engine import make_url

    with fresh_database(server) as url:
        mlkeep.open(url, objects="memory://template").close()
        yield server, str(make_url(url).database)


@pytest.fixture
def folder_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    s = mlkeep.init(tmp_path)
    yield s
    s.close()


@pytest.fixture(scope="session")
def iris():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True, as_frame=True)


@pytest.fixture(scope="session")
def digits():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


@pytest.fixture
def vanishing_framework(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iris):  # type: ignore[no-untyped-def]
    """(a model fitted on iris from the module `rarefw`, a function that uninstalls `rarefw`).

    Stands for a model whose framework is installed where it was logged and
    missing where it is loaded.
    """
    import importlib
    import sys

    X, y = iris
    (tmp_path / "rarefw.py").write_text(
        "class Majority:\n"
        "    def fit(self, X, y):\n"
        "        self.label_ = max(set(y), key=list(y).count)\n"
        "        return self\n"
        "    def predict(self, X):\n"
        "        return [self.label_] * len(X)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fitted = importlib.import_module("rarefw").Majority().fit(X, y)

    def uninstall() -> None:
        monkeypatch.delitem(sys.modules, "rarefw")
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])

    return fitted, uninstall
