"""Metric history for charts: the database's M4 downsampling against a plain reference, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlkeep.errors import InvalidInputError
from mlkeep.store import Store
from mlkeep.tracking.metric_buckets import LEVELS, SUMMARIZE_AFTER, chart_buckets
from mlkeep.tracking.metrics import history_rows


def reference(points: list[tuple[int, float, int]], max_points: int) -> list[tuple[int, float, int]]:
    """Each bucket of `chart_buckets` keeps its first, lowest, highest and last point."""
    steps = [p[0] for p in points]
    origin, width = chart_buckets(min(steps), max(steps), max_points // 4)
    buckets: dict[int, list[tuple[int, float, int]]] = {}
    for p in points:
        buckets.setdefault((p[0] - origin) // width, []).append(p)
    assert len(buckets) <= max_points // 4
    keep = set()
    for pts in buckets.values():
        numbers = [p for p in pts if not math.isnan(p[1])] or pts
        keep |= {pts[0], pts[-1], min(numbers, key=lambda p: p[1]), max(numbers, key=lambda p: p[1])}
    return sorted(keep)


@pytest.mark.parametrize(("seed", "sizes"), [(0, (3_000, 8_000)), (1, (3_000, 8_000)), (2, (300, SUMMARIZE_AFTER))])
def test_downsampled_history_is_first_min_max_last_of_each_bucket(store: Store, seed: int,
                                                                  sizes: tuple[int, int]) -> None:
    """Long series come from their bucket summaries, short ones from the points: the same answer."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(*sizes))
    steps = np.cumsum(rng.integers(1, 20, size)) + int(rng.integers(-500, 500))  # gaps, maybe negative
    values = rng.normal(size=size).cumsum()
    values[rng.choice(size, 30, replace=False)] = np.nan
    values[size // 3] = 1e6  # a spike
    with store.start_run("h") as run:
        for s, v in zip(steps.tolist(), values.tolist()):
            run.log_metric("loss", v, step=s, timestamp=1_700_000_000_000 + s)
            if rng.random() < 0.002:
                run.flush()  # summaries are folded flush by flush
    points = [(s, v, 1_700_000_000_000 + s) for s, v in zip(steps.tolist(), values.tolist())]
    max_points = int(rng.integers(40, 600))
    with store.db.connect() as conn:
        rows, total = history_rows(conn, run.id, "loss", max_points=max_points)
        lo, hi = int(steps[size // 4]) + 0.5, int(steps[size // 2])  # a zoom window, fractional bound
        zoomed, zoom_total = history_rows(conn, run.id, "loss", max_points=max_points, min_step=lo, max_step=hi)
        everything, all_total = history_rows(conn, run.id, "loss")
    assert total == all_total == size and len(everything) == size
    got = [(s, math.nan if v is None else v, t) for s, v, t in rows]
    expected = reference(points, max_points)
    assert len(got) <= max_points and 1e6 in [v for _, v, _ in got]
    assert [(s, t) for s, _, t in got] == [(s, t) for s, _, t in expected]
    assert np.array_equal(np.array([v for _, v, _ in got]), np.array([v for _, v, _ in expected]), equal_nan=True)
    window = [p for p in points if lo <= p[0] <= hi]
    assert zoom_total == len(window)
    assert [s for s, _, _ in zoomed] == [s for s, _, _ in reference(window, max_points)]


def test_a_small_series_comes_whole_and_bad_bounds_are_refused(store: Store) -> None:
    with store.start_run("h") as run:
        for s in range(10):
            run.log_metric("acc", s / 10, step=s)
        run.log_metric("acc", float("nan"), step=10)
    with store.db.connect() as conn:
        rows, total = history_rows(conn, run.id, "acc", max_points=400)
        assert total == 11 and [r[0] for r in rows] == list(range(11)) and rows[-1][1] is None
        assert history_rows(conn, run.id, "acc", max_points=4, min_step=-math.inf, max_step=math.inf)[1] == 11
        assert history_rows(conn, run.id, "acc", min_step=math.inf) == ([], 0)
        assert history_rows(conn, run.id, "nothing", max_points=8) == ([], 0)
        with pytest.raises(InvalidInputError):
            history_rows(conn, run.id, "acc", min_step=math.nan)


@pytest.mark.parametrize("n", [2, 3, 10, 250, 1000])
def test_a_chart_gets_at_least_half_the_buckets_asked_for_from_few_summary_rows(n: int) -> None:
    """Buckets are aligned multiples of a summary level: at most n, at least about n/2, at most 4 level rows each."""
    for first in (-7, 0, 12_345):
        for span in (n * 50, n * 64, n * 300, n * 401, n * 4_000, n * 33_333, 10**9 + 7):
            last = first + span - 1
            origin, width = chart_buckets(first, last, n)
            want = -(-span // (n - 1))
            buckets = (last - origin) // width + 1
            assert origin % width == 0 and origin <= first and buckets <= n
            assert want <= width < 2 * want
            level = max(w for w in LEVELS if w <= width)
            assert width % level == 0 and (width // level <= 4 or want > LEVELS[-1])  # past the coarsest level
