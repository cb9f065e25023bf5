"""`RemoteIntermediates`: the diagnostic queries of `Intermediates`, answered by a server.

Capturing runs the model, so it happens where the model is (a local store);
a remote store lists intermediates and queries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

if TYPE_CHECKING:
    from mlkeep.client._store import RemoteStore
    from mlkeep.intermediates.entities import Intermediate


class RemoteIntermediates:
    """Intermediates on a server: `remote_store.intermediates`. Queries take an Intermediate, id, prefix or name."""

    def __init__(self, store: RemoteStore) -> None:
        self.http = store.http
        self.last_source: str | None = None  # "read" or "rerun": how the server answered the latest query

    def _query(self, ref: Intermediate | str, what: str, **params: Any) -> Any:
        answer = self.http.get(f"/intermediates/{quote(_ref(ref), safe='')}/{what}", **params)
        self.last_source = answer.get("source", self.last_source)
        return answer

    def info(self, intermediate: Intermediate | str) -> Intermediate:
        return _entity(self.http.get(f"/intermediates/{quote(_ref(intermediate), safe='')}"))

    def list(self, *, capture_id: str | None = None, commit_id: str | None = None, layer: str | None = None,
             dataset_id: str | None = None, repository: str | None = None) -> list[Intermediate]:
        """Intermediates matching every given filter, oldest first."""
        found = self.http.get("/intermediates", capture_id=capture_id, commit_id=commit_id, layer=layer,
                              dataset_id=dataset_id, repository=repository)
        return [_entity(i) for i in found]

    def get(self, intermediate: Intermediate | str, rows: Any = None, columns: Any = None, *,
            source: str = "auto") -> np.ndarray:
        """Values of the selected rows and columns, rows × columns float32."""
        answer = self._query(intermediate, "values", rows=_ids(rows), columns=_ids(columns), source=source)
        return np.asarray(answer["values"], dtype=np.float32)

    def topk(self, intermediate: Intermediate | str, neuron: int, k: int = 10, *, largest: bool = True,
             source: str = "auto") -> Any:
        """The `k` examples that activate column `neuron` most: DataFrame (row, value), highest first."""
        import pandas as pd

        a = self._query(intermediate, "topk", neuron=neuron, k=k, largest=largest, source=source)
        return pd.DataFrame({"row": np.asarray(a["rows"], dtype=np.int64),
                             "value": np.asarray(a["values"], dtype=np.float32)})

    def knn(self, intermediate: Intermediate | str, row: int, k: int = 10, *, metric: str = "euclidean",
            source: str = "auto") -> Any:
        """The `k` examples nearest example `row` in this layer's space: DataFrame (row, distance)."""
        import pandas as pd

        a = self._query(intermediate, "knn", row=row, k=k, metric=metric, source=source)
        return pd.DataFrame({"row": np.asarray(a["rows"], dtype=np.int64),
                             "distance": np.asarray(a["distances"], dtype=np.float64)})

    def stats(self, intermediate: Intermediate | str, group_by: str | None = "targets", columns: Any = None, *,
              source: str = "auto") -> Any:
        """Per class of the dataset's targets (`group_by="targets"`) or overall (None), per column: a DataFrame.

        Group labels arrive as text (JSON cannot say what type they were)."""
        import pandas as pd

        from mlkeep.errors import InvalidInputError

        if group_by not in ("targets", None):
            raise InvalidInputError("A remote store groups by the dataset's targets or not at all (group_by=None).")
        a = self._query(intermediate, "stats", by_targets=group_by == "targets", columns=_ids(columns),
                        source=source)
        return pd.DataFrame(a["stats"], columns=["group", "column", "count", "mean", "std", "sparsity"])

    def col_diff(self, a: Intermediate | str, b: Intermediate | str, *, source: str = "auto") -> np.ndarray:
        """Per column, mean |a − b| between two intermediates of the same rows and columns."""
        return np.asarray(self._compare(a, b, "col_diff", source)["values"], dtype=np.float64)

    def row_diff(self, a: Intermediate | str, b: Intermediate | str, *, source: str = "auto") -> np.ndarray:
        """Per row, the Euclidean distance between the two intermediates' representations of it."""
        return np.asarray(self._compare(a, b, "row_diff", source)["values"], dtype=np.float64)

    def similarity(self, a: Intermediate | str, b: Intermediate | str, method: str = "cka", *,
                   source: str = "auto") -> float:
        """How alike two representations of the same rows are: linear CKA or SVCCA (0..1)."""
        return float(self._compare(a, b, method, source)["similarity"])

    def _compare(self, a: Intermediate | str, b: Intermediate | str, method: str, source: str) -> Any:
        return self.http.get("/intermediates/compare", a=_ref(a), b=_ref(b), method=method, source=source)


def _ref(ref: Intermediate | str) -> str:
    return ref if isinstance(ref, str) else ref.id


def _ids(idx: Any) -> list[int] | None:
    if idx is None:
        return None
    arr = np.atleast_1d(np.asarray(idx))
    if arr.dtype.kind == "b":
        arr = np.flatnonzero(arr)
    return [int(i) for i in arr]


def _entity(d: dict[str, Any]) -> Intermediate:
    from mlkeep.intermediates.entities import Intermediate  # the package loads only when needed

    return Intermediate.from_dict({**d, "row_shape": tuple(d.get("row_shape", ()))})
