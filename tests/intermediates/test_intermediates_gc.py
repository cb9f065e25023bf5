"""Deleting intermediates: gc frees the chunks only they used, and keeps shared chunks and delta bases."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mlkeep.errors import NotFoundError
from mlkeep.intermediates.storage import get_manifest


def _objects(inter, item) -> set[str]:  # type: ignore[no-untyped-def]
    doc = get_manifest(inter.objects, item.manifest)
    bases = {base for base, _ in doc.get("deltas", {}).values()}
    return {item.manifest, *(o for block in doc["chunks"] for o in block), *bases}


def _tuned(cnn):  # type: ignore[no-untyped-def]
    tuned = copy.deepcopy(cnn)
    with torch.no_grad():
        tuned.head[3].bias.add_(0.5)  # the head's output changes; every earlier layer stays the same
    return tuned


def test_gc_frees_a_deleted_intermediates_own_chunks_only(store, inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    layers = ["features.1", "head.3"]
    first = inter.capture(cnn, X, layers=layers, codec="exact", repo="cnn", dedup="exact")
    second = inter.capture(_tuned(cnn), X, layers=layers, codec="exact", repo="cnn", dedup="exact")
    kept = {layer: inter.get(first[layer], source="read") for layer in layers}
    assert second["features.1"].manifest == first["features.1"].manifest  # shared: stored once
    assert store.gc(grace_seconds=0).deleted == []
    own = _objects(inter, second["head.3"]) - _objects(inter, first["head.3"])
    assert own
    for item in second.values():
        inter.delete(item)
    with pytest.raises(NotFoundError):
        inter.info(second["head.3"].id)
    report = store.gc(grace_seconds=0)
    assert own <= set(report.deleted)
    assert not any(store.objects.exists(o) for o in own)
    for layer in layers:  # the shared layer and the first version are untouched
        assert np.array_equal(inter.get(first[layer], source="read"), kept[layer])
    rest = set().union(*(_objects(inter, item) for item in first.values()))
    for item in first.values():
        inter.delete(item)
    store.gc(grace_seconds=0)
    assert not any(store.objects.exists(o) for o in rest)


def test_gc_keeps_the_base_of_a_chunk_stored_as_a_delta(store, inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, _ = digits_images
    first = inter.capture(cnn, X, layers=["head.3"], codec="kbit(8)", repo="cnn")["head.3"]
    second = inter.capture(_tuned(cnn), X, layers=["head.3"], codec="kbit(8)", repo="cnn")["head.3"]
    assert second.document["deltas"] > 0 and second.new_bytes < first.new_bytes / 2
    expected = inter.get(second, source="read")
    used = _objects(inter, second)
    assert used & _objects(inter, first)  # the bases are the first version's chunks
    inter.delete(first)
    store.gc(grace_seconds=0)
    assert np.array_equal(inter.get(second, source="read"), expected)
    inter.delete(second)
    store.gc(grace_seconds=0)
    assert not any(store.objects.exists(o) for o in used)
