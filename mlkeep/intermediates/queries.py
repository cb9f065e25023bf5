"""Diagnostic queries over rows × columns arrays (pure numpy; the facade fetches the arrays).

Ties are broken by row id (smaller first) so an answer is deterministic and
a stored and a recomputed intermediate can be compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError

METRICS = ("euclidean", "cosine")


def topk(column: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """Row ids of the `k` largest (or smallest) values of one column, best first."""
    k = _k(k, len(column))
    key = -column.astype(np.float64) if largest else column.astype(np.float64)
    return np.lexsort((np.arange(len(column)), key))[:k]


def knn(matrix: np.ndarray, query: np.ndarray, k: int, *, metric: str = "euclidean",
        exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row ids of the `k` rows nearest `query` and their distances, nearest first."""
    if metric not in METRICS:
        raise InvalidInputError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")
    m = matrix.astype(np.float64, copy=False)
    q = query.astype(np.float64).ravel()
    if metric == "euclidean":
        d = np.sqrt(np.maximum((m * m).sum(1) - 2 * m @ q + q @ q, 0.0))
    else:
        norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
        d = 1.0 - (m @ q) / np.where(norms > 0, norms, 1.0)
    if exclude is not None:
        d[exclude] = np.inf
    k = _k(k, len(d) - (exclude is not None))
    order = np.lexsort((np.arange(len(d)), d))[:k]
    return order, d[order]


def stats(matrix: np.ndarray, groups: np.ndarray | None) -> Any:
    """Per group and column: mean, std, sparsity (fraction of zeros), as a long pandas DataFrame."""
    import pandas as pd

    if groups is None:
        groups = np.zeros(len(matrix), dtype=np.int64)
    groups = np.asarray(groups)
    if len(groups) != len(matrix):
        raise InvalidInputError(f"group_by must have one label per row ({len(matrix)}), not {len(groups)}.")
    frames = []
    for g in np.unique(groups):
        part = matrix[groups == g].astype(np.float64)
        frames.append(pd.DataFrame({
            "group": g, "column": np.arange(matrix.shape[1]), "count": len(part),
            "mean": part.mean(0), "std": part.std(0), "sparsity": (part == 0).mean(0),
        }))
    return pd.concat(frames, ignore_index=True)


def col_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: mean |a − b| over rows."""
    _same_shape(a, b)
    return np.abs(a.astype(np.float64) - b).mean(0)


def row_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: Euclidean distance between a's and b's representation."""
    _same_shape(a, b)
    return np.linalg.norm(a.astype(np.float64) - b, axis=1)


def corr(matrix: np.ndarray) -> np.ndarray:
    """Pearson correlation between columns (a constant column correlates 0 with everything)."""
    m = matrix.astype(np.float64)
    m = m - m.mean(0)
    norms = np.linalg.norm(m, axis=0)
    m = m / np.where(norms > 0, norms, 1.0)
    out = m.T @ m
    np.fill_diagonal(out, np.where(norms > 0, 1.0, 0.0))
    return out


def cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment of two representations of the same rows (0..1)."""
    x, y = _centred(a, b)
    if x.shape[0] < max(x.shape[1], y.shape[1]):
        kx, ky = x @ x.T, y @ y.T  # n × n Gram matrices are the smaller ones
        hsic, nx, ny = (kx * ky).sum(), np.linalg.norm(kx), np.linalg.norm(ky)
    else:
        hsic = np.linalg.norm(y.T @ x) ** 2
        nx, ny = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    return float(hsic / (nx * ny)) if nx > 0 and ny > 0 else 0.0


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
