"""Bucket summaries of long series: folded flush by flush, equal to summarizing every point, and read for charts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from mlkeep.metadata.database import prepared
from mlkeep.metadata.tables import metric_buckets
from mlkeep.store import Store
from mlkeep.tracking.metric_buckets import (
    LEVELS, SUMMARIZE_AFTER, chart_buckets, summarize, summarize_long_series, summarized_history,
)
from mlkeep.tracking.metrics import _buckets, history_rows


def log_series(store: Store, seed: int, size: int) -> tuple[str, list[tuple[int, int, float | None]]]:
    """A series with gaps, repeated steps and timestamps, negative steps, NaN runs and ties, flushed at random."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.integers(0, 40, size)) - 2_000  # 0: a repeated step
    values = np.round(rng.normal(size=size).cumsum(), 1)  # rounding makes equal values (ties)
    values[rng.choice(size, size // 50, replace=False)] = np.nan
    values[size // 2: size // 2 + 300] = np.nan  # whole buckets of NaN
    written = []
    with store.start_run("b") as run:
        for s, v in zip(steps.tolist(), values.tolist()):
            t = 1_700_000_000_000 + int(rng.integers(0, 3))
            run.log_metric("loss", v, step=s, timestamp=t)
            written.append((s, t, None if math.isnan(v) else v))
            if rng.random() < 0.003:
                run.flush()
    return run.id, written


def stored(store: Store, run_id: str) -> list[dict[int, list[object]]]:
    c = metric_buckets.c
    levels: list[dict[int, list[object]]] = [{} for _ in LEVELS]
    with store.db.connect() as conn:
        for row in conn.execute(select(metric_buckets).where(c.run_id == run_id, c.key == "loss")):
            levels[row.level][row.bucket] = list(row[4:])
    return levels


@pytest.mark.parametrize("seed", [0, 1])
def test_summaries_folded_flush_by_flush_equal_summaries_of_every_point(store: Store, seed: int) -> None:
    run_id, written = log_series(store, seed, 6_000)
    assert stored(store, run_id) == summarize(written)


def test_a_short_series_has_no_summaries_and_crossing_the_threshold_summarizes_it_all(store: Store) -> None:
    with store.start_run("b") as run:
        run.log_metrics({"loss": 1.0, "acc": 0.5}, step=0, timestamp=0)
        run.flush()
        for s in range(1, SUMMARIZE_AFTER):  # SUMMARIZE_AFTER points: not yet long
            run.log_metric("loss", 1 / s, step=s, timestamp=s)
        run.flush()
        with store.db.connect() as conn:
            assert conn.execute(select(func.count()).select_from(metric_buckets)).scalar_one() == 0
        run.log_metric("loss", 0.0, step=SUMMARIZE_AFTER, timestamp=0)  # the crossing point
    levels = stored(store, run.id)
    assert all(sum(s[0] for s in level.values()) == SUMMARIZE_AFTER + 1 for level in levels)
    assert levels[0][0][1:] == [0, 0, 1.0, 63, 63, 1 / 63, 63, 63, 1 / 63, 0, 0, 1.0]  # first, last, min, max


@pytest.mark.parametrize("max_points", [8, 40, 400, 1000])
def test_chart_from_summaries_equals_the_databases_m4_over_the_points(store: Store, max_points: int) -> None:
    run_id, written = log_series(store, 7, 5_000)
    steps = sorted(s for s, _, _ in written)
    windows = [(None, None), (steps[100] + 0.5, steps[4_000]), (-1e30, steps[2_000]), (steps[10], math.inf),
               (float(LEVELS[0] * 3), float(LEVELS[0] * 40 - 1))]
    n = max_points // 4
    with store.db.connect() as conn:
        for lo, hi in windows:
            got, total = history_rows(conn, run_id, "loss", max_points=max_points, min_step=lo, max_step=hi)
            inside = [s for s in steps if (lo is None or s >= lo) and (hi is None or s <= hi)]
            assert total == len(inside)
            if total <= max_points:  # small enough to send whole
                assert [r[0] for r in got] == inside
                continue
            a, z = math.ceil(max(lo or -2**63, -2**63)), math.floor(min(hi or 2**63 - 1, 2**63 - 1))
            origin, width = chart_buckets(inside[0], inside[-1], n)
            args = (run_id, "loss", a, z, origin, width, (inside[-1] - origin) // width + 1)
            expected = [tuple(r) for r in prepared(conn.dialect, _buckets).execute(conn, args).fetchall()]
            assert len({(s - origin) // width for s, _, _ in got}) <= n and len(got) <= max_points
            assert sorted(got, key=repr) == sorted(expected, key=repr)
            if n >= 2 and width >= LEVELS[0]:  # the summaries answered
                assert summarized_history(conn, run_id, "loss", a, z, inside[0], inside[-1], n) == got


def test_the_migration_summarizes_series_already_long(store: Store) -> None:
    run_id, written = log_series(store, 3, 2_000)
    with store.db.begin() as conn:
        conn.execute(delete(metric_buckets))
        summarize_long_series(conn)
    assert stored(store, run_id) == summarize(written)
