"""Monitoring on a real classifier: drift on shifted inputs and none on held-out ones, live accuracy from labels."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkeep.errors import InvalidInputError, NoDataError, NotFoundError
from mlkeep.lifecycle.drift import Thresholds
from mlkeep.lifecycle.monitoring import monitor_report, parse_window

SHIFTED = ["alcohol", "color_intensity", "proline"]


def log_window(t: Any, X: Any, *, chunk: int = 10) -> list[tuple[str, slice]]:
    """Log X in chunks as predictions of the production version, as sampled requests are; (id, rows) each."""
    from mlkeep.tracking.datasets import log_dataset
    from mlkeep.tracking.predictions import log_predictions

    version = t.store.registry.resolve("wine-clf@production")
    out = []
    for start in range(0, len(X), chunk):
        rows = X.iloc[start:start + chunk].reset_index(drop=True)
        ds = log_dataset(t.store.db, t.store.objects, rows, name="wine-served")
        p = log_predictions(t.store.db, t.store.objects, version.model_id, ds, t.model.predict(rows))
        out.append((p.id, slice(start, start + len(rows))))
    return out


def shifted(X: Any) -> Any:
    out = X.copy()
    for c in SHIFTED:
        out[c] = out[c] + 1.5 * X[c].std()
    return out


def test_held_out_data_shows_no_drift(wine_served: Any) -> None:
    t = wine_served
    log_window(t, t.X_live)
    r = monitor_report(t.store, "wine-clf@production", window="1h")
    assert r.drifted == [], [(d.feature, d.p_value, d.psi) for d in r.features + r.outputs if d.drifted]
    assert r.rows == len(t.X_live) and r.predictions == -(-len(t.X_live) // 10)
    assert [d.feature for d in r.features] == list(t.X_live.columns)
    assert {d.test for d in r.features} == {"ks"} and r.outputs[0].test == "chi2"  # class predictions: categories
    assert r.performance is None  # no labels yet


def test_shifted_features_are_marked_drifted_and_only_they(wine_served: Any) -> None:
    t = wine_served
    log_window(t, t.X_live)
    time.sleep(0.05)
    log_window(t, shifted(t.X_live))
    r = monitor_report(t.store, "wine-clf@production", window="1h")
    drifted_inputs = [d.feature for d in r.features if d.drifted]
    assert sorted(drifted_inputs) == sorted(SHIFTED)
    for d in r.features:
        assert (d.psi >= 0.2 and d.p_value < 0.01) == d.drifted
    # drift over time: the first slice is the held-out data, the last the shifted data
    assert r.timeline[0].drifted == [] and set(SHIFTED) <= set(r.timeline[-1].drifted)
    assert sum(s.rows for s in r.timeline) == r.rows
    # stricter thresholds report less
    assert monitor_report(t.store, "wine-clf/1", window="all", thresholds=Thresholds(psi=50.0)).drifted == []


def test_labels_give_live_accuracy_beside_the_offline_one(wine_served: Any) -> None:
    t = wine_served
    logged = log_window(t, t.X_live)
    labelled = logged[: len(logged) // 2]
    for pid, rows in labelled:
        t.store.log_labels(pid, t.y_live.iloc[rows].to_numpy())
    rows = labelled[-1][1].stop
    want = float((t.model.predict(t.X_live.iloc[:rows]) == t.y_live.iloc[:rows]).mean())
    p = monitor_report(t.store, "wine-clf@production").performance
    assert p is not None and p.metric == "accuracy" and p.labelled_rows == rows
    assert p.live["accuracy"] == pytest.approx(want)
    assert p.offline == {"accuracy": pytest.approx(t.accuracy)} and p.offline_evaluation == "held-out"
    # relabelling replaces: all labels wrong now
    pid, first = labelled[0]
    t.store.log_labels(pid, np.full(first.stop - first.start, 99))
    again = monitor_report(t.store, "wine-clf@production").performance
    assert again is not None and again.live["accuracy"] < p.live["accuracy"]


def test_bad_requests_get_specific_errors(wine_served: Any) -> None:
    t = wine_served
    with pytest.raises(NoDataError, match="No predictions"):
        monitor_report(t.store, "wine-clf@production")
    with pytest.raises(NotFoundError, match="no alias"):
        monitor_report(t.store, "wine-clf@staging")
    with pytest.raises(NotFoundError, match="No registered model"):
        monitor_report(t.store, "nope@production")
    with pytest.raises(InvalidInputError, match="not a window"):
        monitor_report(t.store, "wine-clf@production", window="yesterday")
    logged = log_window(t, t.X_live.iloc[:10])
    with pytest.raises(NoDataError):  # logged now, asked about a day ago
        monitor_report(t.store, "wine-clf@production", window="1h", until=int(time.time() * 1000) - 86_400_000)
    with pytest.raises(InvalidInputError, match="10 rows; 3 labels"):
        t.store.log_labels(logged[0][0], [1, 2, 3])
    with pytest.raises(NotFoundError):
        t.store.log_labels("0" * 32, [1], wait=0.1)
    with pytest.raises(InvalidInputError):
        Thresholds(psi=0.2, p_value=1.5)


def test_windows_parse() -> None:
    assert parse_window("90s") == 90 and parse_window("30m") == 1800 and parse_window("1h") == 3600
    assert parse_window("7d") == 7 * 86400 and parse_window("2w") == 14 * 86400 and parse_window(60) == 60
    assert parse_window("all") == float("inf")
    for bad in ("", "0h", "1y", "h", "-1h"):
        with pytest.raises(InvalidInputError):
            parse_window(bad)



def test_cli_report_html_card_and_rest_route(wine_folder: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from mlkeep.cli.main import app
    from mlkeep.server.app import create_app

    t = wine_folder
    base = ["--store", str(tmp_path)]
    cli = CliRunner()
    r = cli.invoke(app, [*base, "monitor", "report", "wine-clf@production"])
    assert r.exit_code == 1 and "No predictions of models:/wine-clf/1" in r.output
    assert "No predictions of this version" in cli.invoke(app, [*base, "card", "wine-clf@production"]).output
    logged = log_window(t, t.X_live)
    time.sleep(0.05)
    log_window(t, shifted(t.X_live))
    t.store.log_labels(logged[0][0], t.y_live.iloc[logged[0][1]].to_numpy())

    page = tmp_path / "report.html"
    r = cli.invoke(app, [*base, "monitor", "report", "wine-clf@production", "--window", "1h", "--html", str(page)])
    assert r.exit_code == 0, r.output
    assert "drifted" in r.output and "proline" in r.output and "accuracy" in r.output
    html = page.read_text()
    assert html.startswith("<!doctype html>") and html.count("<svg") >= 4 and "proline" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    r = cli.invoke(app, [*base, "monitor", "report", "wine-clf@production", "--json"])
    inputs = [d["feature"] for d in json.loads(r.output)["features"] if d["drifted"]]
    assert sorted(inputs) == sorted(SHIFTED)

    card = tmp_path / "card.html"
    r = cli.invoke(app, [*base, "card", "wine-clf@production", "--format", "html", "-o", str(card)])
    assert r.exit_code == 0, r.output
    text = card.read_text()
    assert "<h2>Known drift</h2>" in text and "proline" in text and "held-out" in text
    md = cli.invoke(app, [*base, "card", "wine-clf@production"]).output
    assert md.startswith("# Model card: wine-clf version 1") and "**Drifted:**" in md
    assert cli.invoke(app, [*base, "card", "wine-clf@production", "--format", "pdf"]).exit_code == 1

    api = TestClient(create_app(t.store))
    r = api.get("/api/monitoring/wine-clf/report", params={"alias": "production", "window": "1h"})
    assert r.status_code == 200 and set(SHIFTED) <= set(r.json()["drifted"])
    assert r.json()["performance"]["live"]["accuracy"] > 0.5
    r = api.get("/api/monitoring/wine-clf/report.html", params={"version": 1})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "<svg" in r.text
    assert api.get("/api/monitoring/wine-clf/report", params={"alias": "staging"}).json()["error"]["code"] == \
        "NOT_FOUND"
    r = api.get("/api/monitoring/wine-clf/report", params={"window": "soon"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_INPUT"


def test_regressor_labels_give_mae_and_rmse(store: Any) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from mlkeep.tracking.datasets import log_dataset
    from mlkeep.tracking.predictions import log_predictions

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    with store.start_run("diabetes") as run:
        ds = run.log_dataset(X.iloc[:300], "diabetes-train", targets=y.iloc[:300])
        est = Ridge().fit(X.iloc[:300], y.iloc[:300])
        m = run.log_model(est, trained_on=ds)
        run.log_evaluation(m, ds, {"rmse": 50.0}, name="train")
    store.registry.register("diabetes", m.id)
    live, truth = X.iloc[300:], y.iloc[300:].to_numpy()
    p = log_predictions(store.db, store.objects, m.id, log_dataset(store.db, store.objects, live), est.predict(live))
    store.log_labels(p.id, truth)
    perf = monitor_report(store, "diabetes").performance
    error = est.predict(live) - truth
    assert perf is not None and perf.metric == "rmse" and perf.offline == {"rmse": 50.0}
    assert perf.live["mae"] == pytest.approx(np.abs(error).mean())
    assert perf.live["rmse"] == pytest.approx(np.sqrt((error ** 2).mean()))
    assert perf.change == pytest.approx(perf.live["rmse"] - 50.0)


def test_torch_class_scores_give_accuracy_by_argmax(store: Any, digits: Any) -> None:
    import torch
    from lifecycle_nets import DigitsNet

    from mlkeep.tracking.datasets import log_dataset
    from mlkeep.tracking.predictions import log_predictions

    X, y = digits
    torch.manual_seed(0)
    net = DigitsNet()
    with store.start_run("digits") as run:
        ds = run.log_dataset(X[:1000], "digits", targets=y[:1000])
        store.repo("digits-net").commit(net, "init", run=run, datasets=[ds])
    v = store.registry.register("digits", "digits-net@main")
    scores = net(torch.as_tensor(X[1000:1200], dtype=torch.float32)).detach().numpy()
    p = log_predictions(store.db, store.objects, v.model_id, log_dataset(store.db, store.objects, X[1000:1200]),
                        scores)
    store.log_labels(p.id, y[1000:1200])
    r = monitor_report(store, "digits/1")
    assert r.performance is not None
    assert r.performance.live["accuracy"] == pytest.approx(float((scores.argmax(axis=1) == y[1000:1200]).mean()))
    assert len(r.outputs) == 10 and len(r.features) == 64
