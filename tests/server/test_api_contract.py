"""The REST contract, called in-process: shapes, status codes, JSON errors."""

from __future__ import annotations

import math
import re

import pytest
from fastapi.testclient import TestClient

from mlkeep.store import Store


def start(api: TestClient, experiment: str = "exp", name: str = "r") -> str:
    r = api.post("/api/runs", json={"experiment": experiment, "name": name})
    assert r.status_code == 201
    return str(r.json()["id"])


def test_a_run_logged_over_rest_reads_back(api: TestClient, store: Store) -> None:
    run_id = start(api)
    assert api.post(f"/api/runs/{run_id}/params", json={"values": {"lr": 0.1, "layers": [1, 2]}}).status_code == 204
    assert api.post(f"/api/runs/{run_id}/tags", json={"values": {"team": "a"}}).status_code == 204
    points = [["loss", 1.0, 0, 10], ["loss", 0.5, 1, 20], ["acc", None, 0, 10]]
    assert api.post(f"/api/runs/{run_id}/metrics", json={"points": points}).status_code == 204
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["params"] == {"lr": "0.1", "layers": "[1, 2]"} and run["tags"] == {"team": "a"}
    assert run["metrics"]["loss"]["value"] == 0.5 and run["metrics"]["acc"]["value"] is None  # NaN -> null
    assert api.post(f"/api/runs/{run_id}/end", json={"status": "FINISHED"}).json()["status"] == "FINISHED"
    local = store.get_run(run_id)
    assert local.params["lr"] == "0.1" and math.isnan(local.metrics["acc"].value)


@pytest.mark.parametrize(
    "method,path,body,status,code",
    [
        ("get", "/api/runs/nope", None, 404, "NOT_FOUND"),
        ("get", "/api/search/runs?filter=metrics.acc%20%3E", None, 400, "FILTER_SYNTAX"),
        ("post", "/api/runs/{run}/metrics", {"points": [["acc", "x", 0, 0]]}, 400, "INVALID_INPUT"),
        ("post", "/api/runs/{run}/params", {"values": {"lr": 0.2}}, 409, "PARAM_CONFLICT"),
        ("get", "/api/runs/{run}/metrics/loss/history?max_points=2", None, 400, "INVALID_INPUT"),
        ("get", "/api/search/runs?page_token=garbage", None, 400, "INVALID_INPUT"),
        ("get", "/api/lineage/nope", None, 404, "NOT_FOUND"),
        ("get", "/api/repositories/none/log", None, 404, "NOT_FOUND"),
        ("put", "/api/runs/{run}/artifacts/%2E%2E/x", b"x", 400, "UNSAFE_PATH"),
    ],
)
def test_errors_are_json_with_the_error_class_status(
    api: TestClient, method: str, path: str, body: object, status: int, code: str
) -> None:
    run_id = start(api)
    api.post(f"/api/runs/{run_id}/params", json={"values": {"lr": 0.1}})
    url = path.replace("{run}", run_id)
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
    r = api.request(method.upper(), url, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_a_filter_error_names_its_position(api: TestClient) -> None:
    err = api.get("/api/search/runs", params={"filter": "metrics.acc > 1 and"}).json()["error"]
    assert err["code"] == "FILTER_SYNTAX" and err["position"] == 19


def test_logging_to_an_ended_run_is_refused_and_changes_nothing(api: TestClient, store: Store) -> None:
    run_id = start(api)
    api.post(f"/api/runs/{run_id}/end", json={})
    r = api.post(f"/api/runs/{run_id}/metrics", json={"points": [["x", 1.0, 0, 0]]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "RUN_STATE"
    assert store.get_run(run_id).metrics == {}


def test_openapi_documents_every_domain(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    tags = {t for op in spec["paths"].values() for o in op.values() for t in o.get("tags", [])}
    assert tags >= {"experiments", "runs", "artifacts", "search", "entities", "lineage", "repositories", "tokens"}
    assert api.get("/docs").status_code == 200


def test_pagination_and_server_side_sorting(api: TestClient, store: Store) -> None:
    for i in range(25):
        with store.start_run("exp", f"r{i}") as run:
            run.log_metric("acc", i / 100)
            run.log_param("i", i)
    seen, token = [], None
    while True:
        page = api.get("/api/search/runs", params={"order_by": "metrics.acc DESC", "page_size": 10,
                                                    **({"page_token": token} if token else {})}).json()
        seen += [r["metrics"]["acc"]["value"] for r in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == sorted((i / 100 for i in range(25)), reverse=True)
    body = {"filter": "params.i >= 20", "order_by": "params.i ASC", "page_size": 3}
    page = api.post("/api/search/runs", json=body).json()
    assert [r["params"]["i"] for r in page["runs"]] == ["20", "21", "22"] and page["next_page_token"]


def test_metric_history_is_downsampled_by_the_server_keeping_extremes(api: TestClient, store: Store) -> None:
    import numpy as np

    with store.start_run("exp") as run:
        values = np.sin(np.arange(20_000) / 500.0)
        values[12_345] = 50.0  # a spike must survive
        for step, v in enumerate(values):
            run.log_metric("loss", float(v), step=step)
    h = api.get(f"/api/runs/{run.id}/metrics/loss/history", params={"max_points": 400}).json()
    assert h["total"] == 20_000 and h["downsampled"] and len(h["steps"]) <= 400
    assert max(h["values"]) == 50.0 and h["steps"] == sorted(h["steps"])
    assert h["steps"][0] == 0 and h["steps"][-1] == 19_999
    zoom = api.get(f"/api/runs/{run.id}/metrics/loss/history",
                   params={"max_points": 400, "min_step": 1000, "max_step": 1099}).json()
    assert zoom["total"] == 100 and not zoom["downsampled"] and zoom["steps"][0] == 1000
    full = api.get(f"/api/runs/{run.id}/metrics/loss/history").json()
    assert len(full["steps"]) == 20_000


def test_artifacts_upload_and_download_stream(api: TestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_id = start(api)
    payload = bytes(range(256)) * 4096 * 3  # 3 MiB

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]

    r = api.put(f"/api/runs/{run_id}/artifacts/data/blob.bin", content=chunks())
    assert r.status_code == 201 and r.json()[0]["size"] == len(payload)
    listed = api.get(f"/api/runs/{run_id}/artifacts").json()
    assert [a["path"] for a in listed] == ["data/blob.bin"]
    with api.stream("GET", f"/api/runs/{run_id}/artifacts/data/blob.bin") as resp:
        assert resp.status_code == 200
        got = b"".join(resp.iter_bytes())
    assert got == payload
    assert api.get(f"/api/runs/{run_id}/artifacts/missing.txt").json()["error"]["code"] == "NOT_FOUND"


def test_the_ui_is_served_without_any_external_url(api: TestClient) -> None:
    from pathlib import Path

    import mlkeep.server

    html = api.get("/")
    assert html.status_code == 200 and "<script" in html.text
    fetches = re.compile(r"""(src|href|action)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|import\s.*https?://|fetch\(\s*["'`]https?:""")
    for f in (Path(mlkeep.server.__file__).parent / "ui").iterdir():
        assert not fetches.search(f.read_text()), f"{f.name} loads something from the internet"
