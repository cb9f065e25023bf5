"""Writing sampled served requests as Predictions, away from the process that answers requests.

Logging one request (a Dataset of its inputs, a Prediction of its outputs,
their objects and rows) costs several times what answering it does; in a
thread of the server it would hold the GIL that answers need. So when the
store can be opened again from another process (a folder or a database
server, not `memory://`), a writer process does it and the server only
hands over the arrays through a bounded queue; otherwise a thread does. The
writer process runs at a lower CPU priority: on a busy machine it yields to
the answers and catches up in idle time, and past `MAX_QUEUED` waiting
requests samples are dropped (counted in `dropped`). Each Prediction is
written under the id announced to the client, so labels can be logged
against it as soon as it is written (`flush` waits for that).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlkeep.location import Location
    from mlkeep.store import Store

log = logging.getLogger(__name__)
MAX_QUEUED = 10_000
WRITER_NICENESS = 10

# one sampled request: (prediction id, registered name, version, model id, inputs, outputs)
Item = tuple[str, str, int, str, Any, list[Any]]
WRITTEN, FAILED = 0, 1


class PredictionLog:
    """A bounded queue of sampled requests and the writer draining it (a process, or a thread)."""

    def __init__(self, store: Store) -> None:
        loc = store.location
        self.in_process = loc.database == "sqlite://" or loc.objects.startswith("memory://")
        self.submitted = 0
        self.dropped = 0
        self._writer: Any
        if self.in_process:
            self._queue: Any = queue.Queue(MAX_QUEUED)
            self._counts: Any = [0, 0]
            self._writer = threading.Thread(target=_drain, args=(store, self._queue, self._counts), daemon=True,
                                            name="mlkeep-prediction-log")
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # no forked copy of the server's threads and sockets
            self._queue = ctx.Queue(MAX_QUEUED)
            self._counts = ctx.Array("q", 2)
            self._writer = ctx.Process(target=_writer_process, args=(loc, self._queue, self._counts), daemon=True,
                                       name="mlkeep-prediction-log")
        self._writer.start()

    @property
    def logged(self) -> int:
        """Requests written so far."""
        return int(self._counts[WRITTEN])

    def submit(self, item: Item) -> bool:
        """Queue one request; False (and counted in `dropped`) when the writer is `MAX_QUEUED` behind."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        self.submitted += 1
        return True

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every request queued so far is written (or failed to be), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while self._counts[WRITTEN] + self._counts[FAILED] < self.submitted and time.monotonic() < deadline:
            time.sleep(0.01)


    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer (a server calls this when it shuts down)."""
        if not self._writer.is_alive():
            return
        self.flush(timeout)
        self._queue.put(None)
        self._writer.join(5)
        if hasattr(self._writer, "terminate") and self._writer.is_alive():
            self._writer.terminate()


def _writer_process(loc: Location, items: Any, counts: Any) -> None:
    import os

    from mlkeep.store import Store

    try:  # when CPU is short, answers come first: the writer catches up in idle time, or drops samples
        os.nice(WRITER_NICENESS)
    except (AttributeError, OSError):
        pass
    with Store(loc) as store:
        _drain(store, items, counts)


def _drain(store: Store, items: Any, counts: Any) -> None:
    lock = counts.get_lock() if hasattr(counts, "get_lock") else threading.Lock()
    while True:
        item = items.get()
        if item is None:
            return
        outcome = WRITTEN
        try:
            write(store, *item)
        except Exception:  # logging must never break serving
            log.exception("could not log served prediction %s", item[0])
            outcome = FAILED
        with lock:
            counts[outcome] += 1


def write(store: Store, prediction_id: str, name: str, version: int, model_id: str, inputs: Any,
          outputs: list[Any]) -> None:
    """Store one request: its inputs as a Dataset, its outputs as the Prediction `prediction_id`.

    An all-numeric request's inputs come as an array (columns in the schema's
    order): describing an array is vectorized, a frame costs ~1 ms a column.
    """
    from mlkeep.ids import now_ms
    from mlkeep.lifecycle.predicting import output_frame
    from mlkeep.tracking.datasets import log_dataset
    from mlkeep.tracking.describe import typing_of
    from mlkeep.tracking.entities import Prediction
    from mlkeep.tracking.predictions import insert_prediction

    db, objects = store.db, store.objects
    ds = log_dataset(db, objects, inputs, name=f"{name}-served")
    values = output_frame(outputs)
    buf = io.BytesIO()
    values.to_parquet(buf, index=False)
    prediction = Prediction(
        id=prediction_id, model_id=model_id, dataset_id=ds.id, creation_time=now_ms(),
        name=f"{name}/{version} served", object=objects.put_bytes(buf.getvalue()), num_rows=len(values),
        columns=[{"name": c, "typing": typing_of(values[c].dtype)} for c in values.columns],
    )
    with db.begin() as conn:
        insert_prediction(conn, prediction)
