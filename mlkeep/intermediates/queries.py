"""Diagnostic queries over rows × columns arrays (pure numpy; the facade fetches the arrays).

Ties are broken by row id (smaller first) so an answer is deterministic and
a stored and a recomputed intermediate can be compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError
from mlkeep.intermediates.codes import Codes

METRICS = ("euclidean", "cosine")
_BLOCK_VALUES = 1 << 20  # values per block of rows a distance pass holds in a temporary
_SMALL_VALUES = 1 << 18  # per-class statistics of a layer this small take every group at once
# CKA takes a wide layer's cross term on its codes against a layer at most this wide: there the product is
# small and decoding and centring the wide layer were much of the time (relu4 × relu5 of the benchmark's CNN,
# self terms kept, whole query: 26 -> 18 ms of CPU); against a wide layer the product dominates, and per chunk
# it measured slower than one large product (relu1 × relu4: 215 -> 460 ms)
_CODES_NARROW = 256


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
    float64 straight from the stored float32 (no float64 copy of the layer;
    every group at once on a small layer: `_group_moments`), and its variance is
    taken around its mean (two passes), so a neuron with a large mean and a
    small spread keeps its std.
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
    mean, std, zeros = _group_moments(matrix.reshape(n, d), counts)
    return pd.DataFrame({
        "group": np.repeat(labels, d), "column": np.tile(np.arange(d), len(labels)),
        "count": np.repeat(counts, d), "mean": mean.ravel(), "std": std.ravel(),
        "sparsity": zeros.ravel(),
    })


def _group_moments(matrix: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, fraction of zeros), groups × columns, of rows in group order, `counts[g]` rows of group g
    (each at least one).

    A layer of up to `_SMALL_VALUES` values is summed for every group at once (`np.add.reduceat` over the
    groups' runs of rows): a few numpy calls, not a few per group, which were most of the time on a narrow
    layer (the benchmark's relu5, 2,000 × 32: 1.7 -> 1.0 ms). On a larger one reduceat's cast to float64
    runs ten times slower than a plain sum (2,000 × 4,096: 37 -> 370 ms), so each group is summed apart."""
    if matrix.size > _SMALL_VALUES:
        bounds = np.concatenate([[0], np.cumsum(counts)])
        mean, std, zeros = (np.empty((len(counts), matrix.shape[1]), dtype=np.float64) for _ in range(3))
        for g in range(len(counts)):
            mean[g], std[g], zeros[g] = _moments(matrix[bounds[g] : bounds[g + 1]])
        return mean, std, zeros
    if not len(counts):
        return tuple(np.empty((0, matrix.shape[1])) for _ in range(3))  # type: ignore[return-value]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    c = counts[:, None].astype(np.float64)
    mean = np.add.reduceat(matrix, starts, axis=0, dtype=np.float64) / c
    dev = np.subtract(matrix, np.repeat(mean.astype(_working(matrix.dtype)), counts, axis=0))
    shift = np.add.reduceat(dev, starts, axis=0, dtype=np.float64) / c  # what rounding each mean left behind
    np.square(dev, out=dev)
    var = np.maximum(np.add.reduceat(dev, starts, axis=0, dtype=np.float64) / c - shift * shift, 0.0)
    return mean, np.sqrt(var), np.add.reduceat(matrix == 0, starts, axis=0, dtype=np.int64) / c


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


def cka(a: np.ndarray | Codes, b: np.ndarray | Codes, *,
        self_terms: tuple[float | None, float | None] = (None, None)) -> float:
    """Linear centred kernel alignment of two representations of the same rows (0..1).

    ‖YᵀX‖² / (‖XᵀX‖·‖YᵀY‖) of the centred values. `self_terms` may give
    ‖XᵀX‖² and ‖YᵀY‖² (from `self_term` on the same values, kept from an
    earlier query): those are the dear part, n·d² for a wide layer, while
    the cross term against a narrow layer costs n·dx·dy. Whatever is still
    needed is taken in feature space or through the n×n Gram matrices,
    whichever takes fewer multiplications.
    """
    return cka_and_self_terms(a, b, self_terms)[0]


def cka_and_self_terms(a: np.ndarray | Codes, b: np.ndarray | Codes,
                       self_terms: tuple[float | None, float | None] = (None, None),
                       *, overwrite: bool = False) -> tuple[float, float, float]:
    """(CKA, ‖XᵀX‖², ‖YᵀY‖²): `cka` and the self terms it used, to be kept for later queries. With
    `overwrite`, float32 (or float64) values are centred in place: a caller that read them for this answer
    saves a copy of each layer. Either may be a layer's 8-bit `Codes`: see `_cka_on_codes`."""
    if len(a) != len(b):
        raise InvalidInputError(f"Similarity needs the same rows in both: {len(a)} vs {len(b)} rows.")
    if isinstance(a, Codes) or isinstance(b, Codes):
        found = _cka_on_codes(a, b, self_terms, overwrite=overwrite)
        if found is not None:
            return found
        same = b is a
        a = _decoded(a)
        b = a if same else _decoded(b)
        overwrite = overwrite or same
    x = _centred32(a, overwrite=overwrite)
    y = x if b is a else _centred32(b, overwrite=overwrite)
    hsic, nx, ny = _cka_terms(x, y, *self_terms)
    return (float(hsic / np.sqrt(nx * ny)) if nx > 0 and ny > 0 else 0.0), nx, ny


def _cka_on_codes(a: np.ndarray | Codes, b: np.ndarray | Codes, self_terms: tuple[float | None, float | None],
                  *, overwrite: bool) -> tuple[float, float, float] | None:
    """`cka_and_self_terms` with the wider layer left as its codes, when that is its 8-bit `Codes`, its
    self term is given, the other layer is narrow and the products in feature space are the cheaper way;
    else None.

    Then only the cross term touches the wide layer, XᵀY against the narrow
    layer's centred values Y, which needs neither a float copy of X nor its
    centring: a chunk decodes to lo + step·C per column, so its share is
    step·(CᵀY) plus rank-one terms (`_cross_on_codes`)."""
    swap = _width(b) > _width(a)
    (x, nx), (y, ny) = ((b, self_terms[1]), (a, self_terms[0])) if swap else ((a, self_terms[0]), (b, self_terms[1]))
    n, dx, dy = len(x), _width(x), _width(y)
    if not isinstance(x, Codes) or nx is None or x is y or dy > _CODES_NARROW:
        return None
    if n * n * (dx + dy) / 2 < n * dx * dy + (0 if ny is not None else min(n * dy * dy, n * n * dy) / 2):
        return None
    yc = _centred32(y.decode(), overwrite=True) if isinstance(y, Codes) else _centred32(y, overwrite=overwrite)
    hsic = _square_sum(_cross_on_codes(x, yc))
    ny = _self_term(yc) if ny is None else ny
    value = float(hsic / np.sqrt(nx * ny)) if nx > 0 and ny > 0 else 0.0
    return (value, ny, nx) if swap else (value, nx, ny)


def _cross_on_codes(x: Codes, yc: np.ndarray) -> np.ndarray:
    """XcᵀYc (float64, columns of x × columns of yc) of x's codes, centred, against centred values yc.

    Per chunk, the codes less a whole number near their mean (exact in float32, and it keeps the product
    from summing large numbers to a small result) times Yc in BLAS, then scaled by the chunk's steps; what
    the chunk's offset and the column's mean add is a rank-one term (yc's column sums over the chunk's rows
    are not exactly 0 in floating point, so it is kept). A chunk whose decoding rounds values off their
    affine form (`CodeChunk.rounds_off`) is decoded and centred instead: the answer is the decoded values'."""
    cross = np.zeros((x.n_cols, yc.shape[1]), dtype=np.float64)
    for group in x.column_groups():
        sums = [chunk.codes.sum(1, dtype=np.int64) for chunk in group]
        mean = sum((chunk.r1 - chunk.r0) * chunk.lo.astype(np.float64) + chunk.step.astype(np.float64) * s
                   for chunk, s in zip(group, sums)) / len(x)
        for chunk, s in zip(group, sums):
            part = yc[chunk.r0 : chunk.r1]
            if chunk.rounds_off():
                centred = np.subtract(chunk.values(), mean[:, None], dtype=yc.dtype)
                cross[group[0].cols] += centred @ part
                continue
            shift = np.rint(s / (chunk.r1 - chunk.r0))
            shifted = np.subtract(chunk.codes, shift.astype(yc.dtype)[:, None], dtype=yc.dtype)
            step = chunk.step.astype(np.float64)
            offset = chunk.lo.astype(np.float64) + step * shift - mean
            cross[group[0].cols] += (step[:, None] * (shifted @ part)
                                     + np.outer(offset, part.sum(0, dtype=np.float64)))
    return cross


def _decoded(v: np.ndarray | Codes) -> np.ndarray:
    return v.decode() if isinstance(v, Codes) else v


def _width(v: np.ndarray | Codes) -> int:
    return v.n_cols if isinstance(v, Codes) else int(np.prod(v.shape[1:]))


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


def svcca(a: np.ndarray | Codes, b: np.ndarray | Codes, *, keep: float = 0.99, max_dims: int = 50) -> float:
    """Mean canonical correlation after keeping the top singular directions (`keep` of the variance)."""
    x, y = _centred(_decoded(a), _decoded(b))
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
