"""True labels that arrive after a prediction: `store.log_labels(prediction_id, labels)`.

Labels are stored as a Dataset (content-addressed, so an identical set is
stored once) linked to the Prediction by a `labels` edge in the lineage
graph. No table of their own: lineage shows them, `gc` keeps them as it
keeps every dataset, and re-logging (a correction) swaps the edge in one
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.metadata.tables import links
from mlkeep.tracking.entities import Dataset
from mlkeep.tracking.lineage import add_links

if TYPE_CHECKING:
    from mlkeep.store import Store

RELATION = "labels"
COLUMN = "label"


def log_labels(store: Store, prediction_id: str, labels: Any, *, wait: float = 5.0) -> Dataset:
    """Record the true `labels` of a logged Prediction, one per predicted row; replaces earlier ones.

    A served request's Prediction is written just after its answer, by the
    server's writer: an id not found yet is looked for again for up to
    `wait` seconds. Raises `NotFoundError` for an unknown prediction and
    `InvalidInputError` when the labels are not one value per row of it.
    """
    import numpy as np
    import pandas as pd

    from mlkeep.tracking.datasets import log_dataset

    prediction = _prediction(store, prediction_id, wait)
    values = np.asarray(labels.to_numpy() if isinstance(labels, (pd.Series, pd.DataFrame)) else labels)
    if values.ndim == 0:
        values = values.reshape(1)
    if values.ndim != 1 or values.dtype.kind not in "biufUS":
        raise InvalidInputError(f"Labels are one number or string per predicted row, not an array of shape "
                                f"{values.shape} and dtype {values.dtype}.")
    if len(values) != prediction.num_rows:
        raise InvalidInputError(f"Prediction {prediction_id} has {prediction.num_rows} rows; {len(values)} labels "
                                "were given.")
    dataset = log_dataset(store.db, store.objects, pd.DataFrame({COLUMN: values}), name="labels")
    with store.db.begin() as conn:
        conn.execute(links.delete().where(links.c.dst_id == prediction_id, links.c.relation == RELATION))
        add_links(conn, [(dataset.id, "dataset", prediction_id, "prediction", RELATION)])
    return dataset


def _prediction(store: Store, prediction_id: str, wait: float) -> Any:
    from mlkeep.tracking.predictions import get_prediction

    deadline = time.monotonic() + wait
    while True:
        try:
            return get_prediction(store.db, prediction_id)
        except NotFoundError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def labels_of(store: Store, prediction_ids: Sequence[str]) -> dict[str, Any]:
    """The labels (a 1-D array) of each of `prediction_ids` that has some."""
    from mlkeep.tracking.datasets import load_dataset

    found: dict[str, str] = {}
    with store.db.connect() as conn:
        for start in range(0, len(prediction_ids), 500):  # bounded IN lists
            chunk = list(prediction_ids[start:start + 500])
            found.update((r.dst_id, r.src_id) for r in conn.execute(select(links.c.dst_id, links.c.src_id).where(
                links.c.dst_id.in_(chunk), links.c.relation == RELATION)))
    return {pid: load_dataset(store.db, store.objects, ds_id)[COLUMN].to_numpy() for pid, ds_id in found.items()}
