"""`RemoteRun`: the run handle of a remote store, with `ActiveRun`'s methods and promises.

Metrics are buffered as locally and sent in batches, one HTTP request per
flush: on `flush()`, at the end of the run, at interpreter exit, and otherwise
within a second. Params, tags and entities are one request each, written
before the call returns.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import logging
import math
import os
import posixpath
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.tracking.entities import Artifact, Dataset, Evaluation, Model, Prediction, Run, RunStatus
from mlkeep.tracking.run_scope import RunScope

if TYPE_CHECKING:
    from mlkeep.client._store import RemoteStore

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
MAX_BATCH = 50_000
def active_remote_run() -> RemoteRun | None:
    """The innermost remote run entered in this thread and not yet ended."""
    return RemoteRun.current()


class RemoteRun(RunScope):
    """A RUNNING run on a server; use it as a context manager to end it FINISHED, FAILED or KILLED."""

    _threads = threading.local()

    def __init__(self, store: RemoteStore, run: Run) -> None:
        self.store = store
        self.id = run.id
        self._experiment = run.experiment
        self._rows: list[list[Any]] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._ended = False
        _flusher.register(self)

    # -- params, tags, metrics -------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Record an input of the run; `ParamConflictError` if it had another value."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlkeep.tracking.values import param_value

        self._check_open()
        self.store.http.post(f"/runs/{self.id}/params", {"values": {k: param_value(v) for k, v in params.items()}})

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open()
        self.store.http.post(f"/runs/{self.id}/tags", {"values": {k: str(v) for k, v in tags.items()}})

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        """Append a point to a series (buffered; sent within a second, on `flush()` or at the end)."""
        self.log_metrics({key: value}, step, timestamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        """Log several metrics at one step; all are checked before any is kept."""
        from mlkeep.tracking.metrics import _integer, _timestamp
        from mlkeep.tracking.values import check_key, metric_value

        self._check_open()
        if step is not None and type(step) is not int:
            step = _integer("", "step", step)
        timestamp = time.time_ns() // 1_000_000 if timestamp is None else _timestamp("", timestamp)
        checked: list[tuple[str, float | None]] = []
        for key, value in metrics.items():
            v = metric_value(check_key("metric", key), value)
            if v in (float("inf"), float("-inf")):
                from mlkeep.errors import InvalidMetricError

                raise InvalidMetricError(f"Metric {key!r} must be finite or NaN, not {value!r}.")
            checked.append((key, None if math.isnan(v) else v))
        with self._lock:
            for key, sent in checked:
                s = self._steps.get(key, -1) + 1 if step is None else step
                self._steps[key] = max(s, self._steps.get(key, -1))
                self._rows.append([key, sent, s, timestamp])
            full = len(self._rows) >= MAX_BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics now; when this returns they are on the server's disk."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            try:
                for i in range(0, len(rows), MAX_BATCH):
                    self.store.http.post(f"/runs/{self.id}/metrics", {"points": rows[i:i + MAX_BATCH]})
            except BaseException:
                with self._lock:
                    self._rows[:0] = rows
                raise

    # -- artifacts ---------------------------------------------------------------
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> list[Artifact]:
        """Upload a file, or a folder recursively, under `artifact_path` in the run (streamed)."""
        from mlkeep.tracking.artifacts import safe_relpath

        self._check_open()
        src = Path(path)
        if not src.exists():
            raise NotFoundError(f"Cannot log artifact {str(src)!r}: no such file or folder.")
        prefix = safe_relpath(artifact_path or "")
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file())
            names = [safe_relpath(posixpath.join(prefix, src.name if not prefix else "",
                                                 p.relative_to(src).as_posix()).lstrip("/")) for p in files]
        else:
            files, names = [src], [posixpath.join(prefix, src.name) if prefix else src.name]
        out: list[Artifact] = []
        for file, name in zip(files, names):
            out += [Artifact(**a) for a in self.store.http.upload(f"/runs/{self.id}/artifacts/{name}", file)]
        return out

    # -- entities of the schema ----------------------------------------------------
    def log_dataset(self, data: Any, name: str | None = None, *, targets: Any = None,
                    derived_from: Dataset | str | None = None, context: str = "input") -> Dataset:
        """Describe `data` here, upload its content, and record it on the server linked to this run."""
        from mlkeep.tracking.describe import describe

        self._check_open()
        if isinstance(data, Dataset):
            body: dict[str, Any] = {"dataset_id": data.id, "context": context}
        else:
            desc = describe(data, targets)
            oid = self.store.put_object(desc.payload if desc.payload is not None else desc.path)  # type: ignore[arg-type]
            description = {k: getattr(desc, k) for k in ("fingerprint", "kind", "num_rows", "columns", "statistics",
                                                          "histograms", "format", "targets")}
            description["path"] = str(desc.path.resolve()) if desc.path else None
            parent = derived_from.id if isinstance(derived_from, Dataset) else derived_from
            body = {"object": oid, "description": description, "name": name, "derived_from": parent,
                    "context": context}
        return Dataset.from_dict(self.store.http.post(f"/runs/{self.id}/datasets", body))

    def log_model(self, model: Any, name: str | None = None, *, trained_on: Dataset | str | None = None) -> Model:
        """Describe and serialize a fitted model here, upload it, and record it on the server."""
        from mlkeep.ids import new_id
        from mlkeep.tracking import describe_model, models

        self._check_open()
        if model is None or isinstance(model, (str, bytes, int, float)):
            raise InvalidInputError(f"log_model needs a fitted model object, not {model!r}.")
        dataset = self.store.get_dataset(trained_on) if isinstance(trained_on, str) else trained_on
        flavor, payload = models.serialize(model)
        oid = self.store.put_object(payload)
        entity = describe_model.describe(model, model_id=new_id(), name=name, flavor=flavor, object_id=oid,
                                         run_id=self.id, dataset=dataset)
        return Model.from_dict(self.store.http.post(f"/runs/{self.id}/models", {"model": entity.to_dict()}))

    def log_predictions(self, model: Model | str, dataset: Dataset | str | Any, predictions: Any,
                        name: str | None = None) -> Prediction:
        """Upload predictions (as Parquet) computed by `model` on `dataset`."""
        from mlkeep.tracking.predictions import _as_frame

        self._check_open()
        ds = self._dataset(dataset)
        buf = io.BytesIO()
        _as_frame(predictions).to_parquet(buf, index=False)
        body = {"model_id": _id(model), "dataset_id": ds.id, "object": self.store.put_object(buf.getvalue()),
                "name": name}
        return Prediction.from_dict(self.store.http.post(f"/runs/{self.id}/predictions", body))

    def log_evaluation(self, model: Model | str, dataset: Dataset | str | Any, scores: Mapping[str, float], *,
                       confusion_matrix: Any = None, class_labels: list[Any] | None = None,
                       prediction: Prediction | str | None = None, name: str | None = None) -> Evaluation:
        """Record scores (and a confusion matrix) of `model` on `dataset`."""
        import numpy as np

        self._check_open()
        ds = self._dataset(dataset)
        body = {
            "model_id": _id(model), "dataset_id": ds.id, "scores": {str(k): float(v) for k, v in scores.items()},
            "confusion_matrix": None if confusion_matrix is None else np.asarray(confusion_matrix).tolist(),
            "class_labels": None if class_labels is None else [str(c) for c in class_labels],
            "prediction_id": _id(prediction) if prediction is not None else None, "name": name,
        }
        return Evaluation.from_dict(self.store.http.post(f"/runs/{self.id}/evaluations", body))

    def _dataset(self, ref: Dataset | str | Any) -> Dataset:
        if isinstance(ref, Dataset):
            return ref
        if isinstance(ref, str):
            try:
                return self.store.get_dataset(ref)
            except NotFoundError:
                pass
        return self.log_dataset(ref)

    # -- lifecycle -------------------------------------------------------------------
    def start_run(self, name: str | None = None, **kwargs: Any) -> RemoteRun:
        """A child run of this one, in the same experiment."""
        return self.store.start_run(self._experiment, name, parent=self, **kwargs)

    @property
    def info(self) -> Run:
        """The run as stored now (buffered metrics are sent first)."""
        self.flush()
        return self.store.get_run(self.id)

    def end(self, status: str = RunStatus.FINISHED, failure: str | None = None) -> None:
        """Send the last metrics and mark the run ended; ending twice is a no-op."""
        if self._ended:
            return
        self.flush()
        self.store.http.post(f"/runs/{self.id}/end", {"status": status, "failure": failure})
        self._ended = True
        _flusher.unregister(self)
        self._leave()

    def __repr__(self) -> str:
        return f"<RemoteRun {self.id} at {self.store.uri}>"


def _id(entity: Any) -> str:
    return entity if isinstance(entity, str) else entity.id


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Flusher:
    """One daemon thread per process sending every live run's buffered metrics."""

    def __init__(self) -> None:
        self._runs: weakref.WeakSet[RemoteRun] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        atexit.register(self.flush_all)

    def register(self, run: RemoteRun) -> None:
        with self._lock:
            self._runs.add(run)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="mlkeep-remote-flusher", daemon=True)
                self._thread.start()

    def unregister(self, run: RemoteRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def flush_all(self) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            try:
                run.flush()
            except Exception:  # keep the values buffered; the next flush retries
                log.exception("mlkeep could not send metrics of run %s", run.id)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush_all()


_flusher = _Flusher()
