"""`ActiveRun`: the handle a training script logs through.

Used as a context manager, a run ends FINISHED, or FAILED with the traceback
kept when the block raises. Runs started while another is active in the same
thread become its children (nested runs), so a hyperparameter search reads as
one parent with a child per candidate.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlkeep.metadata import Database
from mlkeep.objects import ObjectStore
from mlkeep.tracking import artifacts, pending, runs
from mlkeep.tracking.entities import Artifact, Run, RunStatus
from mlkeep.tracking.metrics import MetricBuffer
from mlkeep.tracking.run_scope import RunScope

if TYPE_CHECKING:
    from mlkeep.tracking.entities import Dataset, Evaluation, Model, Prediction

def active_run() -> ActiveRun | None:
    """The innermost run started in this thread and not yet ended."""
    return ActiveRun.current()


class ActiveRun(RunScope):
    """A RUNNING run; every `log_*` writes to the store (metrics through a buffer)."""

    _threads = threading.local()

    def __init__(self, db: Database, objects: ObjectStore, run_id: str) -> None:
        self.db = db
        self.objects = objects
        self.id = run_id
        self._metrics = MetricBuffer(db, run_id)
        self._ended = False

    @classmethod
    def start(
        cls,
        db: Database,
        objects: ObjectStore,
        *,
        experiment: str,
        name: str | None = None,
        parent: ActiveRun | str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ActiveRun:
        if parent is None:
            parent = active_run()
        parent_id = parent.id if isinstance(parent, ActiveRun) else parent
        from mlkeep.tracking.environment import capture_environment

        run_id = runs.create_run(
            db, experiment, name, parent_run_id=parent_id, tags_=tags, environment=capture_environment(objects)
        )
        return cls(db, objects, run_id)

    # -- params, tags, metrics -------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Record an input of the run; `ParamConflictError` if it had another value."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._check_open()
        runs.log_params(self.db, self.id, params)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open()
        runs.set_tags(self.db, self.id, tags)

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        """Append a point to a series; `step` defaults to one past the last step of `key`.

        Buffered: durable after `flush()`, at the end of the run, or within a second.
        """
        self._check_open()
        self._metrics.add(key, value, step, timestamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        """Log several metrics at one step; all are checked before any is kept."""
        self._check_open()
        self._metrics.add_many(metrics, step, timestamp)

    def flush(self) -> None:
        """Write buffered metrics (and records autologging queued) now; then they survive a killed process."""
        pending.settle()
        self._metrics.flush()

    # -- artifacts ---------------------------------------------------------------
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> list[Artifact]:
        """Store a file, or a folder recursively, under `artifact_path` in the run."""
        self._check_open()
        return artifacts.log_artifact(self.db, self.objects, self.id, path, artifact_path)

    # -- entities of the schema ----------------------------------------------------
    def log_dataset(
        self,
        data: Any,
        name: str | None = None,
        *,
        targets: Any = None,
        derived_from: Dataset | str | None = None,
        context: str = "input",
    ) -> Dataset:
        """Fingerprint, describe and store `data` (array, frame or file) and link it to this run."""
        from mlkeep.tracking import datasets

        self._check_open()
        return datasets.log_dataset(
            self.db, self.objects, data, name=name, targets=targets, derived_from=derived_from,
            run_id=self.id, context=context,
        )

    def log_model(self, model: Any, name: str | None = None, *, trained_on: Dataset | str | None = None) -> Model:
        """Describe and store a fitted model; `mlkeep.load_model(model.id)` gives it back."""
        from mlkeep.tracking import models

        self._check_open()
        return models.log_model(self.db, self.objects, model, name=name, trained_on=trained_on, run_id=self.id)

    def log_predictions(
        self, model: Model | str, dataset: Dataset | str | Any, predictions: Any, name: str | None = None
    ) -> Prediction:
        """Store predictions (as Parquet) computed by `model` on `dataset`."""
        from mlkeep.tracking import predictions as preds

        self._check_open()
        return preds.log_predictions(self.db, self.objects, model, dataset, predictions, name=name, run_id=self.id)

    def log_evaluation(
        self,
        model: Model | str,
        dataset: Dataset | str | Any,
        scores: Mapping[str, float],
        *,
        confusion_matrix: Any = None,
        class_labels: list[Any] | None = None,
        prediction: Prediction | str | None = None,
        name: str | None = None,
    ) -> Evaluation:
        """Record scores (and a confusion matrix) of `model` on `dataset`."""
        from mlkeep.tracking import predictions as preds

        self._check_open()
        return preds.log_evaluation(
            self.db, self.objects, model, dataset, scores, confusion_matrix=confusion_matrix,
            class_labels=class_labels, prediction=prediction, name=name, run_id=self.id,
        )

    # -- lifecycle -------------------------------------------------------------------
    def start_run(self, name: str | None = None, **kwargs: Any) -> ActiveRun:
        """A child run of this one, in the same experiment."""
        experiment = self.info.experiment
        return ActiveRun.start(self.db, self.objects, experiment=experiment, name=name, parent=self, **kwargs)

    @property
    def info(self) -> Run:
        """The run as stored now (buffered metrics are flushed first)."""
        self.flush()
        return runs.get_run(self.db, self.id)

    def end(self, status: str = RunStatus.FINISHED, failure: str | None = None) -> None:
        """Flush and mark the run ended; ending twice is a no-op."""
        if self._ended:
            return
        pending.settle()  # what autologging queued for runs is written before a run reads as ended
        runs.end_run(self.db, self.id, status, failure, metrics=self._metrics)  # one transaction
        self._ended = True
        self._leave()

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id}>"
