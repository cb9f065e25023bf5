"""Library errors reach the user as one line on stderr and exit code 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import IrisStore, invoke


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "no-such-run"],
        ["runs", "compare", "no-such-run", "no-such-run-either"],
        ["lineage", "no-such-entity"],
        ["artifacts", "download", "no-such-run", "out"],
        ["datasets", "show", "no-such-dataset"],
        ["models", "show", "no-such-model"],
    ],
)
def test_unknown_ids_give_one_line_and_exit_1(cli, args: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args = [str(tmp_path / a) if a == "out" else a for a in args]
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no-such" in lines[0]
    assert "Traceback" not in result.stderr


def test_unsafe_artifact_path_is_refused(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("artifacts", "list", iris_store.runs["rf"], "../outside")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_missing_store_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLKEEP_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = invoke("experiments")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: No mlkeep store") and result.stderr.count("\n") == 1


def test_init_twice_is_an_error(tmp_path: Path) -> None:
    assert invoke("init", str(tmp_path)).exit_code == 0
    result = invoke("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "already holds an mlkeep store" in result.stderr


def test_lineage_rejects_negative_depth(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("lineage", iris_store.runs["rf"], "--depth", "-1")
    assert result.exit_code == 2  # a usage error, caught before the library is called


def test_a_real_process_prints_one_line_and_exits_1(iris_store: IrisStore) -> None:
    env = {**os.environ, "MLKEEP_URI": str(iris_store.path)}
    out = subprocess.run(
        [sys.executable, "-m", "mlkeep.cli", "runs", "show", "no-such-run"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [out.stderr.strip()] and out.stderr.startswith("error: No run with id")
