"""Model intermediates over HTTP: records and diagnostic queries, as JSON-ready columns.

Intermediates hang off repositories and datasets, not experiments, so a
scoped token reaches none. Captures run where the model is (the client);
the server answers queries, reading or recomputing as the cost model says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import InvalidInputError

if TYPE_CHECKING:
    from mlkeep.intermediates import Intermediates
    from mlkeep.store import Store

MAX_CELLS = 1_000_000  # values per answer: a query returning more should select rows or columns


def intermediates(store: Store, principal: Principal) -> Intermediates:
    """`store.intermediates`, for an unscoped reader."""
    principal.require("read")
    principal.require_unscoped("intermediates")
    return store.intermediates


def values(store: Store, principal: Principal, ref: str, rows: Sequence[int] | None,
           columns: Sequence[int] | None, source: str = "auto") -> dict[str, Any]:
    """Selected rows × columns (at most `MAX_CELLS` values) and how they were answered."""
    inter = intermediates(store, principal)
    info = inter.info(ref)
    cells = (len(rows) if rows is not None else info.n_rows) * (len(columns) if columns is not None else info.n_cols)
    if cells > MAX_CELLS:
        raise InvalidInputError(f"That selects {cells:,} values; select at most {MAX_CELLS:,} with rows or columns.")
    matrix = inter.get(info, rows, columns, source=source)
    return {"values": matrix.tolist(), "source": inter.last_source}


def topk(store: Store, principal: Principal, ref: str, neuron: int, k: int, largest: bool,
         source: str = "auto") -> dict[str, Any]:
    """The `k` examples activating column `neuron` most (or least): parallel rows/values columns."""
    inter = intermediates(store, principal)
    frame = inter.topk(ref, neuron, k, largest=largest, source=source)
    return {"rows": frame["row"].tolist(), "values": frame["value"].tolist(), "source": inter.last_source}


def knn(store: Store, principal: Principal, ref: str, row: int, k: int, metric: str,
        source: str = "auto") -> dict[str, Any]:
    """The `k` examples nearest example `row` in the layer's space."""
    inter = intermediates(store, principal)
    frame = inter.knn(ref, row, k, metric=metric, source=source)
    return {"rows": frame["row"].tolist(), "distances": frame["distance"].tolist(), "source": inter.last_source}


def stats(store: Store, principal: Principal, ref: str, by_targets: bool, columns: Sequence[int] | None,
          source: str = "auto") -> dict[str, Any]:
    """Per class (the dataset's targets) or overall, per column: count, mean, std, sparsity."""
    inter = intermediates(store, principal)
    frame = inter.stats(ref, "targets" if by_targets else None, columns, source=source)
    frame["group"] = frame["group"].astype(str) if by_targets else None
    return {"stats": frame.to_dict("records"), "source": inter.last_source}


def compare(store: Store, principal: Principal, a: str, b: str, method: str,
            source: str = "auto") -> dict[str, Any]:
    """Two layers (e.g. of two model versions) over the same rows: CKA or SVCCA similarity, or per-column
    mean |a − b| (`col_diff`), or per-row distance (`row_diff`)."""
    inter = intermediates(store, principal)
    if method in ("cka", "svcca"):
        return {"method": method, "similarity": inter.similarity(a, b, method, source=source)}
    if method == "col_diff":
        return {"method": method, "values": inter.col_diff(a, b, source=source).tolist()}
    if method == "row_diff":
        return {"method": method, "values": inter.row_diff(a, b, source=source).tolist()}
    raise InvalidInputError(f"Unknown comparison {method!r}; use cka, svcca, col_diff or row_diff.")


def inputs(store: Store, principal: Principal, ref: str, rows: Sequence[int]) -> dict[str, Any]:
    """The dataset rows an intermediate was computed on (to show top-k examples), with one row's shape."""
    import numpy as np

    from mlkeep.intermediates.capture import take_rows
    from mlkeep.intermediates.recompute import load_inputs

    info = intermediates(store, principal).info(ref)
    if len(rows) > 1000:
        raise InvalidInputError("Ask for at most 1,000 input rows at once.")
    bad = [r for r in rows if not 0 <= r < info.n_rows]
    if bad:
        raise InvalidInputError(f"Rows {bad[:5]} are outside the dataset's {info.n_rows} rows.")
    X, y, _ = load_inputs(store.db, store.objects, info.dataset_id)
    try:
        picked = np.asarray(take_rows(X, np.asarray(rows, dtype=np.int64)), dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError("This intermediate's inputs are not numeric, so they cannot be shown.") from None
    labels = None if y is None else [str(v) for v in np.asarray(y)[np.asarray(rows, dtype=np.int64)]]
    return {"rows": list(rows), "shape": list(picked.shape[1:]), "inputs": picked.reshape(len(rows), -1).tolist(),
            "targets": labels}
