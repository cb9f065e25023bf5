"""Server-side downsampling of metric series, so a chart never receives 100,000 points.

Min/max buckets (as M4 does): the steps are split into `n/4` equal-width
buckets and each keeps its first, lowest, highest and last point. A chart drawn
from them is the chart of the full series at that width: spikes and dips
survive, unlike with averaging or striding. Vectorised with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Series:
    """Parallel columns of one metric series; NaN values are NaN in `values`."""

    steps: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def window(self, min_step: float | None, max_step: float | None) -> Series:
        """The points with `min_step <= step <= max_step` (for zooming)."""
        keep = np.ones(len(self.steps), dtype=bool)
        if min_step is not None:
            keep &= self.steps >= min_step
        if max_step is not None:
            keep &= self.steps <= max_step
        return self if keep.all() else Series(self.steps[keep], self.values[keep], self.timestamps[keep])


def downsample(series: Series, max_points: int) -> Series:
    """At most `max_points` (>= 4) points keeping each bucket's first, min, max and last; sorted by step."""
    n = len(series)
    if max_points <= 0 or n <= max_points:
        return series
    buckets = max(max_points // 4, 1)
    steps = series.steps.astype(np.float64)
    lo, hi = steps[0], steps[-1]
    width = (hi - lo) / buckets or 1.0
    which = np.minimum(((steps - lo) / width).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    ends = np.r_[starts[1:], n] - 1
    values = series.values
    filled_hi = np.where(np.isnan(values), -np.inf, values)
    filled_lo = np.where(np.isnan(values), np.inf, values)
    idx_max = _arg_reduce(filled_hi, starts, np.maximum)
    idx_min = _arg_reduce(filled_lo, starts, np.minimum)
    keep = np.unique(np.concatenate([starts, ends, idx_min, idx_max]))
    return Series(series.steps[keep], values[keep], series.timestamps[keep])


def _arg_reduce(values: np.ndarray, starts: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """For each segment beginning at `starts`, the index of its extreme value (first one on ties)."""
    extreme = ufunc.reduceat(values, starts)
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    hit = np.flatnonzero(values == extreme[seg])
    # the first hit of each segment
    first = np.r_[True, seg[hit][1:] != seg[hit][:-1]]
    out = starts.copy()
    out[seg[hit][first]] = hit[first]
    return out
