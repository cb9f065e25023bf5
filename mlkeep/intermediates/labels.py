"""Group labels for per-class queries: a dataset's targets kept as one small object of their own.

`stats(..., group_by="targets")` needs each row's class. Its answer comes
from a few KB of codes, so loading the whole dataset (every input, verified)
just to learn the classes would cost more than the statistic itself. A
capture therefore stores the targets once as a `.npy` object (content
addressed: every capture over the same dataset names the same object) and
each intermediate's document names it under `labels`. The object is read
back verified like any other; an intermediate recorded without one (or
whose object is gone) falls back to its dataset.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError, NotFoundError
from mlkeep.intermediates import recompute
from mlkeep.metadata import Database
from mlkeep.objects import ObjectStore

KEY = "labels"  # the document field naming the object


def put(objects: ObjectStore, targets: Any) -> str | None:
    """Store `targets` (one label per row) as an object; its id, or None when there are none or they
    are not plain numbers or strings (an object array would need pickle to be read back)."""
    if targets is None:
        return None
    arr = np.asarray(targets)
    if arr.dtype.hasobject or arr.ndim != 1:
        return None
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return objects.put_bytes(buf.getvalue())


def load(db: Database, objects: ObjectStore, document: dict[str, Any], dataset_id: str) -> np.ndarray | None:
    """The targets of an intermediate's rows: from its labels object when it names one, else from its
    dataset (`DatasetUnavailableError` when that is gone). None when the dataset has no targets."""
    oid = document.get(KEY)
    if isinstance(oid, str):
        try:
            return np.load(io.BytesIO(objects.get_bytes(oid)), allow_pickle=False)  # type: ignore[no-any-return]
        except (NotFoundError, CorruptObjectError, ValueError):
            pass  # collected or damaged: the dataset still knows
    y = recompute.load_inputs(db, objects, dataset_id)[1]
    return None if y is None else np.asarray(y)
