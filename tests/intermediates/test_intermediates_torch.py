"""Capturing a trained CNN: every codec, dedup across versions, queries read vs recomputed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mlkeep.errors import CodecMismatchError, DatasetUnavailableError, LayerNotFoundError, RowsOutOfRangeError
from mlkeep.intermediates.codecs import error_bound, parse_codec


def _plain(cnn, X, layer):  # type: ignore[no-untyped-def]
    out = {}

    def keep(_m, _i, o):  # type: ignore[no-untyped-def]
        out["v"] = o.detach().clone()  # returns None: a hook's return value would replace the output

    h = cnn.get_submodule(layer).register_forward_hook(keep)
    with torch.no_grad():
        cnn(torch.from_numpy(X))
    h.remove()
    return out["v"].reshape(len(X), -1).numpy()


def test_exact_capture_equals_the_model_and_recompute(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    calls = []
    got = inter.capture(cnn, X, codec="exact", targets=y, batch_size=100, progress=lambda d, n: calls.append((d, n)))
    assert set(got) == set(inter.layers(cnn)) and calls[-1] == (600, 600)
    for layer in ("features.1", "features.4", "head.3"):
        truth = _plain(cnn, X, layer)
        read = inter.get(got[layer], source="read")
        assert inter.last_source == "read" and np.array_equal(read, truth)
        assert np.array_equal(inter.get(got[layer], source="rerun"), truth)
    rows, cols = [5, 599, 0, 130], [3, 0, 200]
    assert np.array_equal(inter.get(got["features.2"], rows, cols), _plain(cnn, X, "features.2")[np.ix_(rows, cols)])
    assert got["features.0"].row_shape == (6, 8, 8) and got["head.3"].n_cols == 10


@pytest.mark.parametrize("spec", ["float16", "kbit(8)", "kbit(4,quantile)"])
def test_lossy_codecs_bound_their_error_and_shrink(inter, cnn, digits_images, spec) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    got = inter.capture(cnn, X, layers=["features.3", "head.1"], codec=spec)
    for layer, item in got.items():
        truth = _plain(cnn, X, layer)
        read = inter.get(item, source="read")
        bound = max(error_bound(parse_codec(spec), truth[r0:r0 + 128]).max() for r0 in range(0, 600, 128))
        assert np.abs(read - truth).max() <= bound + 1e-6
        assert item.stored_bytes < item.raw_bytes


def test_pool_and_threshold_codecs(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    got = inter.capture(cnn, X, layers=["features.1", "features.6"], codec={"features.1": "pool(2)+kbit(8)",
                                                                               "features.6": "threshold(0)"})
    pooled = got["features.1"]
    assert pooled.row_shape == (6, 4, 4) and pooled.codec == "pool(2)+kbit(8)"
    truth = parse_codec("pool(2)").transform(_plain(cnn, X, "features.1"), (6, 8, 8))
    assert np.abs(inter.get(pooled, source="read") - truth).max() <= truth.max() / 255
    assert np.allclose(inter.get(pooled, source="rerun"), truth)  # recomputed answers are pooled too
    assert np.array_equal(inter.get(got["features.6"], source="read"), (_plain(cnn, X, "features.6") > 0) * 1.0)
    with pytest.raises(CodecMismatchError, match="convolutional maps"):
        inter.capture(cnn, X, layers=["head.1"], codec="pool(2)")


def test_queries_agree_read_and_recomputed(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    got = inter.capture(cnn, X, layers=["features.4", "head.1", "head.3"], codec="exact", targets=y)
    for source in ("read", "rerun"):
        top = inter.topk(got["features.4"], 7, 10, source=source)
        assert list(top.columns) == ["row", "value"] and top["value"].is_monotonic_decreasing
    assert inter.topk(got["features.4"], 7, 10, source="read").equals(inter.topk(got["features.4"], 7, 10, source="rerun"))
    near_r = inter.knn(got["head.1"], 3, 5, source="read")
    assert near_r.equals(inter.knn(got["head.1"], 3, 5, source="rerun")) and 3 not in near_r["row"].tolist()
    stats = inter.stats(got["head.3"])
    assert sorted(stats["group"].unique()) == list(range(10)) and len(stats) == 100
    means = stats[stats.group == 4].set_index("column")["mean"]
    assert int(np.argmax(means.to_numpy())) == 4  # a trained model's logit for class 4 is highest on 4s
    assert inter.similarity(got["head.1"], got["head.1"]) == pytest.approx(1.0)
    assert 0 < inter.similarity(got["features.4"], got["head.3"], "svcca") <= 1
    assert inter.corr(got["head.3"], [0, 1, 2]).shape == (3, 3)
    assert inter.info(got["head.3"]).n_queries == 3  # stats, svcca, corr


def test_frozen_layers_are_stored_once_across_versions(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    first = inter.capture(cnn, X, codec="kbit", repo="cnn")
    tuned = copy.deepcopy(cnn)
    with torch.no_grad():
        tuned.head[3].weight.add_(0.05)  # only the last layer changes
    second = inter.capture(tuned, X, codec="kbit", repo="cnn")
    assert first["head.3"].commit_id != second["head.3"].commit_id
    for layer in ("features.0", "features.5", "head.1"):
        assert second[layer].new_bytes == 0 and second[layer].manifest == first[layer].manifest
    assert second["head.3"].new_bytes > 0
    diff = inter.col_diff(first["head.3"], second["head.3"])
    assert diff.shape == (10,) and (diff > 0).all()
    assert (inter.row_diff(first["head.1"], second["head.1"]) == 0).all()
    # capturing the same version again reuses its commit
    assert inter.capture(tuned, X, layers=["head.3"], repo="cnn")["head.3"].commit_id == second["head.3"].commit_id


def test_approximate_dedup_reuses_near_identical_chunks(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    a = inter.capture(cnn, X, layers=["features.0"], codec="exact", dedup="approx", tolerance=1e-3)["features.0"]
    tuned = copy.deepcopy(cnn)
    with torch.no_grad():
        tuned.features[0].bias.add_(1e-5)
    b = inter.capture(tuned, X, layers=["features.0"], codec="exact", dedup="approx", tolerance=1e-3)["features.0"]
    assert b.document["approx_reused"] == b.document["chunks"] and b.new_bytes == 0
    assert np.abs(inter.get(b, source="read") - _plain(tuned, X, "features.0")).max() <= 1e-3
    assert _chunks(inter, a) == _chunks(inter, b)


def _chunks(inter, item):  # type: ignore[no-untyped-def]
    from mlkeep.intermediates.storage import get_manifest

    return get_manifest(inter.objects, item.manifest)["chunks"]


def test_version_capture_and_lineage(store, inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    commit = store.repo("digits-cnn").commit(cnn, "trained")
    from cnn_model import DigitsCNN

    got = inter.capture(commit, X, layers=["head.1"], targets=y, architecture=DigitsCNN())["head.1"]
    assert got.commit_id == commit.id and got.repository == "digits-cnn"
    assert np.allclose(inter.get(got, source="rerun"), _plain(cnn, X, "head.1"))
    again = inter.capture("digits-cnn@main", got.dataset_id, layers=["head.1"])["head.1"]
    assert again.manifest == got.manifest
    from sqlalchemy import select

    from mlkeep.metadata.tables import links

    with store.db.connect() as conn:
        edges = {(r.src_kind, r.dst_kind) for r in conn.execute(select(links).where(links.c.dst_id == got.id))}
    assert edges == {("commit", "intermediate"), ("dataset", "intermediate")}


def test_bad_input_gets_specific_errors(store, inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    with pytest.raises(LayerNotFoundError, match="features.0") as info:
        inter.capture(cnn, X, layers=["conv9"])
    assert "head.3" in info.value.available
    got = inter.capture(cnn, X, layers=["head.3"], codec="exact")["head.3"]
    with pytest.raises(RowsOutOfRangeError, match="600"):
        inter.get(got, rows=[600])
    with pytest.raises(RowsOutOfRangeError):
        inter.topk(got, 10, 3)
    with pytest.raises(RowsOutOfRangeError):
        inter.knn(got, -1, 3)
    # the dataset's content disappears: recomputation says so, reading still works
    from mlkeep.tracking.datasets import dataset_document

    store.objects.fs.rm(store.objects.path(dataset_document(store.db, got.dataset_id)["object"]))
    with pytest.raises(DatasetUnavailableError, match="no longer available"):
        inter.get(got, source="rerun")
    assert inter.get(got, rows=[1, 2]).shape == (2, 10)
