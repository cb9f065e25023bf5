"""Finding, creating and opening stores, as `mlkeep.open()` promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mlkeep
from mlkeep.errors import InvalidInputError, StoreExistsError, StoreNotFoundError


def test_init_creates_folder_and_open_finds_it_by_walking_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    store = mlkeep.init(tmp_path)
    assert (tmp_path / ".mlkeep" / "mlkeep.db").is_file()
    assert (tmp_path / ".mlkeep" / "objects").is_dir()
    with store.start_run("exp", "first") as run:
        run.log_metric("m", 1.0)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    found = mlkeep.open()
    assert found.location.folder == tmp_path / ".mlkeep"
    assert found.get_run(run.id).metrics["m"].value == 1.0


def test_explicit_uri_beats_environment_beats_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    mlkeep.init(a)
    mlkeep.init(b)
    monkeypatch.chdir(a)
    monkeypatch.setenv("MLKEEP_URI", str(b))
    assert mlkeep.open().location.folder == b / ".mlkeep"
    assert mlkeep.open(str(a / ".mlkeep")).location.folder == a / ".mlkeep"


def test_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreNotFoundError, match="mlkeep init"):
        mlkeep.open()
    with pytest.raises(StoreNotFoundError):
        mlkeep.open(tmp_path / "nowhere")
    mlkeep.init(tmp_path)
    with pytest.raises(StoreExistsError):
        mlkeep.init(tmp_path)
    with pytest.raises(InvalidInputError, match="objects"):
        mlkeep.open("sqlite:///x.db")


def test_database_url_with_object_url(tmp_path: Path) -> None:
    store = mlkeep.open(f"sqlite:///{tmp_path / 'meta.db'}", objects=str(tmp_path / "blobs"))
    with store.start_run("e") as run:
        run.log_param("p", 1)
    assert store.get_run(run.id).params == {"p": "1"}


def test_memory_stores_are_private() -> None:
    a, b = mlkeep.open("memory://"), mlkeep.open("memory://")
    with a.start_run("e"):
        pass
    assert len(a.list_experiments()) == 1 and b.list_experiments() == []


def test_import_is_light() -> None:
    code = "import sys, mlkeep; print(','.join(m for m in ('sqlalchemy', 'numpy', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_all() -> None:
    for name in mlkeep.__all__:
        assert getattr(mlkeep, name) is not None
