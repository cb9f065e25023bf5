"""Paging search results with an offset: the pages join up to the whole answer, across the runs lacking the key."""

from __future__ import annotations

from typing import Any

import pytest

from mlkeep.errors import InvalidInputError
from mlkeep.store import Store


@pytest.fixture
def runs(store: Store) -> list[str]:
    """23 runs: 17 with an accuracy (some tied), 6 without one."""
    ids = []
    for i in range(23):
        with store.start_run("paging", f"r{i:02d}") as run:
            run.log_param("i", i)
            if i % 4 != 3:
                run.log_metric("acc", (i * 7 % 11) / 10)
        ids.append(run.id)
    return ids


@pytest.mark.parametrize("order", [None, "metrics.acc DESC", "metrics.acc", "params.i", "attributes.run_name"])
def test_pages_at_any_offset_join_up_to_the_whole_answer(store: Store, runs: list[str], order: Any) -> None:
    whole = [r.id for r in store.search_runs("", order_by=order)]
    assert sorted(whole) == sorted(runs)
    for size in (1, 4, 7, 23, 30):
        pages = [r.id for start in range(0, 30, size) for r in store.search_runs("", order, size, offset=start)]
        assert pages == whole
    assert store.search_runs("", order, 5, offset=40) == []


def test_a_limit_in_the_filter_caps_the_whole_answer(store: Store, runs: list[str], remote: Any) -> None:
    whole = [r.id for r in store.search_runs("metrics.acc >= 0 ORDER BY metrics.acc DESC LIMIT 9")]
    assert len(whole) == 9
    capped = "metrics.acc >= 0 ORDER BY metrics.acc DESC LIMIT 9"
    paged = [r.id for start in (0, 4, 8) for r in store.search_runs(capped, limit=4, offset=start)]
    assert paged == whole
    assert [r.id for r in remote.search_runs("", "metrics.acc DESC", offset=20)] == \
        [r.id for r in store.search_runs("", "metrics.acc DESC")][20:]
    with pytest.raises(InvalidInputError):
        store.search_runs("", offset=-1)
