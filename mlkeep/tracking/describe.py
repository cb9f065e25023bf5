"""Describing data: a content fingerprint, a typed schema, statistics and histograms.

Works on numpy arrays, pandas frames and series, and files (CSV, TSV and
Parquet are read to describe their columns; any other file is described by
its bytes alone). The fingerprint depends only on content (values, dtypes,
column names, targets), so the same data logged twice is one Dataset.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkeep.errors import DatasetError

MAX_DESCRIBED_COLUMNS = 2000
HISTOGRAM_BINS = 10
TOP_CATEGORIES = 20


@dataclass
class Description:
    """What `describe` learned about some data, and the bytes to store it as."""

    fingerprint: str
    kind: str  # "array", "frame" or "file"
    num_rows: int
    columns: list[dict[str, str]]
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    histograms: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    payload: bytes | None = None  # what to store; None for files (streamed from `path`)
    path: Path | None = None
    format: str = "npz"
    targets: str | None = None


def describe(data: Any, targets: Any = None) -> Description:
    """Fingerprint and describe `data`; `DatasetError` for anything that cannot be."""
    if isinstance(data, (str, os.PathLike)):
        if targets is not None:
            raise DatasetError("Targets cannot be given with a file; put them in the file as a column.")
        return _describe_file(Path(data))
    pd = _pandas()
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        return _describe_frame(data, targets)
    np = _numpy()
    try:
        array = np.asarray(data)
    except Exception as exc:
        raise DatasetError(f"Cannot read {type(data).__name__} as an array: {exc}") from exc
    return _describe_array(array, targets)


def typing_of(dtype: Any) -> str:
    """The schema's TypeHint for a numpy/pandas dtype."""
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "BOOLEAN"
    if kind in "iu":
        return "INT" if dtype.itemsize <= 4 else "LONG"
    if kind == "f":
        return "FLOAT" if dtype.itemsize <= 4 else "DOUBLE"
    if kind in "OSU":
        return "STRING"
    return "UNKNOWN"


def _describe_array(array: Any, targets: Any) -> Description:
    np = _numpy()
    if array.dtype.kind in "OV" or array.ndim == 0:
        raise DatasetError(
            f"Cannot fingerprint an array of dtype {array.dtype} with shape {array.shape}: "
            "give a numeric or string array with at least one dimension, a pandas DataFrame, or a file."
        )
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    _hash_array(digest, "data", array)
    y = None
    if targets is not None:
        y = np.ascontiguousarray(np.asarray(targets))
        if y.dtype.kind in "OV" or len(y) != len(array):
            raise DatasetError(f"Targets must be an array of {len(array)} numbers or strings, one per row.")
        _hash_array(digest, "targets", y)
    table = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    names = [f"x{i}" for i in range(table.shape[1])] if array.ndim > 1 else ["x"]
    columns = [{"name": n, "typing": typing_of(array.dtype)} for n in names]
    stats, hists = _array_summaries(names, table)
    if y is not None:
        columns.append({"name": "target", "typing": typing_of(y.dtype)})
        s, h = _column_summaries(["target"], [y.reshape(len(y), -1)[:, 0]] if y.ndim > 1 else [y])
        stats.update(s)
        hists.update(h)
    buf = io.BytesIO()
    np.savez(buf, data=array, **({"targets": y} if y is not None else {}))
    return Description(
        fingerprint=digest.hexdigest(), kind="array", num_rows=len(array), columns=columns, statistics=stats,
        histograms=hists, payload=buf.getvalue(), format="npz", targets="target" if y is not None else None,
    )


def _describe_frame(frame: Any, targets: Any) -> Description:
    pd = _pandas()
    frame = frame.copy(deep=False)
    frame.columns = [str(c) for c in frame.columns]
    target_name = None
    if targets is not None:
        series = targets if isinstance(targets, pd.Series) else pd.Series(_numpy().asarray(targets))
        if len(series) != len(frame):
            raise DatasetError(f"Targets must have one value per row ({len(frame)}), not {len(series)}.")
        target_name = str(series.name) if series.name is not None and str(series.name) not in frame else "target"
        frame[target_name] = series.to_numpy()
    if frame.columns.duplicated().any():
        raise DatasetError("A dataset's column names must be unique.")
    digest = hashlib.sha256()
    digest.update(repr([(c, str(t)) for c, t in frame.dtypes.items()]).encode())
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError as exc:
        raise DatasetError(f"Cannot fingerprint this DataFrame (unhashable values?): {exc}") from exc
    names = list(frame.columns)
    columns = [{"name": c, "typing": typing_of(frame[c].dtype)} for c in names]
    stats, hists = _column_summaries(names, [frame[c] for c in names])
    buf = io.BytesIO()
    try:
        frame.to_parquet(buf, index=False)
    except Exception as exc:
        raise DatasetError(f"Cannot store this DataFrame as Parquet: {exc}") from exc
    return Description(
        fingerprint=digest.hexdigest(), kind="frame", num_rows=len(frame), columns=columns, statistics=stats,
        histograms=hists, payload=buf.getvalue(), format="parquet", targets=target_name,
    )


def _describe_file(path: Path) -> Description:
    if not path.is_file():
        raise DatasetError(f"Cannot log dataset {str(path)!r}: it is not a readable file.")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".parquet", ".pq"):
        pd = _pandas()
        try:
            frame = pd.read_parquet(path) if suffix in (".parquet", ".pq") else pd.read_csv(
                path, sep="\t" if suffix == ".tsv" else ","
            )
        except Exception as exc:
            raise DatasetError(f"Cannot read {path} as {suffix[1:]}: {exc}") from exc
        inner = _describe_frame(frame, None)
        return Description(
            fingerprint=digest.hexdigest(), kind="file", num_rows=inner.num_rows, columns=inner.columns,
            statistics=inner.statistics, histograms=inner.histograms, path=path.resolve(), format=suffix[1:],
        )
    return Description(
        fingerprint=digest.hexdigest(), kind="file", num_rows=0, path=path.resolve(), format=suffix[1:] or "bytes",
        columns=[{"name": "content", "typing": "UNKNOWN"}],
        statistics={"content": {"bytes": path.stat().st_size}},
    )


def _column_summaries(names: list[str], columns: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """count, nulls, mean, std, min, max and a histogram per column (the first MAX_DESCRIBED_COLUMNS)."""
    np, pd = _numpy(), _pandas()
    stats: dict[str, Any] = {}
    hists: dict[str, Any] = {}
    for name, col in list(zip(names, columns))[:MAX_DESCRIBED_COLUMNS]:
        series = col if isinstance(col, pd.Series) else pd.Series(col)
        nulls = int(series.isna().sum())
        values = series.dropna()
        entry: dict[str, Any] = {"count": int(len(values)), "nulls": nulls}
        if series.dtype.kind in "iuf" and len(values):
            v = values.to_numpy(dtype=float)
            finite = v[np.isfinite(v)]
            entry.update(mean=float(v.mean()), std=float(v.std()), min=float(v.min()), max=float(v.max()))
            if len(finite):
                counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
                hists[name] = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
        elif len(values):
            top = values.astype(str).value_counts().head(TOP_CATEGORIES)
            entry["distinct"] = int(values.astype(str).nunique())
            hists[name] = {"labels": [str(k) for k in top.index], "counts": [int(c) for c in top.to_numpy()]}
        stats[name] = entry
    return stats, hists


def _array_summaries(names: list[str], table: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """`_column_summaries` of a 2-D array's columns, vectorized for numeric columns without NaN or inf.

    Per-column pandas work costs ~1 ms a column, which made describing a 64-column array
    (and so every autologged fit) cost ~60 ms; this path gives the same numbers in a few.
    Columns it cannot handle exactly as `_column_summaries` does go through that function.
    """
    np = _numpy()
    k = min(table.shape[1], MAX_DESCRIBED_COLUMNS)
    if table.dtype.kind not in "iuf" or len(table) == 0 or k == 0:
        return _column_summaries(names, [table[:, i] for i in range(table.shape[1])])
    # column-major rows of float64: each reduction runs over contiguous memory, as on a 1-D column
    v = np.ascontiguousarray(table[:, :k].T, dtype=float)
    finite = np.isfinite(v).all(axis=1)
    stats: dict[str, Any] = {}
    hists: dict[str, Any] = {}
    fast = np.flatnonzero(finite)
    if len(fast):
        w = v[fast]
        mean, std, lo, hi = w.mean(axis=1), w.std(axis=1), w.min(axis=1), w.max(axis=1)
        edges, counts = _histograms(w, lo, hi)
        n = w.shape[1]
        for j, col in enumerate(fast):
            name = names[col]
            stats[name] = {"count": n, "nulls": 0, "mean": float(mean[j]), "std": float(std[j]),
                           "min": float(lo[j]), "max": float(hi[j])}
            hists[name] = {"edges": [float(e) for e in edges[j]], "counts": [int(c) for c in counts[j]]}
    slow = [i for i in range(k) if not finite[i]]
    if slow:
        s, h = _column_summaries([names[i] for i in slow], [table[:, i] for i in slow])
        stats.update(s)
        hists.update(h)
    return {n: stats[n] for n in names[:k]}, {n: hists[n] for n in names[:k] if n in hists}


def _histograms(w: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
    """`np.histogram(row, bins=HISTOGRAM_BINS)` of every row of `w` (finite float64), bin for bin."""
    np = _numpy()
    bins = HISTOGRAM_BINS
    first, last = lo.copy(), hi.copy()
    same = first == last
    first[same] -= 0.5
    last[same] += 0.5
    edges = np.linspace(first, last, bins + 1, endpoint=True, axis=1)
    f = (w - first[:, None]) / (last - first)[:, None] * bins
    idx = f.astype(np.intp)
    idx[idx == bins] -= 1
    rows = np.arange(len(w))[:, None]
    idx[w < edges[rows, idx]] -= 1
    idx[(w >= edges[rows, idx + 1]) & (idx != bins - 1)] += 1
    counts = np.bincount((idx + rows * bins).ravel(), minlength=len(w) * bins).reshape(len(w), bins)
    return edges, counts


def _hash_array(digest: Any, label: str, array: Any) -> None:
    digest.update(f"{label}:{array.dtype.str}:{array.shape};".encode())
    if array.dtype.kind == "U" or array.dtype.kind == "S":
        digest.update(array.tobytes())
    else:
        digest.update(memoryview(array).cast("B"))


def _numpy() -> Any:
    import numpy

    return numpy


def _pandas() -> Any:
    import pandas

    return pandas
