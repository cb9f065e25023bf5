"""Every query is counted in the intermediate's record, by concurrent processes too and across restarts; a
measurement within the noise does not rewrite the record; top-k and kNN answers keep their tie order."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import mlkeep
from mlkeep.intermediates import costmodel, queries, records

_QUERIES = """
import sys
import mlkeep
with mlkeep.open(sys.argv[1]) as store:
    for i in range(int(sys.argv[3])):
        store.intermediates.get(sys.argv[2], rows=[i % 5], source="read")
"""


def test_counts_survive_concurrent_processes_and_restarts(  # type: ignore[no-untyped-def]
        folder_store, tmp_path, pipeline, iris) -> None:
    X, y = iris
    item = folder_store.intermediates.capture(pipeline, X, layers=["pca"], codec="exact", targets=y)["pca"]
    root = str(tmp_path)  # folder_store's
    folder_store.intermediates.topk(item, 0, 3, source="read")
    workers = [subprocess.Popen([sys.executable, "-c", _QUERIES, root, item.id, "25"]) for _ in range(3)]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0]
    folder_store.close()
    with mlkeep.open(root) as again:  # a later process's cost model sees every query
        fresh = again.intermediates.info(item.id)
        assert fresh.n_queries == 1 + 3 * 25
        decision = again.intermediates.plan(intermediates=[item.id])[0]
        assert decision.n_queries == fresh.n_queries


def test_costs_are_rewritten_only_when_a_measurement_moves_them(  # type: ignore[no-untyped-def]
        store, inter, pipeline, iris) -> None:
    X, y = iris
    item = inter.capture(pipeline, X, layers=["scale"], codec="exact", targets=y)["scale"]
    before = records.costs_of(inter.info(item.id))
    near = replace(before, read_rate=before.read_rate * 1.01)
    far = replace(before, read_rate=before.read_rate * 10 + 1e-6)
    assert not costmodel.moved(before, near) and costmodel.moved(before, far)
    records.count_query(store.db, item)  # counted, figures as they were
    assert inter.info(item.id).n_queries == 1 and records.costs_of(inter.info(item.id)) == before
    records.count_query(store.db, item, far)
    now = inter.info(item.id)
    assert now.n_queries == 2 and records.costs_of(now) == far and now.t_read == pytest.approx(far.t_read())
    assert now.document["layout"] == item.document["layout"]  # the rest of the document kept


@pytest.mark.parametrize("seed", range(4))
def test_topk_and_knn_keep_the_order_of_a_full_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    column = rng.integers(0, 4, 300).astype(np.float32)  # quantized values: many ties at the k-th
    column[rng.integers(0, 300, 5)] = np.nan
    for k in (1, 7, 150, 300, 400):
        for largest in (True, False):
            key = -column.astype(np.float64) if largest else column.astype(np.float64)
            want = np.lexsort((np.arange(300), key))[: min(k, 300)]
            assert queries.topk(column, k, largest=largest).tolist() == want.tolist()
    layer = rng.integers(0, 3, (300, 4)).astype(np.float32)  # many rows at equal distances
    rows, dist = queries.knn(layer, layer[5], 20, exclude=5)
    ref = np.linalg.norm(layer.astype(np.float64) - layer[5], axis=1)
    ref[5] = np.inf
    assert rows.tolist() == np.lexsort((np.arange(300), ref))[:20].tolist()
    np.testing.assert_allclose(dist, ref[rows], rtol=1e-6)


def test_cka_in_place_gives_the_copying_answer() -> None:
    rng = np.random.default_rng(9)
    a = np.maximum(rng.standard_normal((200, 30)), 0).astype(np.float32)
    a[:, 3] = 0.0
    a[:, 4] = np.inf  # a constant column, infinite: left out as before, not NaN
    b = (a[:, :10] * 2 + rng.standard_normal((200, 10))).astype(np.float32)
    b[:, 4] = 1.0
    want = queries.cka_and_self_terms(a, b)
    kept_a = a.copy()
    assert np.array_equal(a, kept_a)  # without overwrite the input is untouched
    got = queries.cka_and_self_terms(a.copy(), b.copy(), overwrite=True)
    assert np.isfinite(want[0]) and got == pytest.approx(want, rel=1e-6)
    same = a.copy()
    assert queries.cka_and_self_terms(same, same, overwrite=True)[0] == pytest.approx(1.0, abs=1e-6)
    columns = queries.cka_and_self_terms(np.asfortranarray(a), np.asfortranarray(b), overwrite=True)  # read by column
    assert columns == pytest.approx(want, rel=1e-6)


def test_a_read_laid_out_by_column_holds_the_same_values(store, inter, pipeline, iris) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.intermediates import storage

    X, y = iris
    item = inter.capture(pipeline, X, layers=["scale"], codec="kbit", targets=y)["scale"]
    manifest = storage.get_manifest(store.objects, item.manifest)
    rows = np.arange(3, 150, 7)
    for sel in (None, rows):
        by_row = storage.read(store.objects, manifest, sel, None)
        by_column = storage.read(store.objects, manifest, sel, None, order="F")
        assert by_column.flags.f_contiguous and np.array_equal(by_row, by_column)
