"""Serving a registered version through FastAPI's TestClient: payloads, validation, logging, alias switch."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlkeep.lifecycle.serving import (
    ARROW_TYPES,
    NUMPY_TYPE,
    PREDICTION_HEADER,
    VERSION_HEADER,
    create_serving_app,
)


@pytest.fixture
def served(iris_models: Any) -> Iterator[tuple[Any, TestClient]]:
    s = iris_models.store
    for m in iris_models.models:
        s.registry.register("iris-clf", m.id)
    s.registry.set_alias("iris-clf", "production", 1)
    app = create_serving_app(s, "iris-clf@production", log_rate=1.0, refresh_seconds=0.0)
    with TestClient(app) as client:  # leaving it shuts the app down: the prediction writer stops
        yield iris_models, client


def test_every_payload_form_predicts_as_the_model(served: Any) -> None:
    t, client = served
    X = t.X.iloc[:10]
    want = t.fitted[0].predict(X).tolist()
    cols = list(X.columns)
    bodies = [
        {"inputs": X.to_numpy().tolist()},
        {"instances": X.to_numpy().tolist()},
        {"dataframe_split": {"columns": cols, "data": X.to_numpy().tolist()}},
        {"dataframe_split": {"columns": cols[::-1], "data": X[cols[::-1]].to_numpy().tolist()}},
        {"dataframe_records": X.to_dict(orient="records")},
    ]
    for path in ("/predict", "/invocations"):
        for body in bodies:
            r = client.post(path, json=body)
            assert r.status_code == 200, r.text
            assert r.json() == {"predictions": want}
            assert r.headers[VERSION_HEADER] == "1"
    assert client.get("/health").json()["status"] == "ok"
    meta = client.get("/metadata").json()
    assert meta["version"] == 1 and [c["name"] for c in meta["input_schema"]] == cols


def test_bad_input_gets_422_naming_the_column(served: Any) -> None:
    t, client = served
    cols = list(t.X.columns)
    r = client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4]]})
    assert r.status_code == 422 and r.json()["error"]["column"] == cols[3]
    r = client.post("/predict", json={"inputs": [[5.1, "wide", 1.4, 0.2]]})
    assert r.status_code == 422 and r.json()["error"]["column"] == cols[1] and cols[1] in r.json()["error"]["message"]
    r = client.post("/predict", json={"dataframe_split": {"columns": cols[:3] + ["colour"], "data": [[1, 2, 3, 4]]}})
    assert r.status_code == 422 and r.json()["error"]["column"] == cols[3]
    for body in ({"nothing": 1}, [1, 2], {"inputs": []}):
        assert client.post("/predict", json=body).status_code == 422
    assert client.post("/predict", content=b"not json").status_code == 422
    assert client.post("/predict", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]}).status_code == 200  # still serving


def test_sampled_requests_are_logged_as_predictions_of_the_version(served: Any) -> None:
    t, client = served
    rows = t.X.iloc[:3].to_numpy().tolist()
    for _ in range(3):
        assert client.post("/predict", json={"inputs": rows}).status_code == 200
    state = client.app.state.serving
    state.flush()
    assert state.prediction_log.logged == 3
    version = t.store.registry.get_version("iris-clf", 1)
    down = t.store.lineage(version.model_id, "down")
    preds = down.of_kind("prediction")
    assert len(preds) >= 1  # identical inputs are one dataset, each request one prediction
    values = t.store.load_predictions(preds[0].id)
    assert values["prediction"].tolist() == t.fitted[0].predict(t.X.iloc[:3]).tolist()


def test_no_logging_at_rate_zero(iris_models: Any) -> None:
    s = iris_models.store
    s.registry.register("iris-clf", iris_models.models[0].id)
    with TestClient(create_serving_app(s, "iris-clf/1", log_rate=0.0)) as client:
        assert client.post("/predict", json={"inputs": iris_models.X.iloc[:2].to_numpy().tolist()}).status_code == 200
        client.app.state.serving.flush()
        assert client.app.state.serving.prediction_log.logged == 0


def switch_under_load(t: Any, client_for: Callable[[], Any], threads: int) -> list[int]:
    """The versions that answered `threads` threads of requests while `production` moved from 1 to 2.

    Fails on any request not answered 200 with its version's own predictions;
    returns once version 2 has answered and the load has stopped.
    """
    X = t.X.to_numpy().tolist()
    answers = {1: t.fitted[0].predict(t.X).tolist(), 2: t.fitted[1].predict(t.X).tolist()}
    assert answers[1] != answers[2]
    seen: list[tuple[int, int, bool]] = []
    stop = threading.Event()

    def load() -> None:
        with client_for() as http:
            while not stop.is_set():
                r = http.post("/predict", json={"inputs": X})
                v = int(r.headers.get(VERSION_HEADER, 0))
                seen.append((r.status_code, v, r.status_code == 200 and r.json()["predictions"] == answers.get(v)))

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not seen:  # version 1 answers under load before the switch
        time.sleep(0.05)
    t.store.registry.set_alias("iris-clf", "production", 2, reason="C=10 is better")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(v == 2 for _, v, _ in seen[-5:]):
        time.sleep(0.05)
    stop.set()
    for w in workers:
        w.join()
    assert seen and all(code == 200 and ok for code, _, ok in seen), [s for s in seen if not s[2]][:5]
    return [v for _, v, _ in seen]


def test_alias_switch_is_picked_up_while_requests_continue(served: Any) -> None:
    t, client = served
    client.app.state.serving.log_rate = 0.0
    versions = switch_under_load(t, lambda: contextlib.nullcontext(client), threads=3)
    assert 1 in versions and 2 in versions
    assert client.get("/metadata").json()["version"] == 2


def test_torch_commit_is_served(store: Any, digits: Any) -> None:
    import torch
    from lifecycle_nets import DigitsNet

    X, y = digits
    torch.manual_seed(0)
    net = DigitsNet()
    with store.start_run("digits") as run:
        ds = run.log_dataset(X, "digits", targets=y)
        store.repo("digits-net").commit(net, "init", run=run, datasets=[ds])
    store.registry.register("digits", "digits-net@main")
    store.registry.set_alias("digits", "production", 1)
    with TestClient(create_serving_app(store, "digits@production", log_rate=1.0)) as client:
        r = client.post("/predict", json={"inputs": X[:4].tolist()})
        assert r.status_code == 200
        want = net(torch.as_tensor(X[:4], dtype=torch.float32)).detach().numpy()
        assert np.allclose(np.array(r.json()["predictions"]), want, atol=1e-6)
        assert client.post("/predict", json={"inputs": [X[0].tolist()[:63]]}).json()["error"]["column"] == "x63"
        client.app.state.serving.flush()
        assert client.app.state.serving.prediction_log.logged == 1


def test_arrow_and_numpy_payloads_predict_as_json_does(served: Any) -> None:
    import io

    import pyarrow as pa

    t, client = served
    X = t.X.iloc[:7]
    want = t.fitted[0].predict(X).tolist()
    sink = io.BytesIO()
    table = pa.Table.from_pandas(X[list(X.columns)[::-1]], preserve_index=False)  # columns by name, any order
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    npy = io.BytesIO()
    np.save(npy, X.to_numpy())
    for content_type, body in ((ARROW_TYPES[0], sink.getvalue()), (NUMPY_TYPE, npy.getvalue())):
        r = client.post("/invocations", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": want}
    one = io.BytesIO()
    np.save(one, X.to_numpy()[0])  # a 1-D array is one row
    r = client.post("/predict", content=one.getvalue(), headers={"Content-Type": NUMPY_TYPE})
    assert r.json() == {"predictions": want[:1]}
    narrow = io.BytesIO()
    np.save(narrow, X.to_numpy()[:, :3])
    r = client.post("/predict", content=narrow.getvalue(), headers={"Content-Type": NUMPY_TYPE})
    assert r.status_code == 422 and r.json()["error"]["column"] == X.columns[3]
    for content_type, body in ((NUMPY_TYPE, b"not npy"), (ARROW_TYPES[0], b"not arrow"), ("text/csv", b"1,2,3,4")):
        r = client.post("/predict", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 422, (content_type, r.text)


def test_real_http_labels_and_switch_under_load_without_a_failed_request(served: Any) -> None:
    import httpx
    from live_server import running

    from mlkeep.lifecycle.monitoring import monitor_report

    t, client = served
    state = client.app.state.serving
    X = t.X.to_numpy().tolist()
    answers = {1: t.fitted[0].predict(t.X).tolist(), 2: t.fitted[1].predict(t.X).tolist()}
    with running(client.app) as url:
        # a logged request announces its prediction id; its labels give live accuracy
        r = httpx.post(f"{url}/predict", json={"inputs": X})
        assert r.status_code == 200 and r.json() == {"predictions": answers[1]}
        state.flush()
        t.store.log_labels(r.headers[PREDICTION_HEADER], t.y.to_numpy())
        perf = monitor_report(t.store, "iris-clf@production", window="1h").performance
        assert perf is not None and perf.live["accuracy"] == pytest.approx(float(np.mean(np.array(answers[1]) == t.y)))

        state.log_rate = 0.1
        versions = switch_under_load(t, lambda: httpx.Client(base_url=url, timeout=30), threads=4)
        after = httpx.post(f"{url}/predict", json={"inputs": X})
    assert 1 in versions and 2 in versions and after.headers[VERSION_HEADER] == "2"


def test_an_alias_moved_to_a_version_that_cannot_load_here_keeps_the_old_one_served(
        served: Any, vanishing_framework: Any) -> None:
    from mlkeep.errors import MissingDependencyError

    t, client = served
    fitted, uninstall = vanishing_framework
    with t.store.start_run("iris") as run:
        model = run.log_model(fitted, "majority", trained_on=t.dataset)
    t.store.registry.register("iris-clf", model.id)  # version 3
    uninstall()
    with pytest.raises(MissingDependencyError, match="rarefw"):
        create_serving_app(t.store, "iris-clf/3")
    t.store.registry.set_alias("iris-clf", "production", 3, reason="a model this host cannot load")
    X = t.X.iloc[:5].to_numpy().tolist()
    for _ in range(20):  # the background load fails; every request is still answered by version 1
        r = client.post("/predict", json={"inputs": X})
        assert r.status_code == 200 and r.headers[VERSION_HEADER] == "1"
        time.sleep(0.02)
    with pytest.raises(MissingDependencyError):
        client.app.state.serving.refresh()
    assert client.get("/health").json()["version"] == 1
