"""Snapshots: what the training thread hands to the background recorder.

The recorder works after `fit` has returned, while the caller may already refit
the same estimator (`set_params(...).fit(...)` in a loop) or change its data in
place. So the training thread copies what the records are made of, as cheaply as
that can be done: an estimator is pickled with protocol 5 and its numpy arrays
kept out of band (one `memcpy` each, no pickle framing around megabytes of tree
nodes), and data arrays are copied. The recorder works on the clone the snapshot
loads, and stores the snapshot itself as the model's blob, so what
`mlkeep.load_model` gives back is exactly what was scored and described.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any


class ModelSnapshot:
    """An estimator frozen at one moment; `load()` gives an independent, equivalent object."""

    __slots__ = ("_stream", "_buffers")

    def __init__(self, estimator: Any) -> None:
        """Pickle `estimator` now; raises whatever pickle raises for an object it cannot serialize."""
        views: list[pickle.PickleBuffer] = []
        self._stream = pickle.dumps(estimator, protocol=5, buffer_callback=views.append)
        self._buffers = _copied([view.raw() for view in views])

    def payload(self) -> bytes:
        """The snapshot as a model blob `mlkeep.load_model` reads (no second pickling)."""
        from mlkeep.tracking.models import pack_pickle5

        return pack_pickle5(self._stream, self._buffers)

    def load(self) -> Any:
        """The estimator as it was when the snapshot was taken (arrays share the snapshot's memory)."""
        return pickle.loads(self._stream, buffers=self._buffers)  # noqa: S301 - our own pickle of a moment ago


def _copied(views: list[memoryview]) -> list[memoryview]:
    """Copies of `views` in one writable block.

    Copied because the estimator's arrays may change once `fit` has returned;
    writable because the clone's arrays must behave as the original's did. One
    block and slice assignment: `bytearray(view)` per buffer is ten times slower.
    """
    block = memoryview(bytearray(sum(v.nbytes for v in views)))
    out, offset = [], 0
    for view in views:
        end = offset + view.nbytes
        block[offset:end] = view
        out.append(block[offset:end])
        offset = end
    return out


def frozen_copy(value: Any) -> Any:
    """A copy of data that later in-place changes by the caller cannot reach.

    numpy arrays, pandas frames (deep by default) and scipy sparse matrices copy
    themselves; lists and tuples are copied deeply; other values are returned
    as they are (strings, paths and other immutable inputs).
    """
    if value is None or isinstance(value, (str, bytes, int, float)):
        return value
    if isinstance(value, (list, tuple, dict)):
        return copy.deepcopy(value)
    copier = getattr(value, "copy", None)
    return copier() if callable(copier) else value
