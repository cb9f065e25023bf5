"""The fast query paths give the answers of plain float64 formulas, and per-class statistics read the
capture's labels object rather than the dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlkeep.errors import InvalidInputError
from mlkeep.intermediates import queries
from mlkeep.intermediates.compute import _controller, blas_threads
from mlkeep.references import intermediate_references


def _layer(n: int, d: int, seed: int = 0) -> np.ndarray:
    """ReLU-like float32 activations with dead units, a constant unit and a large-mean, small-spread unit."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) / np.sqrt(d), 0).astype(np.float32)
    x[:, 0] = 0.0
    x[:, 1] = 2.5
    x[:, 2] = 1000.0 + rng.standard_normal(n).astype(np.float32) * 1e-2
    return x


def _stats64(x: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    frames = []
    for g in np.unique(groups):
        part = x[groups == g].astype(np.float64)
        frames.append(pd.DataFrame({"group": g, "column": np.arange(x.shape[1]), "count": len(part),
                                    "mean": part.mean(0), "std": part.std(0), "sparsity": (part == 0).mean(0)}))
    return pd.concat(frames, ignore_index=True)


def _cka64(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64), b.astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@pytest.mark.parametrize("labels", [np.arange(300) % 7, np.array(list("abc") * 100)[::-1]])
def test_stats_match_float64_per_group(labels) -> None:  # type: ignore[no-untyped-def]
    x = _layer(300, 12)
    groups = np.random.default_rng(1).permutation(labels)  # rows not in group order
    got, want = queries.stats(x, groups), _stats64(x, groups)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    assert (got["group"].to_numpy() == want["group"].to_numpy()).all()
    assert (got[["column", "count"]].to_numpy() == want[["column", "count"]].to_numpy()).all()
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-12)
    np.testing.assert_allclose(got["sparsity"], want["sparsity"], rtol=0, atol=0)
    np.testing.assert_allclose(got["std"], want["std"], rtol=1e-5, atol=1e-9)  # the 1000 ± 0.01 unit included
    assert got.loc[got.column == 1, "std"].eq(0).all() and got.loc[got.column == 0, "sparsity"].eq(1).all()


def test_stats_without_groups_and_with_wrong_groups() -> None:
    x = _layer(50, 4)
    one = queries.stats(x, None)
    assert one["group"].eq(0).all() and one["count"].eq(50).all()
    with pytest.raises(InvalidInputError, match="one label per row"):
        queries.stats(x, np.zeros(49))


@pytest.mark.parametrize("n", [40, 400])  # Gram space (n < d) and feature space
def test_cka_matches_float64(n: int) -> None:
    a, b = _layer(n, 96, seed=2), _layer(n, 16, seed=3)
    b[:, 3:] += a[:, :13]  # related representations
    assert queries.cka(a, b) == pytest.approx(_cka64(a, b), abs=1e-6)
    assert queries.cka(a, a) == pytest.approx(1.0, abs=1e-6)
    assert queries.cka(a, 3 * a + 7) == pytest.approx(1.0, abs=1e-6)  # invariant to scale and shift
    assert queries.cka(a, np.zeros((n, 5), np.float32)) == 0.0


def test_cka_keeps_float64_input_in_float64() -> None:
    a = _layer(200, 30, seed=4).astype(np.float64)
    b = np.sin(a[:, :10])
    assert queries.cka(a, b) == pytest.approx(_cka64(a, b), abs=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_matches_float64_brute_force(metric: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(queries, "_BLOCK_VALUES", 500)  # several blocks of rows
    x = _layer(500, 20, seed=5)
    x[17] = x[9]  # an exact duplicate: distance 0, found first
    m, q = x.astype(np.float64), x[9].astype(np.float64)
    if metric == "euclidean":
        ref = np.linalg.norm(m - q, axis=1)
    else:
        ref = 1 - m @ q / np.maximum(np.linalg.norm(m, axis=1) * np.linalg.norm(q), 1e-300)
    ref[9] = np.inf
    rows, dist = queries.knn(x, x[9], 8, metric=metric, exclude=9)
    assert rows[0] == 17 and list(rows) == list(np.lexsort((np.arange(500), ref))[:8])
    np.testing.assert_allclose(dist, ref[rows], rtol=1e-6, atol=1e-6)


def test_differences_match_float64() -> None:
    a, b = _layer(100, 9, seed=6), _layer(100, 9, seed=7)
    np.testing.assert_allclose(queries.col_diff(a, b), np.abs(a.astype(np.float64) - b).mean(0), rtol=1e-6)
    np.testing.assert_allclose(queries.row_diff(a, b), np.linalg.norm(a.astype(np.float64) - b, axis=1), rtol=1e-6)


def test_blas_threads_restores_the_thread_count() -> None:
    before = [lib["num_threads"] for lib in _controller().info()]
    with blas_threads():
        a = _layer(64, 64)
        assert queries.cka(a, a) == pytest.approx(1.0, abs=1e-6)
    assert [lib["num_threads"] for lib in _controller().info()] == before


def test_stats_by_targets_read_the_labels_object(store, inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    got = inter.capture(cnn, X, layers=["features.4", "head.1"], codec="kbit", targets=y)
    label_ids = {i.document.get("labels") for i in got.values()}
    assert len(label_ids) == 1 and None not in label_ids  # one object for the capture
    oid = label_ids.pop()
    kinds = {(r.kind, r.object) for r in intermediate_references(store)}
    assert ("intermediate labels", oid) in kinds  # gc keeps it
    explicit = inter.stats(got["head.1"], group_by=y, source="read")
    # the dataset's content gone: per-class statistics of stored values still answer, from the labels object
    store.objects.fs.rm(store.objects.path(_dataset_object(store, got["head.1"].dataset_id)))
    fresh = type(inter)(store.db, store.objects, store.tensors)  # no cached targets
    by_targets = fresh.stats(got["head.1"].id, source="read")
    pd.testing.assert_frame_equal(by_targets, explicit)
    values = inter.get(got["head.1"], source="read")
    np.testing.assert_allclose(by_targets["mean"], _stats64(values, y)["mean"], rtol=1e-12)
    assert fresh.similarity(got["features.4"], got["features.4"], source="read") == pytest.approx(1.0, abs=1e-6)


def _dataset_object(store, dataset_id: str) -> str:  # type: ignore[no-untyped-def]
    from mlkeep.tracking.datasets import dataset_document

    return str(dataset_document(store.db, dataset_id)["object"])
