"""Drift of one feature: live values against reference values (pure statistics, no store).

Numeric features get the population stability index (PSI) over the
reference's deciles and the two-sample Kolmogorov–Smirnov test; categorical
features (strings, booleans, integers with few distinct values) get PSI over
categories and a chi-square test of the reference-vs-live contingency table.

A feature is *drifted* when the test is significant (p < `p_value`) **and**
the shift is large (PSI >= `psi`). Either alone misleads: PSI of a small
window is inflated by sampling noise (about (bins-1)/n for n live rows), and
on large windows KS or chi-square call a negligible shift significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlkeep.errors import InvalidInputError, MlkeepError
from mlkeep.tracking.entities import Entity

PSI_BINS = 10
PLOT_BINS = 20
MAX_CATEGORIES = 20
SMOOTHING = 0.5  # added to every bin's count (Jeffreys' prior): an empty bin is rare, not impossible


@dataclass(frozen=True)
class Thresholds(Entity):
    """When a feature counts as drifted: p-value below `p_value` and PSI at least `psi`."""

    psi: float = 0.2
    p_value: float = 0.01

    def __post_init__(self) -> None:
        if not (self.psi > 0 and math.isfinite(self.psi)) or not 0 < self.p_value < 1:
            raise InvalidInputError(f"Drift thresholds need psi > 0 and 0 < p_value < 1, not {self.psi}, "
                                    f"{self.p_value}.")


@dataclass(frozen=True)
class FeatureDrift(Entity):
    """The drift of one feature (or prediction column) over a window.

    `histogram` compares the two distributions for plotting: numeric features
    have shared `edges`, categorical ones `labels`; `reference` and `live` are
    shares (summing to 1) per bin or label.
    """

    feature: str
    kind: str  # "numeric" or "categorical"
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    psi: float
    drifted: bool
    live_rows: int
    reference_rows: int
    histogram: dict[str, list[Any]] = field(default_factory=dict)


def is_categorical(values: Any) -> bool:
    """Strings, booleans and integers with at most MAX_CATEGORIES distinct values are categories."""
    import pandas as pd

    series = pd.Series(values)
    kind = series.dtype.kind
    if kind == "f":
        return False
    if kind in "iu":
        return series.nunique() <= MAX_CATEGORIES
    return True


def feature_drift(name: str, reference: Any, live: Any, thresholds: Thresholds, *, categorical: bool) -> FeatureDrift:
    """The drift of `live` against `reference` (array-likes of one feature's values, nulls ignored)."""
    if categorical:
        return _categorical(name, category_keys(reference), category_keys(live), thresholds)
    return _numeric(name, _finite(reference), _finite(live), thresholds)


def psi(expected: Any, actual: Any) -> float:
    """Population stability index of two vectors of bin counts: Σ (a - e) · ln(a / e) over smoothed shares.

    Smoothing rather than flooring empty bins at a tiny share: with a floor,
    one bin a small window happens to miss adds ~0.5 to the PSI by itself.
    """
    import numpy as np

    e = np.asarray(expected, dtype=float) + SMOOTHING
    a = np.asarray(actual, dtype=float) + SMOOTHING
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric(name: str, ref: Any, live: Any, thresholds: Thresholds) -> FeatureDrift:
    import numpy as np

    ks_2samp = _stats().ks_2samp
    if len(ref) == 0 or len(live) == 0:
        return _empty(name, "numeric", "ks", len(ref), len(live))
    # deciles at reference values (not interpolated between them), so no bin is empty in the reference
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1), method="inverted_cdf"))[1:-1]
    bins = len(inner) + 1
    counts = [np.bincount(np.searchsorted(inner, x, side="right"), minlength=bins) for x in (ref, live)]
    result = ks_2samp(ref, live)
    statistic, p = float(result.statistic), float(result.pvalue)
    value = psi(*counts)
    lo, hi = float(min(ref.min(), live.min())), float(max(ref.max(), live.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, PLOT_BINS + 1)
    hist = {"edges": edges.tolist(),
            "reference": (np.histogram(ref, edges)[0] / len(ref)).tolist(),
            "live": (np.histogram(live, edges)[0] / len(live)).tolist()}
    return FeatureDrift(name, "numeric", "ks", statistic, p, value, _drifted(p, value, thresholds), len(live),
                        len(ref), hist)


def _categorical(name: str, ref: Any, live: Any, thresholds: Thresholds) -> FeatureDrift:
    import numpy as np

    chi2_contingency = _stats().chi2_contingency
    if len(ref) == 0 or len(live) == 0:
        return _empty(name, "categorical", "chi2", len(ref), len(live))
    ref_counts, live_counts = ref.value_counts(), live.value_counts()
    labels = sorted(set(ref_counts.index) | set(live_counts.index), key=lambda k: -ref_counts.get(k, 0))
    table = np.array([[ref_counts.get(k, 0) for k in labels], [live_counts.get(k, 0) for k in labels]], dtype=float)
    if len(labels) < 2:
        statistic, p = 0.0, 1.0
    else:
        result = chi2_contingency(table)
        statistic, p = float(result.statistic), float(result.pvalue)
    shares = table / table.sum(axis=1, keepdims=True)
    value = psi(table[0], table[1])
    shown = labels[:MAX_CATEGORIES]
    hist = {"labels": [str(k) for k in shown], "reference": shares[0][:len(shown)].tolist(),
            "live": shares[1][:len(shown)].tolist()}
    return FeatureDrift(name, "categorical", "chi2", statistic, p, value, _drifted(p, value, thresholds), len(live),
                        len(ref), hist)


def _stats() -> Any:
    try:
        import scipy.stats
    except ImportError:
        raise MlkeepError("Drift tests need SciPy: pip install 'mlkeep[monitor]'.") from None
    return scipy.stats


def _drifted(p: float, value: float, thresholds: Thresholds) -> bool:
    return p < thresholds.p_value and value >= thresholds.psi


def _empty(name: str, kind: str, test: str, ref_rows: int, live_rows: int) -> FeatureDrift:
    """No values on one side (all null): nothing to compare, reported rather than guessed."""
    return FeatureDrift(name, kind, test, math.nan, math.nan, math.nan, False, live_rows, ref_rows)


def _finite(values: Any) -> Any:
    import numpy as np
    import pandas as pd

    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return v[np.isfinite(v)]


def category_keys(values: Any) -> Any:
    """Values (nulls dropped) as strings that compare as categories: 1, 1.0 and True are all "1"."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values).dropna().reset_index(drop=True)
    if series.dtype.kind not in "biuf":
        return series.astype(str)
    numbers = series.astype(float)
    keys = numbers.astype(str)
    whole = (numbers == np.floor(numbers)) & np.isfinite(numbers)
    keys[whole] = numbers[whole].astype("int64").astype(str)
    return keys
