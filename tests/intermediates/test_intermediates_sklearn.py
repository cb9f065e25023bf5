"""scikit-learn pipelines stage by stage; the cost model; the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from mlkeep.errors import LayerNotFoundError


class _Result:
    def __init__(self, result) -> None:  # type: ignore[no-untyped-def]
        self.exit_code, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr

    def json(self):  # type: ignore[no-untyped-def]
        import json

        return json.loads(self.stdout)


def invoke(*args: str) -> _Result:
    from typer.testing import CliRunner

    from mlkeep.cli import app

    return _Result(CliRunner().invoke(app, list(args), env={"COLUMNS": "200"}, catch_exceptions=False))


def _stages(pipeline, X):  # type: ignore[no-untyped-def]
    scaled = pipeline.named_steps["scale"].transform(X)
    pca = pipeline.named_steps["pca"].transform(scaled)
    return {"scale": scaled, "pca": pca, "clf": pipeline.named_steps["clf"].predict_proba(pca)}


def test_every_stage_of_a_pipeline_is_captured_exactly(inter, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    got = inter.capture(pipeline, X, codec="exact", targets=y)
    assert list(got) == ["scale", "pca", "clf"]
    for stage, truth in _stages(pipeline, X).items():
        assert np.array_equal(inter.get(got[stage], source="read"), truth.astype(np.float32))
        assert np.array_equal(inter.get(got[stage], source="rerun"), truth.astype(np.float32))
    stats = inter.stats(got["clf"])
    assert stats.groupby("group")["mean"].idxmax().map(stats["column"]).tolist() == [0, 1, 2]


def test_nested_union_and_column_transformer_stages(inter, iris) -> None:  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X, y = iris
    cols = list(X.columns)
    model = Pipeline([
        ("ct", ColumnTransformer([("a", StandardScaler(), cols[:2]), ("b", MinMaxScaler(), cols[2:])])),
        ("union", FeatureUnion([("pca", PCA(2)), ("id", StandardScaler())])),
        ("clf", LogisticRegression(max_iter=300)),
    ]).fit(X, y)
    assert inter.layers(model) == ["ct/a", "ct/b", "ct", "union/pca", "union/id", "union", "clf"]
    got = inter.capture(model, X, codec="float16", targets=y)
    assert got["ct/b"].n_cols == 2 and got["union"].n_cols == 6
    truth = model.named_steps["ct"].named_transformers_["b"].transform(X[cols[2:]])
    assert np.allclose(inter.get(got["ct/b"], source="read"), truth, rtol=1e-3, atol=1e-3)
    with pytest.raises(LayerNotFoundError, match="union/pca"):
        inter.capture(model, X, layers=["union/svd"])


def test_shared_stages_of_refitted_pipelines_are_stored_once(inter, iris) -> None:  # type: ignore[no-untyped-def]
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    first = second = None
    for c in (0.1, 10.0):
        model = Pipeline([("scale", StandardScaler()), ("pca", PCA(3)), ("clf", LogisticRegression(C=c))]).fit(X, y)
        second, first = inter.capture(model, X, repo="iris-lr", targets=y), second
    assert second["scale"].new_bytes == 0 and second["pca"].new_bytes == 0 and second["clf"].new_bytes > 0
    assert inter.similarity(first["clf"], second["clf"]) > 0.5


def test_cost_model_reads_recomputes_and_materializes(inter, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    got = inter.capture(pipeline, X, targets=y, store=False, codec="exact")
    item = got["pca"]
    assert item.status == "virtual" and item.manifest is None and item.stored_bytes > 0
    inter.threshold = 1e12  # nothing is worth storing
    values = inter.get(item)
    assert inter.last_source == "rerun" and values.shape == (150, 3)
    assert inter.info(item).status == "virtual" and inter.info(item).n_queries == 1
    plan = {d.layer: d for d in inter.plan()}
    assert plan["pca"].action == "keep" and plan["pca"].query_from == "rerun"
    inter.threshold = 0.0  # everything is: the next query materializes it
    assert np.array_equal(inter.get(item), values)
    stored = inter.info(item)
    assert stored.status == "stored" and stored.manifest is not None
    assert np.array_equal(inter.get(item, source="read"), values)
    dropped = {d.layer: d for d in inter.plan(1e12, apply=True)}
    assert dropped["pca"].action == "drop" and inter.info(item).status == "virtual"
    assert all(d.store for d in inter.plan(0.0, apply=True))
    assert inter.info(item).status == "stored"


def test_read_is_chosen_only_when_faster(inter, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.intermediates import costmodel, records

    X, y = iris
    item = inter.capture(pipeline, X, layers=["clf"], targets=y)["clf"]
    costs = records.costs_of(item)
    assert costmodel.source(costs, True, 150, item.stored_bytes) == ("read" if costs.t_read() < costs.t_rerun() else "rerun")
    slow = costmodel.Costs(**{**costs.to_dict(), "read_rate": 10.0})  # 10 s per byte: never read
    assert costmodel.source(slow, True, 150, item.stored_bytes) == "rerun"
    assert costmodel.source(costs, False, 150, 0) == "rerun"
    assert slow.gamma(5) < 0
    assert (costs.gamma(5) > 0) == (costs.t_read() < costs.t_rerun())  # whichever way this machine measured


def _with_costs(inter, item, **changes):  # type: ignore[no-untyped-def]
    """Inject measured figures into an intermediate's record, as if its reads and reruns had taken them."""
    from mlkeep.intermediates import records

    costs = records.costs_of(inter.info(item))
    records.set_costs(inter.db, inter.info(item), costs.__class__(**{**costs.to_dict(), **changes}))


def test_queries_follow_the_measured_costs(inter, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    item = inter.capture(pipeline, X, layers=["pca"], targets=y, codec="exact")["pca"]
    nbytes = item.stored_bytes
    # reading the whole intermediate is measured at 2 s, re-running at 1 s: the query re-runs
    _with_costs(inter, item, read_rate=2.0 / nbytes, t_open=0.0, t_model_load=0.5, t_data_load=0.0,
                t_fwd_row=0.5 / 150)
    truth = inter.get(item, source="read")
    _with_costs(inter, item, read_rate=2.0 / nbytes, t_open=0.0, t_model_load=0.5, t_data_load=0.0,
                t_fwd_row=0.5 / 150)
    assert np.allclose(inter.get(item), truth, atol=1e-6) and inter.last_source == "rerun"
    # the other way round: the query reads
    _with_costs(inter, item, read_rate=0.5 / nbytes, t_model_load=1.0, t_data_load=0.5, t_fwd_row=1.0 / 150)
    inter.topk(item, 0, 5)
    assert inter.last_source == "read"
    # a query touching few rows re-runs only those: cheap, even where reading the whole would win
    _with_costs(inter, item, read_rate=0.5 / nbytes, t_open=0.4, t_model_load=0.0, t_data_load=0.0,
                t_fwd_row=1.0 / 150)
    inter.get(item, rows=[3])
    assert inter.last_source == "rerun"


def test_measured_times_update_the_costs() -> None:
    from mlkeep.intermediates.costmodel import EMA, Costs, source

    costs = Costs(t_model_load=1.0, t_data_load=0.0, t_fwd_row=0.01, read_rate=1e-9, t_open=0.0, stored_bytes=10**6,
                  n_rows=100)
    assert source(costs, True, 100, 10**6) == "read"  # estimated: 1 ms to read, 2 s to re-run
    slow = costs.measured_read(4.0, 10**6)  # but a whole read took 4 s: the first measurement replaces the estimate
    assert slow.read_rate == pytest.approx(4e-6) and slow.read_measured and not costs.read_measured
    assert slow.measured_read(2.0, 10**6).read_rate == pytest.approx((1 - EMA) * 4e-6 + EMA * 2e-6)  # then averaged
    assert source(slow, True, 100, 10**6) == "rerun" and source(slow, True, 100, 10**4) == "read"
    assert source(slow, False, 100, 0) == "rerun"
    rerun = costs.measured_rerun(0.2, 0.0, 5.0, 100)
    assert rerun.t_fwd_row == pytest.approx((1 - EMA) * 0.01 + EMA * 0.05)
    assert rerun.t_model_load == pytest.approx((1 - EMA) * 1.0 + EMA * 0.2)


def test_cli_ls_show_query_plan(folder_store, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    X, y = iris
    got = folder_store.intermediates.capture(pipeline, X, targets=y, codec="exact")
    store = ["--store", folder_store.uri]
    listed = invoke(*store, "intermediates", "ls", "--json")
    assert listed.exit_code == 0 and {i["layer"] for i in listed.json()} == {"scale", "pca", "clf"}
    shown = invoke(*store, "intermediates", "show", got["pca"].id[:8])
    assert shown.exit_code == 0 and "pca" in shown.stdout
    top = invoke(*store, "intermediates", "query", got["clf"].id, "topk", "--neuron", "2", "-k", "3", "--json").json()
    assert len(top["data"]) == 3
    assert invoke(*store, "intermediates", "query", got["pca"].id, "get", "--rows", "0,1").exit_code == 0
    bad = invoke(*store, "intermediates", "query", got["pca"].id, "get", "--rows", "150")
    assert bad.exit_code == 1 and "out of range" in bad.stderr
    plan = invoke(*store, "intermediates", "plan", "--json").json()
    assert {p["action"] for p in plan} <= {"keep", "drop", "materialize"}
    removed = invoke(*store, "intermediates", "rm", got["clf"].id)
    assert removed.exit_code == 0 and "gc" in removed.stdout
    assert {i["layer"] for i in invoke(*store, "intermediates", "ls", "--json").json()} == {"scale", "pca"}


def test_stages_the_cost_model_leaves_unstored_are_recomputed_and_agree(inter, iris) -> None:  # type: ignore[no-untyped-def]
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    from mlkeep.intermediates.codecs import error_bound, parse_codec

    X, y = iris
    model = Pipeline([("scale", StandardScaler()), ("norm", Normalizer()), ("pca", PCA(3)),
                      ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    got = inter.capture(model, X, targets=y, codec="kbit(8)")
    stored = {layer: inter.get(item, source="read") for layer, item in got.items()}
    top = {layer: inter.topk(item, 0, 5) for layer, item in got.items()}
    scaled = model[:1].transform(X)
    truth = {"scale": scaled, "norm": model[:2].transform(X), "pca": model[:3].transform(X),
             "clf": model.predict_proba(X)}
    decisions = inter.plan(1e15, apply=True, intermediates=list(got.values()))  # nothing is worth its bytes
    assert [d.action for d in decisions] == ["drop"] * 4
    for layer, item in got.items():
        assert inter.info(item).status == "virtual"
        fresh = inter.get(item)
        assert inter.last_source == "rerun"
        assert np.array_equal(fresh, truth[layer].astype(np.float32))  # recomputed: the exact values
        bound = error_bound(parse_codec("kbit(8)"), truth[layer].astype(np.float32))
        assert (np.abs(fresh - stored[layer]) <= bound + 1e-6).all()  # what was stored, within the codec's bound
        again = inter.topk(item, 0, 5)
        assert np.allclose(again["value"], top[layer]["value"], atol=float(bound[0]) + 1e-6)
    inter.threshold = 0.0  # now everything is worth storing: a query materializes what it recomputes
    inter.get(got["pca"])
    assert inter.info(got["pca"]).status == "stored"
    assert np.abs(inter.get(got["pca"], source="read") - truth["pca"]).max() <= error_bound(
        parse_codec("kbit(8)"), truth["pca"].astype(np.float32)).max() + 1e-6


def test_objects_several_intermediates_use_are_charged_in_shares(inter, iris) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlkeep.intermediates.costmodel import shares

    assert shares({"a": {"x": 100, "y": 50}, "b": {"x": 100}}) == {"a": 100.0, "b": 50.0}
    X, y = iris
    items = []
    for c in (0.1, 10.0):
        model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=c, max_iter=500))]).fit(X, y)
        items += inter.capture(model, X, targets=y, codec="exact", repo=f"lr{c}").values()
    scale = [d for d in inter.plan() if d.layer == "scale"]
    assert len(scale) == 2 and scale[0].stored_bytes == scale[1].stored_bytes > 0
    assert all(d.charged_bytes == pytest.approx(d.stored_bytes / 2) for d in scale)  # one chunk, two users


def test_read_figures_are_estimated_at_capture_and_measured_by_the_first_read(folder_store, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.intermediates.costmodel import DEFAULT_READ_RATE
    from mlkeep.intermediates.records import costs_of

    X, y = iris
    inter = folder_store.intermediates
    first = inter.capture(pipeline, X, targets=y, codec="exact")["pca"]
    assert not costs_of(first).read_measured and costs_of(first).read_rate == DEFAULT_READ_RATE  # nothing measured yet
    inter.get(first, source="read")
    measured = costs_of(inter.info(first.id))
    assert measured.read_measured and measured.read_rate != DEFAULT_READ_RATE
    again = inter.capture(pipeline, X, targets=y, codec="exact", name="again")["pca"]
    assert costs_of(again).read_rate == pytest.approx(measured.read_rate)  # the store's measured throughput
    assert not costs_of(again).read_measured
