"""Shared fixtures: a private in-memory store by default, a folder store when a test needs files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mlkeep
from mlkeep.store import Store

SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "ml-experiments-schema" / "schema.json"


@pytest.fixture
def store() -> Iterator[Store]:
    s = mlkeep.open("memory://")
    yield s
    s.close()


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
