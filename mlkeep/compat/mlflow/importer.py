"""`import_mlflow`: bring an MLflow store's history into mlkeep, again and again, importing only what is new.

The source is read through MLflow's own client (so any store it reads works:
an `sqlite:///` database, a `file:` folder, an `http://` server); `mlflow`
must be installed. Runs keep their ids, names, times, creators, statuses and
lifecycle stage; every metric point is copied with its step and timestamp.
Logged models (MLflow 3) keep their ids and become mlkeep Models with their
files under the run; registered models get the same version numbers and
aliases. A run or logged model already in the store is skipped, which makes a
re-run incremental. At the end every imported run is read back and its
params, tags, metric points and artifacts counted against the source.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from mlkeep.compat.mlflow import datasets, logged_models, tracking
from mlkeep.compat.mlflow.messages import NOTE_TAG
from mlkeep.errors import InvalidInputError, NotFoundError, UnsupportedError
from mlkeep.ids import now_ms
from mlkeep.metadata.tables import metrics as metrics_table
from mlkeep.tracking import artifacts, experiments, runs
from mlkeep.tracking.entities import Entity, LifecycleStage, Model, RunStatus
from mlkeep.tracking.metrics import write_points
from mlkeep.tracking.models import insert_model

if TYPE_CHECKING:
    from mlkeep.store import Store

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)
PAGE = 1000


@dataclass
class ImportReport(Entity):
    """What one `import_mlflow` did: counts of what was imported now, what was there already, and the check."""

    source: str
    experiments: int = 0
    runs: int = 0
    runs_skipped: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    artifacts: int = 0
    datasets: int = 0
    logged_models: int = 0
    registered_models: int = 0
    model_versions: int = 0
    aliases: int = 0
    skipped: list[str] = field(default_factory=list)  # what could not be imported, and why
    mismatches: list[str] = field(default_factory=list)  # counts that differ after import

    @property
    def verified(self) -> bool:
        return not self.mismatches


def import_mlflow(store: Store, source: str, *, progress: Progress | None = None) -> ImportReport:
    """Import everything new in the MLflow store at tracking URI `source` into `store`.

    Raises `InvalidInputError` when `source` is not an MLflow tracking URI mlflow can open, and
    `UnsupportedError` when `mlflow` is not installed.
    """
    client = _client(source)
    report = ImportReport(source=source)
    tell = progress or (lambda stage, done, total: None)
    imported: dict[str, dict[str, Any]] = {}  # run id -> the source's counts, checked at the end
    deleted_experiments = []
    for exp in _experiments(client):
        report.experiments += not _experiment_exists(store, exp.name)
        tags = dict(exp.tags or {})
        # Tags overwrite what an earlier import set; MLflow's note tag is the description.
        mine = experiments.create_experiment(store.db, exp.name, tags.pop(NOTE_TAG, None), tags=tags)
        if exp.lifecycle_stage == LifecycleStage.DELETED:
            deleted_experiments.append(mine.id)
            experiments.restore_experiment(store.db, mine.id)  # runs go in first, then it is deleted again
        source_runs = _ordered(list(_runs(client, exp.experiment_id)))
        for done, run in enumerate(source_runs, 1):
            if _exists(store, run.info.run_id):
                report.runs_skipped += 1
            else:
                imported[run.info.run_id] = _import_run(store, client, run, mine.name, report)
            tell(f"runs of {exp.name}", done, len(source_runs))
        _import_logged_models(store, client, exp.experiment_id, report, tell)
    for exp_id in deleted_experiments:
        experiments.delete_experiment(store.db, exp_id)
    _import_registry(store, client, report, tell)
    _verify(store, imported, report)
    return report


def _client(source: str) -> Any:
    if not isinstance(source, str) or not source.startswith(("sqlite:///", "file:", "http://", "https://",
                                                              "postgresql", "mysql")):
        raise InvalidInputError(f"{source!r} is not an MLflow tracking URI: give sqlite:///PATH, file:PATH or "
                                "http://HOST:PORT.")
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise UnsupportedError("Importing from MLflow reads through MLflow's client: `pip install mlflow`.") from None
    if source.startswith("file:"):
        if not Path(source[len("file:"):].removeprefix("//")).is_dir():
            raise InvalidInputError(f"No MLflow store folder at {source!r}.")
        # MLflow 3 refuses its folder store unless asked; reading one is what migrating off it needs.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if source.startswith("sqlite:///") and not Path(source[len("sqlite:///"):]).is_file():
        raise InvalidInputError(f"No MLflow database at {source!r}.")
    return MlflowClient(tracking_uri=source, registry_uri=source)


def _experiments(client: Any) -> list[Any]:
    from mlflow.entities import ViewType

    return list(_pages(lambda token: client.search_experiments(view_type=ViewType.ALL, max_results=PAGE,
                                                               page_token=token)))


def _runs(client: Any, experiment_id: str) -> Iterator[Any]:
    from mlflow.entities import ViewType

    yield from _pages(lambda token: client.search_runs([experiment_id], run_view_type=ViewType.ALL,
                                                       max_results=PAGE, order_by=["attributes.start_time ASC"],
                                                       page_token=token))


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _ordered(found: list[Any]) -> list[Any]:
    """Parents before their children (a child names its parent when it is created)."""
    ids = {r.info.run_id: r for r in found}

    def depth(run: Any, seen: int = 0) -> int:
        parent = run.data.tags.get(tracking.PARENT_TAG)
        return 0 if parent not in ids or seen > len(ids) else 1 + depth(ids[parent], seen + 1)

    return sorted(found, key=depth)


def _experiment_exists(store: Store, name: str) -> bool:
    try:
        return store.get_experiment(name).name == name
    except NotFoundError:
        return False


def _exists(store: Store, run_id: str) -> bool:
    try:
        runs.require_run(store.db, run_id)
    except NotFoundError:
        return False
    return True


def _import_run(store: Store, client: Any, run: Any, experiment: str, report: ImportReport) -> dict[str, Any]:
    """Copy one run; returns the source's counts and artifact paths for the check."""
    info, data = run.info, run.data
    parent = data.tags.get(tracking.PARENT_TAG)
    runs.create_run(store.db, experiment, info.run_name or None, run_id=info.run_id,
                    parent_run_id=parent if parent and _exists(store, parent) else None, tags_=data.tags,
                    start_time=info.start_time or now_ms(), creator=info.user_id or None)
    runs.log_params(store.db, info.run_id, data.params)
    points = 0
    with store.db.begin() as conn:
        for key in data.metrics:
            history = client.get_metric_history(info.run_id, key)
            write_points(conn, info.run_id, [(m.key, m.value, m.step, m.timestamp) for m in history])
            points += len(history)
    files = _copy_artifacts(store, client, info.run_id)
    inputs = run.inputs.dataset_inputs if run.inputs else []
    if inputs:
        datasets.log_inputs(store, info.run_id, [{"dataset": d.dataset.to_dictionary(),
                                                  "tags": [{"key": t.key, "value": t.value} for t in d.tags]}
                                                 for d in inputs])
    if info.status != "RUNNING" and info.status in RunStatus.ALL:
        runs.end_run(store.db, info.run_id, info.status, end_time=info.end_time or info.start_time)
    if info.lifecycle_stage == LifecycleStage.DELETED:
        runs.delete_run(store.db, info.run_id)
    report.runs += 1
    report.params += len(data.params)
    report.tags += len(data.tags)
    report.metric_points += points
    report.artifacts += len(files)
    report.datasets += len(inputs)
    return {"params": len(data.params), "tags": len(data.tags), "points": points, "artifacts": files}


def _copy_artifacts(store: Store, client: Any, run_id: str) -> set[str]:
    """Copy a run's artifacts; returns their paths."""
    if not client.list_artifacts(run_id):
        return set()
    with tempfile.TemporaryDirectory(prefix="mlkeep-import-") as tmp:
        return _store_folder(store, run_id, Path(client.download_artifacts(run_id, "", tmp)), "")


def _store_folder(store: Store, run_id: str, local: Path, prefix: str) -> set[str]:
    """Store the files under folder `local` as artifacts under `prefix`; returns their paths."""
    stored = set()
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        rel = file.parent.relative_to(local).as_posix()
        folder = "/".join(p for p in (prefix, "" if rel == "." else rel) if p)
        artifacts.log_artifact(store.db, store.objects, run_id, file, folder or None)
        stored.add(f"{folder}/{file.name}" if folder else file.name)
    return stored


def _import_logged_models(store: Store, client: Any, experiment_id: str, report: ImportReport,
                          tell: Progress) -> None:
    """MLflow 3 logged models of the experiment whose run was imported: records and files."""
    try:
        found = list(_pages(lambda token: client.search_logged_models(experiment_ids=[experiment_id],
                                                                      page_token=token)))
    except Exception as exc:  # an MLflow 2 server has no logged models
        log.info("no logged models from %s: %s", experiment_id, exc)
        return
    for done, model in enumerate(found, 1):
        tell("logged models", done, len(found))
        if _model_exists(store, model.model_id):
            continue
        if not model.source_run_id or not _exists(store, model.source_run_id):
            report.skipped.append(f"logged model {model.model_id}: no source run in the store")
            continue
        exp = store.get_run(model.source_run_id).experiment_id
        state: dict[str, Any] = {"experiment_id": exp, "status": "LOGGED_MODEL_PENDING", "model_type": model.model_type or "",
                                 "tags": dict(model.tags), "params": dict(model.params), "metrics": [],
                                 "last_updated": model.last_updated_timestamp or now_ms()}
        entity = Model(id=model.model_id, name=model.name, learning_algorithm=logged_models.ALGORITHM,
                       creation_time=model.creation_timestamp or now_ms(), run_id=model.source_run_id)
        with store.db.begin() as conn:
            insert_model(conn, entity, extra={"mlflow": state})
        with tempfile.TemporaryDirectory(prefix="mlkeep-import-") as tmp:
            from mlflow.artifacts import download_artifacts

            local = Path(download_artifacts(artifact_uri=model.artifact_location, dst_path=tmp,
                                            tracking_uri=client.tracking_uri))
            report.artifacts += len(_store_folder(store, model.source_run_id, local,
                                                  logged_models.model_folder(model.model_id)))
        status = {2: logged_models.READY, 3: logged_models.FAILED}.get(model.status.to_proto(),
                                                                         logged_models.READY)
        logged_models.finalize(store, model.model_id, status)
        report.logged_models += 1


def _model_exists(store: Store, model_id: str) -> bool:
    try:
        logged_models.get(store, model_id)
    except NotFoundError:
        return False
    return True


def _import_registry(store: Store, client: Any, report: ImportReport, tell: Progress) -> None:
    from mlkeep.compat.mlflow import registry

    try:
        models = list(_pages(lambda token: client.search_registered_models(max_results=PAGE, page_token=token)))
    except Exception as exc:  # a store without a registry
        report.skipped.append(f"registered models: {exc}")
        return
    for done, rm in enumerate(models, 1):
        tell("registered models", done, len(models))
        try:
            have = store.registry.get(rm.name).latest_version or 0
        except NotFoundError:
            registry.create_model(store, rm.name, rm.description, dict(rm.tags))
            report.registered_models += 1
            have = 0
        versions = sorted(client.search_model_versions(f"name = '{rm.name}'"), key=lambda v: int(v.version))
        for v in versions:
            if int(v.version) <= have:
                continue
            model_id = registry.source_model_id(getattr(v, "model_id", None), v.source)
            if not model_id or not _model_exists(store, model_id):
                report.skipped.append(f"{rm.name} version {v.version}: its source {v.source} is not a logged "
                                      "model in the store (MLflow 2 versions point at run folders)")
                continue
            made = store.registry.register(rm.name, model_id, description=v.description, tags=dict(v.tags) or None)
            if made.version != int(v.version):
                report.mismatches.append(f"{rm.name}: MLflow version {v.version} became version {made.version}")
            report.model_versions += 1
        current = store.registry.get(rm.name).aliases
        for alias, version in (rm.aliases or {}).items():
            if current.get(alias) != int(version):
                try:
                    store.registry.set_alias(rm.name, alias, int(version), reason="imported from MLflow")
                    report.aliases += 1
                except NotFoundError as exc:
                    report.skipped.append(f"alias {alias} of {rm.name}: {exc}")


def _verify(store: Store, imported: dict[str, dict[str, Any]], report: ImportReport) -> None:
    """Read every imported run back and compare its counts with the source's."""
    for run in store.get_runs(list(imported)):
        want = imported[run.id]
        with store.db.connect() as conn:
            points = conn.execute(select(func.count()).select_from(metrics_table)
                                  .where(metrics_table.c.run_id == run.id)).scalar_one()
        have = {"params": len(run.params), "tags": len(run.tags), "points": points}
        for key, value in have.items():
            if want[key] != value:
                report.mismatches.append(f"run {run.id}: {want[key]} {key} in MLflow, {value} in mlkeep")
        lost = want["artifacts"] - {a.path for a in store.list_artifacts(run.id)}
        if lost:
            report.mismatches.append(f"run {run.id}: artifacts {sorted(lost)[:3]} missing in mlkeep")
    missing = set(imported) - {r.id for r in store.get_runs(list(imported))}
    report.mismatches.extend(f"run {r}: not in mlkeep after import" for r in sorted(missing))
