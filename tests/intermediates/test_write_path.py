"""The capture's write path: chunk assembly, layout alignment and the cheap delta checks."""

from __future__ import annotations

import numpy as np

from mlkeep.intermediates.layout import plan_layout
from mlkeep.intermediates.storage import _columns, _sub_may_fit


def test_columns_are_the_stacked_rows_transposed() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((n, 300)).astype(np.float32) for n in (100, 7, 129)]
    cm = _columns(parts, 37, 200)
    assert cm.flags.c_contiguous
    np.testing.assert_array_equal(cm, np.concatenate(parts)[:, 37:200].T)


def test_a_flattened_map_is_cut_like_the_map() -> None:
    """A Flatten layer's chunks match its input map's, so they de-duplicate exactly."""
    for rows in (100, 2000, 2048, 5000):
        assert plan_layout(rows, (16, 4, 4)).chunk_cols == plan_layout(rows, (256,)).chunk_cols


def test_sub_check_keeps_close_chunks_and_skips_unrelated_ones() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, 1 << 16, dtype=np.uint8)
    close = base.copy()
    close[::50] += 1
    other = rng.integers(0, 256, 1 << 16, dtype=np.uint8)
    limit = int(0.7 * len(base))
    assert _sub_may_fit(close.tobytes(), base.tobytes(), limit)
    assert not _sub_may_fit(other.tobytes(), base.tobytes(), limit)
    assert not _sub_may_fit(base[:-1].tobytes(), base.tobytes(), limit)
