"""Responses: written by the C encoder as they are, NaN and infinity as null, entities as their fields."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlkeep.server.app import JSON, jsonable
from mlkeep.server.services import search as search_service
from mlkeep.store import Store


@dataclasses.dataclass
class Point:
    x: float
    label: str


class Card:
    def to_dict(self) -> dict[str, Any]:
        return {"title": "card", "scores": (1, 2.5)}


def walked(content: Any) -> bytes:
    """What the server sent before it stopped walking every response in Python first."""
    return json.dumps(jsonable(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("special", [None, math.nan, math.inf, -math.inf])
def test_a_response_is_the_walked_form_byte_for_byte(store: Store, special: float | None) -> None:
    with store.start_run("json", "r") as run:
        run.log_params({"lr": 0.1, "name": "é"})
        run.log_metrics({"acc": 0.25, "odd": math.nan})
    content = {"runs": store.search_runs(""), "point": Point(np.float64(0.5), "ü"), "card": Card(),
               "ordered": OrderedDict(b=[1, (2, 3)]), "special": special, "nested": [{"v": special}]}
    body = JSON(content).body
    assert body == walked(content)
    back = json.loads(body)
    assert back["special"] is None and back["nested"] == [{"v": None}]
    assert back["runs"][0]["metrics"]["odd"]["value"] is None and back["runs"][0]["params"]["name"] == "é"
    assert back["point"] == {"x": 0.5, "label": "ü"} and back["card"] == {"title": "card", "scores": [1, 2.5]}


def test_something_json_cannot_hold_is_still_an_error() -> None:
    with pytest.raises(TypeError):
        JSON({"x": object()})


def test_a_history_sends_nan_and_infinities_as_null(store: Store, api: TestClient) -> None:
    values = [1.0, math.inf, math.nan, -math.inf, 0.1]
    with store.start_run("json", "h") as run:
        for s, v in enumerate(values):
            run.log_metric("loss", v, step=s, timestamp=1_700_000_000_000 + s)
    got = api.get(f"/api/runs/{run.id}/metrics/loss/history").json()
    assert got["steps"] == [0, 1, 2, 3, 4] and got["values"] == [1.0, None, None, None, 0.1]
    assert got["timestamps"] == [1_700_000_000_000 + s for s in range(5)] and got["total"] == 5


def test_the_remote_store_does_not_ask_for_counts_it_never_reads(store: Store, remote: Any, api: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        with store.start_run("json", f"r{i}") as run:
            run.log_metric("acc", i / 10)
    counted: list[str] = []
    real = search_service.count_runs

    def spy(db: Any, filter: str = "", **kwargs: Any) -> int:  # noqa: A002
        counted.append(filter)
        return real(db, filter, **kwargs)

    monkeypatch.setattr(search_service, "count_runs", spy)
    assert len(remote.search_runs("metrics.acc >= 0", limit=2)) == 2 and counted == []
    page = api.get("/api/search/runs", params={"filter": "metrics.acc >= 0", "page_size": 2}).json()
    assert page["total"] == 3 and counted == ["metrics.acc >= 0"]  # the same page, asked for by the UI


def test_warming_up_a_server_changes_nothing_in_the_store(store: Store) -> None:
    search_service.warm_up(store)  # an empty store
    assert store.search_runs("", stage=None) == [] and store.list_experiments() == []
    with store.start_run("json", "kept") as run:
        run.log_metric("acc", 0.5)
    search_service.warm_up(store)
    assert [r.id for r in store.search_runs("", stage=None)] == [run.id]
