"""The Alembic migrations and tables.py must describe the same schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from mlkeep.metadata import Database
from mlkeep.metadata.database import HEAD_REVISION
from mlkeep.metadata.tables import metadata


def test_migrations_match_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert db.revision() == HEAD_REVISION


def test_ensure_schema_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.ensure_schema()
    db.ensure_schema()
    assert "runs" in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_upgrading_to_metric_buckets_summarizes_long_series(tmp_path: Path) -> None:
    """0008 adds `metric_buckets`; series already past the threshold get their summaries in the migration."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import insert, select

    from mlkeep.metadata.database import MIGRATIONS, prepared
    from mlkeep.metadata.tables import experiments, metric_buckets, runs
    from mlkeep.tracking import metrics as tracking_metrics
    from mlkeep.tracking.metric_buckets import LEVELS, SUMMARIZE_AFTER, summarize

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
    points = [("loss", 1 / (s + 1), s * 3, s) for s in range(SUMMARIZE_AFTER * 3)]
    with db.begin() as conn:
        conn.execute(insert(experiments).values(id="e", name="e", creation_time=0))
        for run_id in ("long", "short"):
            conn.execute(insert(runs).values(id=run_id, experiment_id="e", name=run_id, status="RUNNING",
                                             start_time=0, lifecycle_stage="active"))
        # Written as 0007 wrote them: points and latest_metrics only (no bucket table to fold into yet).
        rows = [("long", k, s, t, v) for k, v, s, t in points] + [("short", "loss", 0, 0, 1.0)]
        prepared(conn.dialect, tracking_metrics._insert_metrics).executemany(conn, rows)
        prepared(conn.dialect, tracking_metrics._upsert_latest).executemany(conn, tracking_metrics._summaries(rows))
    db.upgrade()
    with db.connect() as conn:
        got = conn.execute(select(metric_buckets).order_by("level", "bucket")).all()
    expected = summarize([(s, t, v) for _, v, s, t in points])
    assert {r.run_id for r in got} == {"long"}
    assert [(r.level, r.bucket, *r[4:]) for r in got] == [
        (level, b, *summary) for level in range(len(LEVELS)) for b, summary in sorted(expected[level].items())]


def test_upgrading_to_search_indexes_keeps_the_rows_and_downgrades(tmp_path: Path) -> None:
    """0010 swaps the key/value and history indexes for covering ones over a store with rows; 0009 swaps back."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import insert, select

    from mlkeep.metadata.database import MIGRATIONS
    from mlkeep.metadata.tables import experiments, metrics, params, runs

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
    with db.begin() as conn:
        conn.execute(insert(experiments).values(id="e", name="e", creation_time=0))
        conn.execute(insert(runs).values(id="r", experiment_id="e", name="r", status="RUNNING", start_time=0,
                                         lifecycle_stage="active"))
        conn.execute(insert(params).values(run_id="r", key="model", value="rf"))
        conn.execute(insert(metrics).values(run_id="r", key="loss", step=1, timestamp=2, value=0.5))

    def indexes(table: str) -> set[str]:
        return {i["name"] for i in inspect(db.engine).get_indexes(table)}

    assert "ix_params_key_value" in indexes("params")
    db.upgrade()
    assert indexes("params") == {"ix_params_key_value_run"}
    assert indexes("metrics") == {"ix_metrics_run_key_step_covering"}
    assert "ix_runs_experiment_stage_start" in indexes("runs")
    with db.connect() as conn:
        assert conn.execute(select(params.c.run_id).where(params.c.key == "model", params.c.value == "rf")).all() == [
            ("r",)]
        assert conn.execute(select(metrics.c.step, metrics.c.value)).all() == [(1, 0.5)]
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    assert indexes("params") == {"ix_params_key_value"} and indexes("metrics") == {"ix_metrics_run_key_step"}
    assert "ix_runs_experiment_stage_start" not in indexes("runs")
