"""`migrate`: a laptop's store (SQLite + folder) moves to PostgreSQL + S3 with nothing lost."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import mlkeep
from mlkeep.cli import app
from mlkeep.metadata.tables import metadata
from mlkeep.migrate import migrate, table_digest
from mlkeep.store import Store


def _fill(store: Store, tmp_path: Path, tag: str = "a") -> None:
    (tmp_path / f"notes-{tag}.txt").write_text(f"notes {tag}")
    with store.start_run("exp", name=f"parent-{tag}", tags={"team": "x"}) as parent:
        parent.log_params({"lr": 0.1, "model": "mlp"})
        for i in range(300):
            parent.log_metric("loss", 1 / (i + 1))
        parent.log_metric("odd", float("nan"))
        with store.start_run("exp", name=f"child-{tag}", parent=parent) as child:
            child.log_metric("acc", 0.9)
            child.log_artifact(tmp_path / f"notes-{tag}.txt")
        ds = parent.log_dataset(np.arange(60.0).reshape(20, 3), name=f"ds-{tag}")
        store.repo("net").commit({"w": np.arange(1000, dtype="float32"), "tag": np.array([ord(tag)])},
                                 f"v {tag}", run=parent, datasets=[ds])


def _same_everywhere(source: Store, target: Store) -> None:
    for table in metadata.sorted_tables:
        assert table_digest(source.db, table) == table_digest(target.db, table), table.name
    assert sorted(source.objects) == sorted(target.objects)


def _check_target(source: Store, target: Store) -> None:
    _same_everywhere(source, target)
    assert target.fsck().ok
    run = target.search_runs("params.model = 'mlp'")[0]
    loss = target.get_metric_history(run.id, "loss")
    assert len(loss) == 300 and math.isnan(target.get_metric_history(run.id, "odd")[0].value)
    assert np.array_equal(target.repo("net").checkout("main")["w"], np.arange(1000, dtype="float32"))
    with target.start_run("after") as r:  # ids and sequences carry on after the copied rows
        r.log_metric("loss", 0.5)


def _target(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Any:
    if kind == "sqlite":
        return _nullcontext(f"sqlite:///{tmp_path / 'target.db'}"), str(tmp_path / "target-objects")
    server, _ = request.getfixturevalue("postgres_template")
    s3 = request.getfixturevalue("seaweedfs")
    from postgres_server import fresh_database

    return fresh_database(server), s3.url()


class _nullcontext:
    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> str:
        return self.value

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("kind", ["sqlite", "postgresql+s3"])
def test_migrate_copies_everything_and_checks_it(
    kind: str, request: pytest.FixtureRequest, folder_store: Store, tmp_path: Path
) -> None:
    _fill(folder_store, tmp_path)
    database, objects = _target(request, kind, tmp_path)
    with database as url:
        report = migrate(folder_store, url, objects)
        assert report.ok, report.problems
        assert report.tables["metrics"].copied == 302 and report.objects_copied == report.objects > 0
        assert report.objects_verified == report.objects
        again = migrate(folder_store, url, objects)  # idempotent: nothing to copy the second time
        assert again.ok and again.objects_copied == 0 and sum(t.copied for t in again.tables.values()) == 0
        _fill(folder_store, tmp_path, "b")  # new work since: a second run adds exactly it
        third = migrate(folder_store, url, objects)
        assert third.ok and third.tables["runs"].copied == 2
        with mlkeep.open(url, objects=objects) as target:
            _check_target(folder_store, target)


def test_an_interrupted_migration_resumes(folder_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(folder_store, tmp_path)
    url, objects = f"sqlite:///{tmp_path / 'target.db'}", str(tmp_path / "target-objects")
    import mlkeep.migrate as m

    real = m._copy_table
    last = metadata.sorted_tables[-1].name
    monkeypatch.setattr(m, "_copy_table", lambda src, dst, table, p: (_ for _ in ()).throw(KeyboardInterrupt)
                        if table.name == last else real(src, dst, table, p))
    with pytest.raises(KeyboardInterrupt):
        migrate(folder_store, url, objects)
    monkeypatch.setattr(m, "_copy_table", real)
    report = migrate(folder_store, url, objects)
    assert report.ok and report.objects_copied == 0
    assert {name for name, t in report.tables.items() if t.copied} <= {last}


def test_a_target_that_differs_is_reported(folder_store: Store, tmp_path: Path) -> None:
    _fill(folder_store, tmp_path)
    url, objects = f"sqlite:///{tmp_path / 'target.db'}", str(tmp_path / "target-objects")
    assert migrate(folder_store, url, objects).ok
    with mlkeep.open(url, objects=objects) as target, target.db.begin() as conn:
        run_id = conn.exec_driver_sql("SELECT run_id FROM params").scalar()
        conn.exec_driver_sql(f"INSERT INTO params VALUES ('{run_id}', 'stray', '1')")
    report = migrate(folder_store, url, objects)
    assert not report.ok and report.problems == ["table params: 2 rows in the source, 3 in the target"]


def test_cli_db_upgrade_and_migrate(folder_store: Store, tmp_path: Path) -> None:
    _fill(folder_store, tmp_path)
    runner = CliRunner()
    store = ["--store", str(folder_store.location.folder)]
    result = runner.invoke(app, [*store, "db", "upgrade", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["to"] == json.loads(result.output)["head"]
    url, objects = f"sqlite:///{tmp_path / 'cli.db'}", str(tmp_path / "cli-objects")
    result = runner.invoke(app, [*store, "migrate", "--to", url, "--objects", objects, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    result = runner.invoke(app, [*store, "migrate", "--to", url, "--objects", objects])
    assert result.exit_code == 0 and "nothing lost" in result.output
