"""The library calls the REST routes wrap, where `Store` has no single call for them.

Remote writers log through the run's id (the client holds the run handle), so
this module offers run writes by id, checking that the run is still RUNNING as
`ActiveRun` does locally. Pages of search results, metric series with
downsampling, artifact streams and the access checks of scoped tokens live
here too, so that every route is one call.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.access import Principal
from mlkeep.errors import PermissionDeniedError
from mlkeep.errors import InvalidInputError, NotFoundError, RunStateError
from mlkeep.metadata.database import prepared
from mlkeep.server.downsample import Series, downsample
from mlkeep.tracking.entities import Dataset, Evaluation, Model, Prediction, Run, RunStatus

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.tracking.lineage import LineageGraph

MAX_PAGE = 1000


# -- runs ------------------------------------------------------------------------------------
def start_run(store: Store, principal: Principal, experiment: str, name: str | None, *,
              parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
              environment: Mapping[str, str] | None = None) -> Run:
    """Create a RUNNING run with the client's environment; a scoped token only in its experiment."""
    from mlkeep.tracking import runs

    principal.require("write")
    if principal.experiment_id is not None:
        principal.require_experiment(store.get_experiment(experiment).id)
    if parent_run_id is not None:
        check_run(store, principal, parent_run_id)
    run_id = runs.create_run(store.db, experiment, name, parent_run_id=parent_run_id, tags_=tags,
                             environment=environment)
    return store.get_run(run_id)


def experiment_of_run(store: Store, run_id: str) -> tuple[str, str]:
    """(experiment id, status) of a run; `NotFoundError` if there is none."""
    from mlkeep.metadata.tables import runs

    with store.db.connect() as conn:
        row = conn.execute(select(runs.c.experiment_id, runs.c.status).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFoundError(f"No run with id {run_id!r}. Find runs with `mlkeep runs search`.")
    return row.experiment_id, row.status


def check_run(store: Store, principal: Principal, run_id: str, role: str = "read") -> str:
    """The run's status, after checking the principal may act on it with `role`."""
    principal.require(role)
    experiment_id, status = experiment_of_run(store, run_id)
    principal.require_experiment(experiment_id)
    return status


def writable_run(store: Store, principal: Principal, run_id: str) -> None:
    """Check a write to the run is allowed and the run still RUNNING (`RunStateError` otherwise)."""
    if check_run(store, principal, run_id, "write") != RunStatus.RUNNING:
        raise RunStateError(f"Run {run_id} has ended; start a new run to log more.")


def log_params(store: Store, principal: Principal, run_id: str, params: Mapping[str, Any]) -> None:
    from mlkeep.tracking import runs

    writable_run(store, principal, run_id)
    runs.log_params(store.db, run_id, params)


def set_tags(store: Store, principal: Principal, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlkeep.tracking import runs

    writable_run(store, principal, run_id)
    runs.set_tags(store.db, run_id, tags)


def log_metrics(store: Store, principal: Principal, run_id: str,
                points: Sequence[tuple[str, float | None, int, int]]) -> int:
    """Append a batch of (key, value or None for NaN, step, timestamp) in one transaction; all checked first."""
    from mlkeep.tracking.metrics import write_points
    from mlkeep.tracking.values import check_key, metric_value

    checked = []
    for key, value, step, timestamp in points:
        check_key("metric", key)
        v = math.nan if value is None else metric_value(key, value)
        if math.isinf(v):
            raise InvalidInputError(f"Metric {key!r} must be finite or NaN, not {value!r}.")
        checked.append((key, v, int(step), int(timestamp)))
    writable_run(store, principal, run_id)
    with store.db.begin() as conn:
        write_points(conn, run_id, checked)
    return len(checked)


def end_run(store: Store, principal: Principal, run_id: str, status: str, failure: str | None) -> Run:
    """End a run (ending an ended run is a no-op, as locally)."""
    from mlkeep.tracking import runs

    if check_run(store, principal, run_id, "write") == RunStatus.RUNNING:
        runs.end_run(store.db, run_id, status, failure)
    return store.get_run(run_id)


def get_run(store: Store, principal: Principal, run_id: str) -> Run:
    check_run(store, principal, run_id)
    return store.get_run(run_id)


def get_runs(store: Store, principal: Principal, run_ids: Sequence[str]) -> list[Run]:
    found = store.get_runs(run_ids)
    return [r for r in found if principal.experiment_id in (None, r.experiment_id)]


# -- search ------------------------------------------------------------------------------------
def search_page(store: Store, principal: Principal, filter: str = "", order_by: str | Sequence[str] | None = None,
                page_size: int = 50, page_token: str | None = None,
                experiments: Sequence[str] | None = None) -> tuple[list[Run], str | None]:
    """One page of `search_runs` and the token of the next page (None on the last page)."""
    principal.require("read")
    if isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE:
        raise InvalidInputError(f"page_size must be between 1 and {MAX_PAGE}, not {page_size!r}.")
    offset = _offset(page_token)
    if principal.experiment_id is not None:
        for e in experiments or ():
            principal.require_experiment(store.get_experiment(e).id)
        experiments = [principal.experiment_id]
    found = store.search_runs(filter, order_by=order_by or None, limit=offset + page_size + 1,
                              experiments=experiments or None)
    page = found[offset: offset + page_size]
    more = len(found) > offset + page_size
    return page, _token(offset + page_size) if more else None


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError("page_token is not a token this server gave out.") from None
    if offset < 0:
        raise InvalidInputError("page_token is not a token this server gave out.")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


# -- metric history ---------------------------------------------------------------------------------
def metric_series(store: Store, principal: Principal, run_id: str, key: str, *, max_points: int = 0,
                  min_step: float | None = None, max_step: float | None = None) -> tuple[Series, int]:
    """The series (windowed, downsampled to `max_points` when > 0) and its full length in the window."""
    import numpy as np

    check_run(store, principal, run_id)
    if max_points and max_points < 4:
        raise InvalidInputError("max_points must be 0 (every point) or at least 4.")
    with store.db.connect() as conn:
        cur = prepared(conn.dialect, _history).execute(conn, (run_id, key))
        try:
            rows = cur.fetchall()
        finally:
            cur.close()
    # Columns straight from the cursor: a Metric object per point costs ~10x more at 100,000 points.
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    series = Series(table[:, 0].astype(np.int64), table[:, 1], table[:, 2].astype(np.int64)).window(min_step, max_step)
    return downsample(series, max_points), len(series)


def _history(dialect: str) -> tuple[Any, Sequence[str]]:
    """The points of one series as (step, value or NULL for NaN, timestamp), in `get_metric_history`'s order."""
    from sqlalchemy import bindparam

    from mlkeep.metadata.tables import metrics

    c = metrics.c
    stmt = (select(c.step, c.value, c.timestamp).where(c.run_id == bindparam("run_id"), c.key == bindparam("key"))
            .order_by(c.step, c.timestamp, c.seq))
    return stmt, ("run_id", "key")


# -- artifacts --------------------------------------------------------------------------------------
def log_artifact_stream(store: Store, principal: Principal, run_id: str, path: str,
                        chunks: Iterable[bytes]) -> list[Any]:
    """Store a streamed file as artifact `path` of the run (spooled to a temporary file, never to memory)."""
    from mlkeep.tracking import artifacts

    writable_run(store, principal, run_id)
    rel = artifacts.safe_relpath(path)
    if not rel:
        raise InvalidInputError("An uploaded artifact needs a file name.")
    folder, _, name = rel.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mlkeep-upload-") as tmp:
        target = Path(tmp) / name
        with open(target, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        return artifacts.log_artifact(store.db, store.objects, run_id, target, folder or None)


async def log_artifact_async(store: Store, principal: Principal, run_id: str, path: str,
                             chunks: Any) -> list[Any]:
    """`log_artifact_stream` for an async body (the request stream), spooled to disk as it arrives."""
    import anyio

    await anyio.to_thread.run_sync(writable_run, store, principal, run_id)
    tmp = tempfile.NamedTemporaryFile(prefix="mlkeep-upload-", delete=False)
    try:
        with tmp:
            async for chunk in chunks:
                tmp.write(chunk)
        return await anyio.to_thread.run_sync(_log_spooled, store, principal, run_id, path, tmp.name)
    finally:
        os.unlink(tmp.name)


def _log_spooled(store: Store, principal: Principal, run_id: str, path: str, spooled: str) -> list[Any]:
    def chunks() -> Iterator[bytes]:
        with open(spooled, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    return log_artifact_stream(store, principal, run_id, path, chunks())


def artifact_file(store: Store, principal: Principal, run_id: str, path: str) -> tuple[Path, str]:
    """A verified temporary copy of one artifact (the caller deletes its folder) and its file name."""
    from mlkeep.tracking import artifacts

    check_run(store, principal, run_id)
    rel = artifacts.safe_relpath(path)
    found = [a for a in store.list_artifacts(run_id, rel) if a.path == rel]
    if not found:
        raise NotFoundError(f"Run {run_id} has no artifact {path!r}.")
    folder = Path(tempfile.mkdtemp(prefix="mlkeep-download-"))
    target = folder / "artifact"
    try:
        store.objects.get_file(found[0].object, target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target, rel.rsplit("/", 1)[-1]


def list_artifacts(store: Store, principal: Principal, run_id: str, path: str = "") -> list[Any]:
    check_run(store, principal, run_id)
    return store.list_artifacts(run_id, path)


def object_file(store: Store, oid: str) -> Path:
    """A verified temporary copy of a blob (the caller deletes its folder)."""
    folder = Path(tempfile.mkdtemp(prefix="mlkeep-download-"))
    try:
        store.objects.get_file(oid, folder / "object")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "object"


async def put_object_async(store: Store, principal: Principal, chunks: Any) -> tuple[str, int]:
    """Store a streamed blob (content-addressed: the id is its SHA-256); returns (id, size)."""
    import anyio

    principal.require("write")
    tmp = tempfile.NamedTemporaryFile(prefix="mlkeep-upload-", delete=False)
    try:
        with tmp:
            async for chunk in chunks:
                tmp.write(chunk)
        return await anyio.to_thread.run_sync(store.objects.put_file, tmp.name)
    finally:
        os.unlink(tmp.name)


# -- entities ---------------------------------------------------------------------------------------
def record_dataset(store: Store, principal: Principal, run_id: str, description: Mapping[str, Any],
                   oid: str | None, *,
                   name: str | None = None, derived_from: str | None = None, context: str = "input") -> Dataset:
    """Record a dataset the client described (its content already uploaded as `oid`) and link it to the run.

    The server never unpickles client data: the client runs `describe` and uploads the bytes it stores.
    """
    from mlkeep.tracking import datasets
    from mlkeep.tracking.describe import Description
    from mlkeep.tracking.lineage import add_links

    writable_run(store, principal, run_id)
    if oid is None or not store.objects.exists(oid):
        raise NotFoundError(f"Object {oid} was not uploaded; upload the dataset's content first.")
    fields = {k: description[k] for k in ("fingerprint", "kind", "num_rows", "columns", "statistics",
                                           "histograms", "format", "targets") if k in description}
    source = description.get("path")
    try:
        desc = Description(**fields, payload=None, path=Path(source) if source else None)
    except TypeError as exc:
        raise InvalidInputError(f"Not a dataset description: {exc}") from None
    dataset = datasets._record(store.db, desc, oid, name, derived_from)  # noqa: SLF001 - no public twin yet
    with store.db.begin() as conn:
        add_links(conn, [(dataset.id, "dataset", run_id, "run", context)])
    return dataset


def link_dataset(store: Store, principal: Principal, run_id: str, dataset_id: str, context: str = "input") -> Dataset:
    """Link an existing dataset to the run (as logging a `Dataset` entity does locally)."""
    from mlkeep.tracking.lineage import add_links

    writable_run(store, principal, run_id)
    dataset = get_dataset(store, principal, dataset_id)
    with store.db.begin() as conn:
        add_links(conn, [(dataset.id, "dataset", run_id, "run", context)])
    return dataset


def record_model(store: Store, principal: Principal, run_id: str, model: Mapping[str, Any]) -> Model:
    """Record a model the client described and serialized (its blob uploaded first); never unpickled here."""
    from mlkeep.tracking import models

    writable_run(store, principal, run_id)
    entity = Model.from_dict({**model, "run_id": run_id})
    if entity.object is None or not store.objects.exists(entity.object):
        raise NotFoundError("The model's serialized object was not uploaded; upload it first.")
    if entity.trained_on_dataset_id is not None:
        store.get_dataset(entity.trained_on_dataset_id)
    with store.db.begin() as conn:
        models.insert_model(conn, entity)
    return store.get_model(entity.id)


def log_predictions(store: Store, principal: Principal, run_id: str, model_id: str, dataset_id: str, oid: str,
                    name: str | None = None) -> Prediction:
    """Log predictions uploaded as a Parquet blob (read with pyarrow: no code runs)."""
    import io

    import pandas as pd

    from mlkeep.tracking import predictions

    writable_run(store, principal, run_id)
    try:
        frame = pd.read_parquet(io.BytesIO(store.objects.get_bytes(oid)))
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"The uploaded predictions are not a Parquet table: {exc}") from None
    return predictions.log_predictions(store.db, store.objects, model_id, store.get_dataset(dataset_id), frame,
                                       name=name, run_id=run_id)


def log_evaluation(store: Store, principal: Principal, run_id: str, model_id: str, dataset_id: str,
                   scores: Mapping[str, float], *, confusion_matrix: Any = None, class_labels: Any = None,
                   prediction_id: str | None = None, name: str | None = None) -> Evaluation:
    from mlkeep.tracking import predictions

    writable_run(store, principal, run_id)
    return predictions.log_evaluation(
        store.db, store.objects, model_id, store.get_dataset(dataset_id), scores, confusion_matrix=confusion_matrix,
        class_labels=class_labels, prediction=prediction_id, name=name, run_id=run_id)


def _visible_run_of(store: Store, principal: Principal, run_id: str | None) -> None:
    """A scoped token sees an entity only when a run of its experiment logged it."""
    if principal.experiment_id is None:
        return
    if run_id is None:
        raise PermissionDeniedError("This token is scoped to an experiment; this entity belongs to none.")
    principal.require_experiment(experiment_of_run(store, run_id)[0])


def get_model(store: Store, principal: Principal, model_id: str) -> Model:
    principal.require("read")
    model = store.get_model(model_id)
    _visible_run_of(store, principal, model.run_id)
    return model


def list_models(store: Store, principal: Principal, run_id: str | None = None) -> list[Model]:
    principal.require("read")
    if run_id is not None:
        check_run(store, principal, run_id)
    found = store.list_models(run_id)
    return found if principal.experiment_id is None else [m for m in found if _sees(store, principal, m.run_id)]


def _sees(store: Store, principal: Principal, run_id: str | None) -> bool:
    try:
        _visible_run_of(store, principal, run_id)
    except (PermissionDeniedError, NotFoundError):
        return False
    return True


def _dataset_visible(store: Store, principal: Principal, dataset_id: str) -> bool:
    if principal.experiment_id is None:
        return True
    graph = store.lineage(dataset_id, "down", depth=2)
    return any(_sees(store, principal, n.id) for n in graph.of_kind("run"))


def get_dataset(store: Store, principal: Principal, dataset_id: str) -> Dataset:
    principal.require("read")
    dataset = store.get_dataset(dataset_id)
    if not _dataset_visible(store, principal, dataset_id):
        raise PermissionDeniedError("This token is scoped to an experiment that never used this dataset.")
    return dataset


def list_datasets(store: Store, principal: Principal, name: str | None = None) -> list[Dataset]:
    principal.require("read")
    return [d for d in store.list_datasets(name) if _dataset_visible(store, principal, d.id)]


def get_prediction(store: Store, principal: Principal, prediction_id: str) -> Prediction:
    principal.require("read")
    p = store.get_prediction(prediction_id)
    _visible_run_of(store, principal, p.run_id)
    return p


def prediction_values(store: Store, principal: Principal, prediction_id: str) -> Path:
    """A verified temporary copy of the predictions' Parquet blob (the caller deletes its folder)."""
    p = get_prediction(store, principal, prediction_id)
    if p.object is None:
        raise NotFoundError(f"Prediction {prediction_id} was recorded without its values (imported metadata).")
    return object_file(store, p.object)


def get_evaluation(store: Store, principal: Principal, evaluation_id: str) -> Evaluation:
    principal.require("read")
    e = store.get_evaluation(evaluation_id)
    _visible_run_of(store, principal, e.run_id)
    return e


def model_object(store: Store, principal: Principal, model_id: str) -> tuple[Path, str]:
    """A verified temporary copy of the model's serialized blob, and its flavor."""
    model = get_model(store, principal, model_id)
    if model.object is None:
        raise NotFoundError(f"Model {model_id} was recorded without its serialized form.")
    return object_file(store, model.object), model.flavor or "pickle"


def run_entities(store: Store, principal: Principal, run_id: str) -> dict[str, list[Any]]:
    """What a run used and made: datasets (with statistics), models, predictions, evaluations."""
    check_run(store, principal, run_id)
    up = store.lineage(run_id, "up", depth=1)
    down = store.lineage(run_id, "down", depth=1)
    return {
        "datasets": [store.get_dataset(n.id) for n in up.of_kind("dataset")],
        "models": store.list_models(run_id),
        "predictions": [store.get_prediction(n.id) for n in down.of_kind("prediction")],
        "evaluations": [store.get_evaluation(n.id) for n in down.of_kind("evaluation")],
    }


# -- lineage ----------------------------------------------------------------------------------------
def lineage(store: Store, principal: Principal, entity_id: str, direction: str = "up",
            depth: int | None = None) -> LineageGraph:
    """`Store.lineage`, pruned for a scoped token to the runs of its experiment and what they logged."""
    principal.require("read")
    graph = store.lineage(entity_id, direction, depth)
    return _pruned(store, principal, graph)


def neighbourhood(store: Store, principal: Principal, entity_id: str, depth: int = 2) -> dict[str, Any]:
    """Upstream and downstream of an entity, `depth` steps each way, as one node/edge list."""
    principal.require("read")
    up = _pruned(store, principal, store.lineage(entity_id, "up", depth))
    down = _pruned(store, principal, store.lineage(entity_id, "down", depth))
    nodes = {**up.nodes, **down.nodes}
    links = {(l.src, l.dst, l.relation): l for l in [*up.links, *down.links]}
    depth_of = {**{k: -v for k, v in up.depth.items()}, **down.depth}
    return {
        "root": entity_id,
        "nodes": [{**n.to_dict(), "depth": depth_of.get(n.id, 0)} for n in nodes.values()],
        "links": [l.to_dict() for l in links.values() if l.src in nodes and l.dst in nodes],
    }


def _pruned(store: Store, principal: Principal, graph: LineageGraph) -> LineageGraph:
    if principal.experiment_id is None:
        return graph
    from mlkeep.tracking.lineage import LineageGraph

    def visible(node_id: str, kind: str) -> bool:
        if kind == "run":
            return _sees(store, principal, node_id)
        if kind == "dataset":
            return _dataset_visible(store, principal, node_id)
        if kind == "model":
            return _sees(store, principal, store.get_model(node_id).run_id)
        if kind == "prediction":
            return _sees(store, principal, store.get_prediction(node_id).run_id)
        if kind == "evaluation":
            return _sees(store, principal, store.get_evaluation(node_id).run_id)
        return False

    if graph.root in graph.nodes and not visible(graph.root, graph.nodes[graph.root].kind):
        raise PermissionDeniedError("This token is scoped to an experiment this entity is not part of.")
    nodes = {k: n for k, n in graph.nodes.items() if visible(k, n.kind)}
    return LineageGraph(root=graph.root, direction=graph.direction, nodes=nodes,
                        links=[l for l in graph.links if l.src in nodes and l.dst in nodes],
                        depth={k: v for k, v in graph.depth.items() if k in nodes})


# -- experiments ----------------------------------------------------------------------------------------
def list_experiments(store: Store, principal: Principal) -> list[Any]:
    principal.require("read")
    return [e for e in store.list_experiments() if principal.experiment_id in (None, e.id)]


def get_experiment(store: Store, principal: Principal, name_or_id: str) -> Any:
    principal.require("read")
    e = store.get_experiment(name_or_id)
    principal.require_experiment(e.id)
    return e


def create_experiment(store: Store, principal: Principal, name: str, description: str | None) -> Any:
    principal.require("write")
    principal.require_unscoped("other experiments")
    return store.create_experiment(name, description)


# -- repositories -------------------------------------------------------------------------------------
def repository(store: Store, principal: Principal, name: str) -> Any:
    """The repository `name`, for an unscoped reader."""
    principal.require("read")
    principal.require_unscoped("repositories")
    return store.repo(name)


def repositories(store: Store, principal: Principal) -> list[dict[str, Any]]:
    """Every repository with its branches and tags."""
    principal.require("read")
    principal.require_unscoped("repositories")
    out = []
    for name in store.repositories():
        repo = store.repo(name)
        out.append({"name": name, "branches": repo.branches(), "tags": repo.tags()})
    return out


def checkout_file(store: Store, principal: Principal, name: str, ref: str) -> tuple[Path, str]:
    """The version `ref` written to a temporary file (safetensors, or .pkl for estimators); its download name."""
    repo = repository(store, principal, name)
    commit = repo.get(ref)
    suffix = ".pkl" if commit.kind == "sklearn" else ".safetensors"
    folder = Path(tempfile.mkdtemp(prefix="mlkeep-checkout-"))
    try:
        path = repo.checkout_file(commit.id, folder / f"{commit.id[:12]}{suffix}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Path(path), f"{name}-{commit.id[:12]}{suffix}"


# -- tokens -----------------------------------------------------------------------------------------------
def create_token(store: Store, principal: Principal, role: str, experiment: str | None,
                 description: str | None) -> tuple[Any, str]:
    from mlkeep import access

    principal.require("admin")
    principal.require_unscoped("tokens")
    return access.create_token(store, role, experiment=experiment, description=description)


def list_tokens(store: Store, principal: Principal) -> list[Any]:
    from mlkeep import access

    principal.require("admin")
    principal.require_unscoped("tokens")
    return access.list_tokens(store)


def revoke_token(store: Store, principal: Principal, token_id: str) -> Any:
    from mlkeep import access

    principal.require("admin")
    principal.require_unscoped("tokens")
    return access.revoke_token(store, token_id)
