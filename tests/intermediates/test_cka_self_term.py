"""CKA's self term is kept per stored intermediate at its first whole-layer query and gives the answer of
computing everything from the stored values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlkeep.intermediates import gram, queries


def _no_self_terms(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(_x: np.ndarray) -> float:
        raise AssertionError("a kept self term should have been used")

    monkeypatch.setattr(queries, "_self_term", refuse)


def test_the_first_query_keeps_the_self_terms_and_later_ones_use_them(inter, cnn, digits_images,
                                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    got = inter.capture(cnn, X, layers=["features.1", "head.2"], codec="kbit", targets=y)
    assert all(gram.cached(inter.info(item.id)) is None for item in got.values())  # capture pays nothing for it
    inter.similarity(got["features.1"], got["head.2"], source="read")
    a, b = (inter.info(got[layer].id) for layer in ("features.1", "head.2"))
    va, vb = inter.get(a, source="read"), inter.get(b, source="read")
    for item, values in ((a, va), (b, vb)):
        assert gram.cached(item) == pytest.approx(queries.self_term(values), rel=1e-6)  # float32 products: BLAS threads may round differently
    want = queries.cka(va, vb)
    _no_self_terms(monkeypatch)
    assert inter.similarity(a, b, source="read") == pytest.approx(want, abs=1e-7)
    assert inter.similarity(a, a, source="read") == pytest.approx(1.0, abs=1e-6)


def test_wide_layer_keeps_it_at_first_query_and_a_row_subset_ignores_it(inter, cnn, digits_images,
                                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    got = inter.capture(cnn, X, layers=["features.1", "features.6"], codec="kbit", targets=y)
    a, b = got["features.1"], got["features.6"]
    assert gram.cached(inter.info(a.id)) is None
    rows = np.arange(0, len(X), 3)
    subset = inter.similarity(a, b, rows=rows, source="read")
    assert gram.cached(inter.info(a.id)) is None  # a subset's self term is not the layer's
    first = inter.similarity(a, b, source="read")
    kept = gram.cached(inter.info(a.id))
    assert kept == pytest.approx(queries.self_term(inter.get(a, source="read")), rel=1e-6)
    assert inter.info(a.id).n_queries >= 3  # keeping it did not lose the query counts
    _no_self_terms(monkeypatch)
    # the kept self term lets the cross term run on the wide layer's codes: the same value to rounding
    assert inter.similarity(a, b, source="read") == pytest.approx(first, abs=1e-7)  # float32 products
    va, vb = inter.get(a, rows=rows, source="read"), inter.get(b, rows=rows, source="read")
    monkeypatch.undo()
    assert subset == pytest.approx(queries.cka(va, vb), abs=1e-9)


def test_a_self_term_of_other_values_is_ignored(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    item = inter.capture(cnn, X, layers=["head.2"], codec="kbit", targets=y)["head.2"]
    inter.similarity(item, item, source="read")
    item = inter.info(item.id)
    assert gram.cached(item) is not None
    stale = replace(item, document=dict(item.document, **{gram.KEY: {"manifest": "0" * 64, "value": 1.0}}))
    assert gram.cached(stale) is None
    virtual = replace(item, manifest=None)
    assert gram.cached(virtual) is None
    bad = replace(item, document=dict(item.document, **{gram.KEY: {"manifest": item.manifest, "value": "x"}}))
    assert gram.cached(bad) is None


def test_self_terms_given_change_nothing() -> None:
    rng = np.random.default_rng(0)
    for n, dx, dy in ((50, 200, 8), (400, 60, 12)):  # Gram space and feature space
        a = np.maximum(rng.standard_normal((n, dx)), 0).astype(np.float32)
        b = (a[:, :dy] * 2 + rng.standard_normal((n, dy))).astype(np.float32)
        value, tx, ty = queries.cka_and_self_terms(a, b)
        assert (tx, ty) == (pytest.approx(queries.self_term(a), rel=1e-6), pytest.approx(queries.self_term(b), rel=1e-6))
        assert queries.cka(a, b, self_terms=(tx, None)) == pytest.approx(value, abs=1e-7)
        assert queries.cka(a, b, self_terms=(tx, ty)) == pytest.approx(value, abs=1e-7)
