"""`Store`: one mlkeep installation, the object every API call starts from.

A thin facade: each method is one call into the layer that does the work
(tracking today; versioning, intermediates and lifecycle as they land), so the
CLI and the server can wrap the same calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep import location
from mlkeep.metadata import Database
from mlkeep.objects import ObjectStore
from mlkeep.tracking import artifacts, experiments, lineage, metrics, runs
from mlkeep.tracking.active_run import ActiveRun
from mlkeep.tracking.entities import (
    Artifact,
    Dataset,
    Evaluation,
    Experiment,
    Metric,
    Model,
    Prediction,
    Run,
)
from mlkeep.tracking.experiments import DEFAULT_EXPERIMENT

if TYPE_CHECKING:
    from mlkeep.fsck import FsckReport
    from mlkeep.gc import GcReport
    from mlkeep.intermediates import Intermediates
    from mlkeep.lifecycle import Registry
    from mlkeep.tensors import TensorStore
    from mlkeep.tracking.environment import EnvironmentDiff
    from mlkeep.versioning import Repository


class Store:
    """A metadata database plus an object store."""

    def __init__(self, loc: location.Location) -> None:
        self.location = loc
        self.db = Database(loc.database)
        self.db.ensure_schema()
        self.objects = ObjectStore.from_url(loc.objects)
        self._tensors: TensorStore | None = None

    @property
    def uri(self) -> str:
        return self.location.uri

    def close(self) -> None:
        if self._tensors is not None:
            self._tensors.close()
        self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mlkeep.Store {self.uri}>"

    # -- experiments and runs ----------------------------------------------------
    def create_experiment(self, name: str, description: str | None = None, *,
                          tags: Mapping[str, Any] | None = None) -> Experiment:
        return experiments.create_experiment(self.db, name, description, tags=tags)

    def get_experiment(self, name_or_id: str) -> Experiment:
        return experiments.get_experiment(self.db, name_or_id)

    def set_experiment_tags(self, name_or_id: str, tags: Mapping[str, Any]) -> Experiment:
        """Set (or overwrite) tags of an experiment; returns it with every tag."""
        return experiments.set_experiment_tags(self.db, name_or_id, tags)

    def delete_experiment_tag(self, name_or_id: str, key: str) -> None:
        """Remove one tag of an experiment; `NotFoundError` if it has no such tag."""
        experiments.delete_experiment_tag(self.db, name_or_id, key)

    def list_experiments(self) -> list[Experiment]:
        return experiments.list_experiments(self.db)

    def start_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        *,
        parent: ActiveRun | str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ActiveRun:
        """Start a RUNNING run; use it as a context manager to end it FINISHED or FAILED."""
        return ActiveRun.start(self.db, self.objects, experiment=experiment, name=name, parent=parent, tags=tags)

    def get_run(self, run_id: str) -> Run:
        return runs.get_run(self.db, run_id)

    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        return runs.get_runs(self.db, run_ids)

    def delete_run(self, run_id: str) -> None:
        """Hide a run from search; nothing is removed until retention and `gc` say so."""
        runs.delete_run(self.db, run_id)

    def restore_run(self, run_id: str) -> None:
        runs.restore_run(self.db, run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return metrics.get_metric_history(self.db, run_id, key)

    def search_runs(
        self,
        filter: str = "",
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
        experiments: Sequence[str] | None = None,
        stage: str | None = "active",
    ) -> list[Run]:
        """Runs matching a filter such as `metrics.acc > 0.9 and params.model = 'rf'` (from `offset` on, for paging).

        Compiled to one SQL query; raises `FilterSyntaxError` with the position of a mistake. Deleted
        runs are hidden unless `stage="deleted"` (only them) or `stage=None` (every run).
        """
        from mlkeep.tracking import search

        return search.search_runs(self.db, filter, order_by=order_by, limit=limit, offset=offset,
                                  experiments=experiments, stage=stage)

    def diff_environments(self, run_a: str, run_b: str) -> EnvironmentDiff:
        """What differs between two runs' environments (packages, git, code, platform, env vars)."""
        from mlkeep.tracking.environment import diff_environments

        return diff_environments(self.db, self.objects, run_a, run_b)

    # -- artifacts -------------------------------------------------------------------
    def list_artifacts(self, run_id: str, path: str = "") -> list[Artifact]:
        return artifacts.list_artifacts(self.db, run_id, path)

    def download_artifacts(self, run_id: str, dest: str | os.PathLike[str], path: str = "") -> list[Path]:
        return artifacts.download_artifacts(self.db, self.objects, run_id, dest, path)

    # -- entities of the schema ----------------------------------------------------------
    def get_dataset(self, dataset_id: str) -> Dataset:
        from mlkeep.tracking import datasets

        return datasets.get_dataset(self.db, dataset_id)

    def list_datasets(self, name: str | None = None) -> list[Dataset]:
        from mlkeep.tracking import datasets

        return datasets.list_datasets(self.db, name)

    def load_dataset(self, dataset_id: str) -> Any:
        """The stored content of a dataset (array, frame or file bytes), verified."""
        from mlkeep.tracking import datasets

        return datasets.load_dataset(self.db, self.objects, dataset_id)

    def get_model(self, model_id: str) -> Model:
        from mlkeep.tracking import models

        return models.get_model(self.db, model_id)

    def list_models(self, run_id: str | None = None) -> list[Model]:
        from mlkeep.tracking import models

        return models.list_models(self.db, run_id)

    def load_model(self, model_id: str) -> Any:
        """The fitted model object stored under `model_id` (verified against its hash).

        `models:/NAME@ALIAS` and `models:/NAME/VERSION` resolve through the registry.
        """
        from mlkeep.tracking import models

        if model_id.startswith("models:/"):
            return self.registry.load(model_id)
        return models.load_model(self.db, self.objects, model_id)

    def get_prediction(self, prediction_id: str) -> Prediction:
        from mlkeep.tracking import predictions

        return predictions.get_prediction(self.db, prediction_id)

    def load_predictions(self, prediction_id: str) -> Any:
        """The predicted values as a pandas DataFrame."""
        from mlkeep.tracking import predictions

        return predictions.load_predictions(self.db, self.objects, prediction_id)

    def get_evaluation(self, evaluation_id: str) -> Evaluation:
        from mlkeep.tracking import predictions

        return predictions.get_evaluation(self.db, evaluation_id)

    def log_labels(self, prediction_id: str, labels: Any, *, wait: float = 5.0) -> Dataset:
        """Record the true labels of a logged Prediction (one per row), for live accuracy in monitoring;
        waits up to `wait` s for a served request's Prediction to be written."""
        from mlkeep.lifecycle.labels import log_labels

        return log_labels(self, prediction_id, labels, wait=wait)

    # -- versioning ---------------------------------------------------------------------
    @property
    def tensors(self) -> TensorStore:
        """The tensor store under every repository (chunked, deduplicated, delta-compressed)."""
        if self._tensors is None:
            from mlkeep.tensors import TensorStore

            self._tensors = TensorStore(self.objects)
        return self._tensors

    def repo(self, name: str) -> Repository:
        """The repository of model versions called `name` (created by its first commit)."""
        from mlkeep.versioning import Repository

        return Repository(self.db, self.objects, self.tensors, name)

    @property
    def intermediates(self) -> Intermediates:
        """Model intermediates: capture layer outputs, store or recompute them by cost, query them."""
        if self.__dict__.get("_intermediates") is None:
            from mlkeep.intermediates import Intermediates

            self._intermediates = Intermediates(self.db, self.objects, self.tensors)
        return self._intermediates

    @property
    def registry(self) -> Registry:
        """Registered models: numbered versions, aliases with their history, model cards."""
        from mlkeep.lifecycle import Registry

        return Registry(self)

    def repositories(self) -> list[str]:
        from mlkeep.versioning.repository import list_repositories

        return list_repositories(self.db)

    # -- maintenance ----------------------------------------------------------------------
    def fsck(self, *, repair: bool = False) -> FsckReport:
        """Check database integrity, every object's hash, references and commits; see `mlkeep.fsck`."""
        from mlkeep.fsck import fsck

        return fsck(self, repair=repair)

    def gc(self, *, dry_run: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        """Delete objects nothing reaches, older than the grace period; see `mlkeep.gc`."""
        from mlkeep.gc import gc

        return gc(self, dry_run=dry_run, grace_seconds=grace_seconds)

    # -- lineage, export ----------------------------------------------------------------
    def lineage(self, entity_id: str, direction: str = "up", depth: int | None = None) -> lineage.LineageGraph:
        """Everything upstream (what went into it) or downstream (what came out of it) of an entity."""
        return lineage.lineage(self.db, entity_id, direction=direction, depth=depth)

    def export(
        self, folder: str | os.PathLike[str], *, schema: str | os.PathLike[str] | None = None
    ) -> dict[str, int]:
        """Write every entity as ml-experiments-schema JSON documents; returns counts per kind.

        Documents are validated against the schema file `schema` when it is
        given, else against `$MLKEEP_SCHEMA` when that is set (otherwise not
        at all); an invalid one raises SchemaValidationError before anything
        is written.
        """
        from mlkeep.tracking.schema import export_documents

        return export_documents(self, folder, schema=schema)

    def import_(
        self, folder: str | os.PathLike[str], *, schema: str | os.PathLike[str] | None = None
    ) -> dict[str, int]:
        """Read documents written by `export` (or another tool of the schema) into this store.

        Documents are validated against the schema file `schema` when it is
        given, else against `$MLKEEP_SCHEMA` when that is set; every field
        mlkeep reads is checked either way, and a bad document raises
        SchemaValidationError with nothing imported. Returns counts per kind.
        """
        from mlkeep.tracking.schema import import_documents

        return import_documents(self, folder, schema=schema)


def open_store(uri: str | os.PathLike[str] | None = None, *, objects: str | None = None) -> Store:
    """Open the store at `uri`, else `MLKEEP_URI`, else the nearest `.mlkeep/` above the cwd."""
    return Store(location.find(uri, objects=objects))


def init_store(path: str | os.PathLike[str] = ".") -> Store:
    """Create `PATH/.mlkeep/` (SQLite + object folder) and return it opened."""
    return Store(location.create(path))
