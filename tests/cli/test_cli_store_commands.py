"""`mlkeep init`, finding the store (--store, MLKEEP_URI, the working directory) and `mlkeep experiments`."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlkeep

from cli_support import IrisStore, invoke


def test_init_creates_a_store_that_opens(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path))
    assert result.exit_code == 0
    assert str(tmp_path / ".mlkeep") in result.stdout
    with mlkeep.open(tmp_path) as store:
        assert store.list_experiments() == []


def test_init_json(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path), "--json")
    assert result.exit_code == 0
    assert result.json() == {"uri": str(tmp_path.resolve() / ".mlkeep")}


def test_init_defaults_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init").exit_code == 0
    assert (tmp_path / ".mlkeep" / "config.json").is_file()


def test_experiments_table(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("experiments")
    assert result.exit_code == 0
    assert "iris" in result.stdout


def test_experiments_json(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("experiments", "--json")
    assert result.exit_code == 0
    assert [e["name"] for e in result.json()] == ["iris"]


def test_store_from_environment(iris_store: IrisStore) -> None:
    result = invoke("experiments", "--json", env={"MLKEEP_URI": str(iris_store.path)})
    assert result.exit_code == 0
    assert [e["name"] for e in result.json()] == ["iris"]


def test_store_found_above_the_working_directory(iris_store: IrisStore, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    inner = iris_store.path / "some" / "folder"
    inner.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(inner)
    result = invoke("experiments", "--json")
    assert result.exit_code == 0
    assert [e["name"] for e in result.json()] == ["iris"]


def test_empty_store(tmp_path: Path) -> None:
    mlkeep.init(tmp_path).close()
    result = invoke("--store", str(tmp_path), "experiments", "--json")
    assert result.exit_code == 0 and result.json() == []
