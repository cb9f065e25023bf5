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


@pytest.mark.parametrize("filter_", ["", "metrics.acc > 0.3", "params.i < 10 and metrics.acc IS NULL",
                                     "metrics.acc IS NOT NULL and params.i >= 5", "not metrics.acc < 0.5",
                                     "metrics.acc >= 0 ORDER BY metrics.acc DESC LIMIT 9", "params.nothing = 'x'",
                                     "metrics.acc != 0.3 and (params.i = '2' or tags.t = 'a')"])
def test_every_page_says_how_many_runs_match_in_all(store: Store, runs: list[str], api: Any, filter_: str) -> None:
    with store.start_run("elsewhere", "other") as other:
        other.log_metric("acc", 0.99)
    with store.start_run("paging", "nan") as nan:  # present for IS NOT NULL, passing no comparison
        nan.log_metric("acc", float("nan"))
        nan.log_param("i", 99)
        nan.set_tag("t", "a")
    matching = len(store.search_runs(filter_, experiments=["paging"]))
    for offset in (0, 20):
        page = api.get("/api/search/runs", params={"filter": filter_, "experiments": "paging", "page_size": 4,
                                                   "offset": offset}).json()
        assert page["total"] == matching
    body = {"filter": filter_, "page_size": 2}
    assert api.post("/api/search/runs", json=body).json()["total"] == len(store.search_runs(filter_))
    assert api.post("/api/search/runs", json={**body, "total": False}).json()["total"] is None
    store.delete_run(runs[0])  # hidden from search, so from the count
    assert api.get("/api/search/runs", params={"experiments": "paging"}).json()["total"] == 23


def test_the_last_page_is_counted_without_a_count_query(store: Store, runs: list[str], api: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mlkeep.server.services import search as search_service

    counted: list[int] = []
    real = search_service.count_runs
    monkeypatch.setattr(search_service, "count_runs", lambda *a, **k: counted.append(1) or real(*a, **k))
    for filter_, size in (("", 5), ("metrics.acc >= 0 ORDER BY metrics.acc DESC LIMIT 9", 4), ("params.i < 3", 3),
                          ("params.i < 3", 10)):
        matching = len(store.search_runs(filter_))
        params: dict[str, Any] = {"filter": filter_, "page_size": size}
        totals, pages = [], 0
        while True:
            page = api.get("/api/search/runs", params=params).json()
            totals.append(page["total"])
            pages += 1
            if page["next_page_token"] is None:
                break
            params["page_token"] = page["next_page_token"]
        assert totals == [matching] * pages
    assert len(counted) == 23 // 5 + 9 // 4 + 0 + 0  # every page but the last
    beyond = api.get("/api/search/runs", params={"filter": "params.i < 3", "offset": 50}).json()
    assert beyond["runs"] == [] and beyond["total"] == 3  # an empty page past the end still counts
