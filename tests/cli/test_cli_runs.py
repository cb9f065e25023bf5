"""`mlkeep runs show | compare | history | search` and `mlkeep artifacts` on the iris store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import IrisStore, invoke


def test_show(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("runs", "show", iris_store.runs["rf"])
    assert result.exit_code == 0
    out = result.stdout
    for expected in (iris_store.runs["rf"], "FINISHED", "n_estimators", "20", "team", "cli", "acc", "loss",
                     "notes.txt", "docs/notes.txt", "Environment", "python"):
        assert expected in out, expected
    assert "Failure" not in out


def test_show_json(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    data = cli("runs", "show", iris_store.runs["rf"], "--json").json()
    assert data["id"] == iris_store.runs["rf"]
    assert data["params"] == {"model": "rf", "n_estimators": "20", "max_depth": "3"}
    assert data["tags"]["team"] == "cli"
    assert data["metrics"]["loss"]["count"] == 3 and data["metrics"]["loss"]["max"] == 1.0
    assert sorted(a["path"] for a in data["artifacts"]) == ["docs/notes.txt", "notes.txt"]


def test_show_failed_run_prints_the_traceback(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("runs", "show", iris_store.failed_run)
    assert result.exit_code == 0
    assert "FAILED" in result.stdout and "Failure" in result.stdout
    assert "ValueError: features and labels disagree" in result.stdout


def test_compare_highlights_differing_params(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    ids = [iris_store.runs["rf"], iris_store.runs["logreg"]]
    result = cli("runs", "compare", *ids)
    assert result.exit_code == 0
    assert "rf (" in result.stdout and "logreg (" in result.stdout
    assert "last / min / max" in result.stdout
    data = cli("runs", "compare", *ids, "--json").json()
    assert [r["id"] for r in data["runs"]] == ids
    assert set(data["differing_params"]) == {"model", "n_estimators", "max_depth", "C"}


def test_compare_styles_differences(iris_store: IrisStore) -> None:
    result = invoke("--store", str(iris_store.path), "runs", "compare", iris_store.runs["rf"],
                    iris_store.runs["logreg"], env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert result.exit_code == 0
    assert "\x1b[1;33m" in result.stdout  # bold yellow marks the params that differ


def test_history(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("runs", "history", iris_store.runs["rf"], "loss")
    assert result.exit_code == 0 and "3 points" in result.stdout
    points = cli("runs", "history", iris_store.runs["rf"], "loss", "--json").json()
    assert [(p["step"], p["value"]) for p in points] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]


def test_artifacts_list(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("artifacts", "list", iris_store.runs["rf"])
    assert result.exit_code == 0 and "docs/notes.txt" in result.stdout
    listed = cli("artifacts", "list", iris_store.runs["rf"], "docs", "--json").json()
    assert [a["path"] for a in listed] == ["docs/notes.txt"]
    assert listed[0]["size"] == len("trained on iris\n")


def test_artifacts_download(cli, iris_store: IrisStore, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("artifacts", "download", iris_store.runs["rf"], str(tmp_path / "all"))
    assert result.exit_code == 0
    assert (tmp_path / "all" / "notes.txt").read_text() == "trained on iris\n"
    assert (tmp_path / "all" / "docs" / "notes.txt").is_file()
    written = cli("artifacts", "download", iris_store.runs["rf"], str(tmp_path / "one"), "--path", "docs",
                  "--json").json()
    assert written == [str((tmp_path / "one" / "docs" / "notes.txt").resolve())]
    assert not (tmp_path / "one" / "notes.txt").exists()
