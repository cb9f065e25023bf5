"""`mlkeep export` and `mlkeep import`: ml-experiments-schema documents out and back in."""

from __future__ import annotations

from pathlib import Path

from cli_support import IrisStore, invoke

import mlkeep


def test_export_then_import(cli, iris_store: IrisStore, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "docs"
    result = cli("export", "--format", "ml-experiments-schema", str(out), "--json")
    assert result.exit_code == 0
    counts = result.json()
    assert counts and all(isinstance(n, int) for n in counts.values())
    assert sum(counts.values()) >= len(iris_store.runs) + 1  # at least the runs
    assert any(out.rglob("*.json"))

    mlkeep.init(tmp_path / "copy").close()
    imported = invoke("--store", str(tmp_path / "copy"), "import", str(out), "--json")
    assert imported.exit_code == 0
    assert all(isinstance(n, int) for n in imported.json().values())
    copied = invoke("--store", str(tmp_path / "copy"), "runs", "search", "--json").json()
    assert {r["id"] for r in copied} >= set(iris_store.runs.values())


def test_export_table(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("export", str(tmp_path / "docs"))  # the format defaults to ml-experiments-schema
    assert result.exit_code == 0
    assert "Exported into" in result.stdout and "count" in result.stdout


def test_export_rejects_other_formats(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("export", "--format", "mlflow", str(tmp_path / "docs"))
    assert result.exit_code == 2
    assert "mlflow" in result.stderr
    assert not (tmp_path / "docs").exists()


def test_import_from_a_missing_folder_fails(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("import", str(tmp_path / "nothing-here"))
    assert result.exit_code == 1 and result.stderr.startswith("error: ")


def test_schema_option_is_passed_to_export_and_import(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "no-schema.json"
    out = tmp_path / "docs"
    for args in (("export", "--schema", str(missing), str(out)), ("import", "--schema", str(missing), str(tmp_path))):
        result = cli(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ") and "no-schema.json" in result.stderr
    assert not out.exists()
