"""Diagnostic queries over rows × columns arrays (pure numpy; the facade fetches the arrays).

Ties are broken by row id (smaller first) so an answer is deterministic and
a stored and a recomputed intermediate can be compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError

METRICS = ("euclidean", "cosine")
_BLOCK_VALUES = 1 << 20  # values per block of rows a distance pass holds in a temporary


def topk(column: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """Row ids of the `k` largest (or smallest) values of one column, best first."""
    k = _k(k, len(column))
    key = -column.astype(np.float64) if largest else column.astype(np.float64)
    return _smallest(key, k)


def knn(matrix: np.ndarray, query: np.ndarray, k: int, *, metric: str = "euclidean",
        exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row ids of the `k` rows nearest `query` and their distances, nearest first.

    Distances are taken over blocks of rows: a float32 layer is never copied
    whole to float64, and Euclidean distances square the differences (not
    |m|² − 2m·q + |q|², which cancels for the nearest rows, the ones asked for).
    """
    if metric not in METRICS:
        raise InvalidInputError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")
    q = np.asarray(query).ravel()
    d = np.empty(len(matrix), dtype=np.float64)
    step = max(1, _BLOCK_VALUES // max(matrix.shape[1], 1))
    if metric == "euclidean":
        q = q.astype(_working(matrix.dtype))
        for s in range(0, len(matrix), step):
            diff = np.subtract(matrix[s : s + step], q, dtype=q.dtype)
            np.square(diff, out=diff)
            d[s : s + step] = diff.sum(1, dtype=np.float64)
        np.sqrt(d, out=d)
    else:
        q = q.astype(np.float64)
        qn = np.linalg.norm(q)
        for s in range(0, len(matrix), step):
            part = matrix[s : s + step].astype(np.float64)
            norms = np.linalg.norm(part, axis=1) * qn
            d[s : s + step] = 1.0 - (part @ q) / np.where(norms > 0, norms, 1.0)
    if exclude is not None:
        d[exclude] = np.inf
    k = _k(k, len(d) - (exclude is not None))
    order = _smallest(d, k)
    return order, d[order]


def stats(matrix: np.ndarray, groups: np.ndarray | None) -> Any:
    """Per group and column: count, mean, std, sparsity (fraction of zeros), as a long pandas DataFrame.

    Rows are put in group order once; each group's sums are accumulated in
    float64 straight from the stored float32 (no float64 copy of the layer),
    and its variance is taken around its mean (two passes), so a neuron with a
    large mean and a small spread keeps its std.
    """
    import pandas as pd

    n, d = matrix.shape
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n:
        raise InvalidInputError(f"group_by must have one label per row ({n}), not {groups.size}.")
    labels, index = np.unique(groups, return_inverse=True)
    index = index.ravel()
    counts = np.bincount(index, minlength=len(labels))
    if n and np.any(index[1:] < index[:-1]):
        matrix = matrix[np.argsort(index, kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    mean, std, zeros = (np.empty((len(labels), d), dtype=np.float64) for _ in range(3))
    for g in range(len(labels)):
        part = matrix[bounds[g] : bounds[g + 1]]
        mean[g], std[g], zeros[g] = _moments(part)
    return pd.DataFrame({
        "group": np.repeat(labels, d), "column": np.tile(np.arange(d), len(labels)),
        "count": np.repeat(counts, d), "mean": mean.ravel(), "std": std.ravel(),
        "sparsity": zeros.ravel(),
    })


def _moments(part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, fraction of zeros) of each column of a non-empty block of rows."""
    c = len(part)
    mean = part.sum(0, dtype=np.float64) / c
    dev = np.subtract(part, mean.astype(_working(part.dtype)))
    shift = dev.sum(0, dtype=np.float64) / c  # what rounding the mean left behind
    np.square(dev, out=dev)
    var = np.maximum(dev.sum(0, dtype=np.float64) / c - shift * shift, 0.0)
    return mean, np.sqrt(var), np.count_nonzero(part == 0, axis=0) / c


def col_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: mean |a − b| over rows."""
    _same_shape(a, b)
    diff = np.subtract(a, b, dtype=_working(np.result_type(a, b)))
    np.abs(diff, out=diff)
    return diff.mean(0, dtype=np.float64)


def row_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: Euclidean distance between a's and b's representation."""
    _same_shape(a, b)
    diff = np.subtract(a, b, dtype=_working(np.result_type(a, b)))
    np.square(diff, out=diff)
    return np.sqrt(diff.sum(1, dtype=np.float64))


def corr(matrix: np.ndarray) -> np.ndarray:
    """Pearson correlation between columns (a constant column correlates 0 with everything)."""
    m = matrix.astype(np.float64)
    m = m - m.mean(0)
    norms = np.linalg.norm(m, axis=0)
    m = m / np.where(norms > 0, norms, 1.0)
    out = m.T @ m
    np.fill_diagonal(out, np.where(norms > 0, 1.0, 0.0))
    return out


def cka(a: np.ndarray, b: np.ndarray, *, self_terms: tuple[float | None, float | None] = (None, None)) -> float:
    """Linear centred kernel alignment of two representations of the same rows (0..1).

    ‖YᵀX‖² / (‖XᵀX‖·‖YᵀY‖) of the centred values. `self_terms` may give
    ‖XᵀX‖² and ‖YᵀY‖² (from `self_term` on the same values, kept from an
    earlier query): those are the dear part, n·d² for a wide layer, while
    the cross term against a narrow layer costs n·dx·dy. Whatever is still
    needed is taken in feature space or through the n×n Gram matrices,
    whichever takes fewer multiplications.
    """
    return cka_and_self_terms(a, b, self_terms)[0]


def cka_and_self_terms(a: np.ndarray, b: np.ndarray, self_terms: tuple[float | None, float | None] = (None, None),
                       *, overwrite: bool = False) -> tuple[float, float, float]:
    """(CKA, ‖XᵀX‖², ‖YᵀY‖²): `cka` and the self terms it used, to be kept for later queries. With
    `overwrite`, float32 (or float64) values are centred in place: a caller that read them for this answer
    saves a copy of each layer."""
    if len(a) != len(b):
        raise InvalidInputError(f"Similarity needs the same rows in both: {len(a)} vs {len(b)} rows.")
    x = _centred32(a, overwrite=overwrite)
    y = x if b is a else _centred32(b, overwrite=overwrite)
    hsic, nx, ny = _cka_terms(x, y, *self_terms)
    return (float(hsic / np.sqrt(nx * ny)) if nx > 0 and ny > 0 else 0.0), nx, ny


def self_term(a: np.ndarray) -> float:
    """‖XᵀX‖² of the centred values of `a` (the same in Gram space: ‖XXᵀ‖²), the part of CKA that
    depends on one representation alone."""
    return _self_term(_centred32(a))


def _cka_terms(x: np.ndarray, y: np.ndarray, nx: float | None, ny: float | None) -> tuple[float, float, float]:
    """(‖YᵀX‖², ‖XᵀX‖², ‖YᵀY‖²) of centred x and y, computing only the self terms not given, each product in
    float32 (the values' own precision; BLAS's symmetric product for XᵀX), sums of squares in float64."""
    n, dx, dy = len(x), x.shape[1], y.shape[1]
    self_x = 0 if nx is not None else min(n * dx * dx, n * n * dx) / 2
    self_y = 0 if ny is not None else min(n * dy * dy, n * n * dy) / 2
    if n * n * (dx + dy) / 2 < n * dx * dy + self_x + self_y:  # the Gram matrices answer all three at once
        kx, ky = x @ x.T, y @ y.T
        return _dot(kx, ky), _dot(kx, kx) if nx is None else nx, _dot(ky, ky) if ny is None else ny
    cross = y.T @ x
    return _dot(cross, cross), _self_term(x) if nx is None else nx, _self_term(y) if ny is None else ny


def _self_term(x: np.ndarray) -> float:
    """‖XᵀX‖² of centred x, through whichever of XᵀX and XXᵀ is smaller."""
    return _square_sum(x.T @ x) if x.shape[1] <= len(x) else _square_sum(x @ x.T)


def svcca(a: np.ndarray, b: np.ndarray, *, keep: float = 0.99, max_dims: int = 50) -> float:
    """Mean canonical correlation after keeping the top singular directions (`keep` of the variance)."""
    x, y = _centred(a, b)
    xs, ys = _top_directions(x, keep, max_dims), _top_directions(y, keep, max_dims)
    if xs.shape[1] == 0 or ys.shape[1] == 0:
        return 0.0
    qx, _ = np.linalg.qr(xs)
    qy, _ = np.linalg.qr(ys)
    rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
    return float(np.clip(rho, 0, 1).mean())


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a|: agreement of two top-k or kNN answers."""
    return len(set(np.asarray(a).tolist()) & set(np.asarray(b).tolist())) / max(len(a), 1)


def _top_directions(x: np.ndarray, keep: float, max_dims: int) -> np.ndarray:
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    if not s.any():
        return u[:, :0]
    var = np.cumsum(s**2) / (s**2).sum()
    dims = min(int(np.searchsorted(var, keep) + 1), max_dims, len(s))
    return u[:, :dims] * s[:dims]


def _smallest(key: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` smallest keys, smallest first, ties by position (NaN last).

    A partition finds the k-th smallest in linear time; only the keys up to it (ties at it included,
    which quantized values have many of) are sorted, not all n."""
    if k < len(key):
        kth = np.partition(key, k - 1)[k - 1]
        if not np.isnan(kth):
            near = np.flatnonzero(key <= kth)
            return near[np.lexsort((near, key[near]))][:k]
    return np.lexsort((np.arange(len(key)), key))[:k]


def _working(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a pass over values of `dtype` computes in: float32 for float32 and narrower (integers
    too: no wrap-around when subtracting unsigned ones), float64 for float64 and wide integers."""
    return np.result_type(dtype, np.float32)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b over every entry, accumulated in float64."""
    return float(np.dot(a.ravel().astype(np.float64), b.ravel().astype(np.float64)))


def _square_sum(m: np.ndarray) -> float:
    return _dot(m, m)


def _centred32(a: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Columns centred (twice: the second pass removes what rounding the first mean left), constant
    columns dropped, in float32 unless the values are float64; in place with `overwrite` when they already
    are float32 (or float64) and no column is dropped."""
    x = np.asarray(a)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = x.reshape(len(x), -1)
    if not len(x):
        return x.astype(dtype)
    live = x.max(0) != x.min(0)  # NaN columns stay, so a NaN answer says the values hold NaN
    if live.all():
        x = x.astype(dtype, copy=not (overwrite and x.dtype == dtype and x.flags.writeable))
    elif x.flags.f_contiguous:  # column by column: the live columns are whole runs of memory
        x = np.compress(live, x.T, axis=0).T.astype(dtype, copy=False)
    else:  # compress copies far faster than a boolean index of a row-major array's columns
        x = np.compress(live, x, axis=1).astype(dtype, copy=False)
    x -= (x.sum(0, dtype=np.float64) / len(x)).astype(dtype)
    x -= (x.sum(0, dtype=np.float64) / len(x)).astype(dtype)
    return x


def _centred(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise InvalidInputError(f"Similarity needs the same rows in both: {len(a)} vs {len(b)} rows.")
    x, y = a.astype(np.float64), b.astype(np.float64)
    return x - x.mean(0), y - y.mean(0)


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise InvalidInputError(f"Both intermediates must have the same rows and columns: {a.shape} vs {b.shape}.")


def _k(k: int, n: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be a positive whole number, not {k!r}.")
    return min(int(k), n)
