"""Per-class statistics give one answer whether a layer's groups are summed all at once (a small layer) or
group by group (a large one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlkeep.intermediates import queries


@pytest.mark.parametrize("groups", [np.arange(500) % 9, np.zeros(500, dtype=np.int64), np.arange(500) % 250])
def test_both_ways_give_the_float64_answer(groups: np.ndarray, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((500, 24)), 0).astype(np.float32)
    x[:, 1] = 1000.0 + rng.standard_normal(500).astype(np.float32) * 1e-2  # large mean, small spread
    groups = rng.permutation(groups)
    at_once = queries.stats(x, groups)
    monkeypatch.setattr(queries, "_SMALL_VALUES", 0)
    apart = queries.stats(x, groups)
    pd.testing.assert_frame_equal(at_once[["group", "column", "count", "sparsity"]],
                                  apart[["group", "column", "count", "sparsity"]])
    for label in np.unique(groups):
        part = x[groups == label].astype(np.float64)
        for frame in (at_once, apart):
            rows = frame[frame.group == label]
            np.testing.assert_allclose(rows["mean"], part.mean(0), rtol=1e-12)
            np.testing.assert_allclose(rows["std"], part.std(0), rtol=1e-5, atol=1e-9)
            np.testing.assert_array_equal(rows["sparsity"], (part == 0).mean(0))


def test_no_rows_no_groups() -> None:
    frame = queries.stats(np.zeros((0, 3), np.float32), np.zeros(0, dtype=np.int64))
    assert len(frame) == 0
