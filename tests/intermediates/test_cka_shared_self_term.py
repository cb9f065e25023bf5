"""A self term kept for one intermediate's stored values serves every intermediate stored with the same
manifest (the same values: a layer captured again, unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from mlkeep.intermediates import gram, queries


def test_a_capture_of_the_same_values_reuses_the_kept_self_term(inter, cnn, digits_images,
                                                                 monkeypatch) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    first = inter.capture(cnn, X, layers=["features.1", "head.2"], codec="kbit", targets=y, name="first")
    again = inter.capture(cnn, X, layers=["features.1", "head.2"], codec="kbit", targets=y, name="again")
    other = inter.capture(cnn, X, layers=["features.1"], codec="kbit(4)", targets=y, name="other")
    a, b = first["features.1"], again["features.1"]
    assert a.manifest == b.manifest and a.id != b.id
    want = inter.similarity(a, first["head.2"], source="read")  # keeps a's self term
    assert gram.cached(inter.info(b.id)) is None
    assert gram.find(inter.db, inter.info(other["features.1"].id)) is None  # other values: not shared
    kept = gram.find(inter.db, inter.info(b.id))
    assert kept is not None and kept == gram.cached(inter.info(a.id))
    assert gram.cached(inter.info(b.id)) == kept  # now in b's record too

    def refuse(_x: np.ndarray) -> float:
        raise AssertionError("the shared self term should have been used")

    monkeypatch.setattr(queries, "_self_term", refuse)
    assert inter.similarity(b, again["head.2"], source="read") == pytest.approx(want, abs=1e-6)
