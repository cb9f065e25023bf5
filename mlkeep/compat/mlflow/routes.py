"""The MLflow REST API (`/api/2.0/mlflow/...`, `/api/2.0/mlflow-artifacts/...`) over an mlkeep store.

Each route is one call into `mlkeep.compat.mlflow` or the Store. Errors are
MLflow's `{"error_code", "message"}`; a call mlkeep does not offer answers
NOT_IMPLEMENTED (HTTP 501, which the client does not retry) saying so.
With `mlkeep server --auth`, the client's `MLFLOW_TRACKING_TOKEN` is an
mlkeep token; experiment-scoped tokens cannot use this API.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from mlkeep import errors
from mlkeep.compat.mlflow import artifacts, datasets, filters, logged_models, messages, registry, tracking
from mlkeep.compat.mlflow.run_messages import run_messages, search_answer
from mlkeep.server.app import CTX, bearer, current
from mlkeep.store import Store
from mlkeep.tracking import experiments, runs
from mlkeep.tracking.search import search_run_ids

log = logging.getLogger(__name__)
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts"
_PREFIXES = (API + "/", ARTIFACTS + "/")
MAX_RUNS_PAGE = 50_000
# mlkeep errors as MLflow's error codes and HTTP statuses.
ERROR_CODES: list[tuple[type[errors.MlkeepError], str, int]] = [
    (errors.NotFoundError, "RESOURCE_DOES_NOT_EXIST", 404),
    (errors.ConflictError, "RESOURCE_ALREADY_EXISTS", 400),
    (errors.InvalidInputError, "INVALID_PARAMETER_VALUE", 400),
    (errors.RunStateError, "INVALID_STATE", 400),
    (errors.UnsupportedError, "NOT_IMPLEMENTED", 501),
    (errors.AuthenticationError, "UNAUTHENTICATED", 401),
    (errors.PermissionDeniedError, "PERMISSION_DENIED", 403),
    (errors.CorruptObjectError, "DATA_LOSS", 500),
]


def mlflow_error(exc: Exception) -> JSONResponse:
    """An exception as MLflow's error message."""
    for cls, code, status in ERROR_CODES:
        if isinstance(exc, cls):
            return JSONResponse({"error_code": code, "message": str(exc)}, status_code=status)
    log.exception("unexpected error in the MLflow API", exc_info=exc)
    return JSONResponse({"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"},
                        status_code=500)


class MlflowRoute(APIRoute):
    """A route whose errors come out in MLflow's format, not mlkeep's, and whose dicts are sent as they are.

    The messages are built JSON-ready (`messages`), so FastAPI's generic encoder, which walks every
    value of a thousand-run search page, is skipped. The endpoints take only the store, the body,
    the request and path parameters, so they are called directly (`_direct`): FastAPI's dependency
    solving, for those few values, cost about a fifth of a small request's time in the server.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self._direct = _direct(endpoint, set(compile_path(path)[2]))
        super().__init__(path, _as_json(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = self._direct or super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # every error, as the client expects: never an HTML page
                return mlflow_error(exc)

        return handle


def _send(result: Any) -> Response:
    return result if isinstance(result, Response) else JSONResponse(result)


def _as_json(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        @functools.wraps(endpoint)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            return _send(await endpoint(*args, **kwargs))

        return call_async

    @functools.wraps(endpoint)
    def call(*args: Any, **kwargs: Any) -> Any:
        return _send(endpoint(*args, **kwargs))

    return call


def _direct(endpoint: Callable[..., Any], path_params: set[str]) -> Callable[[Request], Awaitable[Response]] | None:
    """A handler calling `endpoint` with its parameters (READ or WRITE store, BODY, the Request, path
    parameters) found as FastAPI would find them; None for an endpoint taking anything else."""
    hints = get_type_hints(endpoint, include_extras=True)
    wanted: list[tuple[str, Any]] = []
    for name in inspect.signature(endpoint).parameters:
        hint = hints.get(name)
        if hint in (READ, WRITE, BODY):
            wanted.append((name, hint.__metadata__[0].dependency))
        elif hint is Request or (hint is str and name in path_params):
            wanted.append((name, hint))
        else:
            return None
    needs_ctx = any(kind in (_reader, _writer) for _, kind in wanted)
    is_async = inspect.iscoroutinefunction(endpoint)

    async def handler(request: Request) -> Response:
        ctx = await current(request, await bearer(request)) if needs_ctx else None
        kwargs: dict[str, Any] = {}
        for name, kind in wanted:
            if kind is _reader or kind is _writer:
                kwargs[name] = await kind(ctx)  # type: ignore[arg-type]
            elif kind is _body:
                kwargs[name] = await _body(request)
            elif kind is Request:
                kwargs[name] = request
            else:
                kwargs[name] = request.path_params[name]
        # A store call may wait for the database: on a worker thread, as FastAPI would run it.
        return _send(await endpoint(**kwargs) if is_async else await run_in_threadpool(endpoint, **kwargs))

    return handler


router = APIRouter(route_class=MlflowRoute, tags=["mlflow"])


def mount(app: FastAPI) -> None:
    """Serve this API beside `app`'s own routes, in an app of its own that requests under its prefix reach first.

    Routing walks routes in order: behind mlkeep's own hundred, every MLflow call paid for matching
    all of them (~40% of a `log_metric`'s server time); mlkeep's own requests now pay one prefix check.
    The two apps share their state (the store, whether auth is on).
    """
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, routes=router.routes)
    api.state = app.state
    app.add_middleware(_Dispatch, mlflow=api)


class _Dispatch:
    """ASGI middleware: requests under the MLflow prefixes go to the MLflow app, the rest to mlkeep's."""

    def __init__(self, app: ASGIApp, mlflow: ASGIApp) -> None:
        self.app, self.mlflow = app, mlflow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.mlflow if scope["type"] == "http" and scope["path"].startswith(_PREFIXES) else self.app
        await target(scope, receive, send)


# Async, as `current` is: no I/O here, and a worker-thread hop per request costs more than the check.
async def _reader(ctx: CTX) -> Store:
    ctx.principal.require("read")
    ctx.principal.require_unscoped("the MLflow API")
    return ctx.store


async def _writer(ctx: CTX) -> Store:
    ctx.principal.require("write")
    ctx.principal.require_unscoped("the MLflow API")
    return ctx.store


READ = Annotated[Store, Depends(_reader)]
WRITE = Annotated[Store, Depends(_writer)]


async def _body(request: Request) -> dict[str, Any]:
    """The JSON body (or, for GET and DELETE, the query string; repeated keys become lists)."""
    if request.method in ("GET", "DELETE"):
        q = request.query_params
        body: dict[str, Any] = {k: (q.getlist(k) if len(q.getlist(k)) > 1 else q[k]) for k in q}
        if request.method == "DELETE" and not body and await request.body():
            body = await request.json()
        return body
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise errors.InvalidInputError("The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise errors.InvalidInputError("The request body must be a JSON object.")
    return data


BODY = Annotated[dict[str, Any], Depends(_body)]


def _need(body: dict[str, Any], *names: str) -> Any:
    """The first of `names` present in the request (MLflow has run_id and its old name run_uuid)."""
    for name in names:
        if body.get(name) not in (None, ""):
            return body[name]
    raise errors.InvalidInputError(f"Missing value for required parameter '{names[0]}'.")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value in (None, "") else [value]


# -- experiments --------------------------------------------------------------------------------------
@router.post(f"{API}/experiments/create")
def create_experiment(store: WRITE, body: BODY) -> Any:
    return {"experiment_id": tracking.create_experiment(store, _need(body, "name"), body.get("tags")).id}


@router.get(f"{API}/experiments/get")
def get_experiment(store: READ, body: BODY) -> Any:
    return {"experiment": messages.experiment(tracking.experiment(store, _need(body, "experiment_id")))}


@router.get(f"{API}/experiments/get-by-name")
def get_experiment_by_name(store: READ, body: BODY) -> Any:
    name = _need(body, "experiment_name")
    exp = store.get_experiment(name)
    if exp.name != name:  # get_experiment also takes ids
        raise errors.NotFoundError(f"No experiment named {name!r}.")
    return {"experiment": messages.experiment(exp)}


@router.post(f"{API}/experiments/search")
def search_experiments(store: READ, body: BODY) -> Any:
    stage = filters.view_stage(body.get("view_type"))
    found = experiments.list_experiments(store.db, stage or "all")
    found = [e for e in found if filters.experiment_filter(body.get("filter"))(e)]
    found = filters.sort_experiments(found, _list(body.get("order_by")))
    size = filters.page_size(body.get("max_results"), 1000, 50_000)
    chunk, token = filters.page(found, filters.offset_of(body.get("page_token")), size)
    return {"experiments": [messages.experiment(e) for e in chunk], **({"next_page_token": token} if token else {})}


@router.post(f"{API}/experiments/update")
def update_experiment(store: WRITE, body: BODY) -> Any:
    exp = tracking.experiment(store, _need(body, "experiment_id"))
    if body.get("new_name"):
        experiments.rename_experiment(store.db, exp.id, body["new_name"])
    return {}


@router.post(f"{API}/experiments/delete")
def delete_experiment(store: WRITE, body: BODY) -> Any:
    experiments.delete_experiment(store.db, tracking.experiment(store, _need(body, "experiment_id")).id)
    return {}


@router.post(f"{API}/experiments/restore")
def restore_experiment(store: WRITE, body: BODY) -> Any:
    experiments.restore_experiment(store.db, tracking.experiment(store, _need(body, "experiment_id")).id)
    return {}


@router.post(f"{API}/experiments/set-experiment-tag")
def set_experiment_tag(store: WRITE, body: BODY) -> Any:
    tracking.set_experiment_tag(store, _need(body, "experiment_id"), _need(body, "key"), str(body.get("value", "")))
    return {}


@router.post(f"{API}/experiments/delete-experiment-tag")
def delete_experiment_tag(store: WRITE, body: BODY) -> Any:
    tracking.delete_experiment_tag(store, _need(body, "experiment_id"), _need(body, "key"))
    return {}


# -- runs -------------------------------------------------------------------------------------------------
@router.post(f"{API}/runs/create")
def create_run(store: WRITE, body: BODY) -> Any:
    return {"run": run_messages(store.db, [tracking.create_run(store, body)], new=True)[0]}


@router.get(f"{API}/runs/get")
def get_run(store: READ, body: BODY) -> Any:
    run_id = _need(body, "run_id", "run_uuid")
    found = run_messages(store.db, [run_id])
    if not found:
        runs.require_run(store.db, run_id)  # raises NotFoundError, worded as mlkeep words it
    return {"run": found[0]}


@router.post(f"{API}/runs/update")
def update_run(store: WRITE, body: BODY) -> Any:
    run_id = _need(body, "run_id", "run_uuid")
    tracking.update_run(store, run_id, body.get("status"), body.get("end_time"), body.get("run_name"))
    return {"run_info": messages.run_info(store.get_run(run_id))}


@router.post(f"{API}/runs/delete")
def delete_run(store: WRITE, body: BODY) -> Any:
    runs.delete_run(store.db, _need(body, "run_id"))
    return {}


@router.post(f"{API}/runs/restore")
def restore_run(store: WRITE, body: BODY) -> Any:
    runs.restore_run(store.db, _need(body, "run_id"))
    return {}


@router.post(f"{API}/runs/log-metric")
def log_metric(store: WRITE, body: BODY) -> Any:
    run_id = _need(body, "run_id", "run_uuid")
    tracking.log_batch(store, run_id, [body], None, None)
    return {}


@router.post(f"{API}/runs/log-parameter")
def log_param(store: WRITE, body: BODY) -> Any:
    tracking.log_batch(store, _need(body, "run_id", "run_uuid"), None, [body], None)
    return {}


@router.post(f"{API}/runs/set-tag")
def set_tag(store: WRITE, body: BODY) -> Any:
    tracking.log_batch(store, _need(body, "run_id", "run_uuid"), None, None, [body])
    return {}


@router.post(f"{API}/runs/delete-tag")
def delete_tag(store: WRITE, body: BODY) -> Any:
    runs.delete_tag(store.db, _need(body, "run_id"), _need(body, "key"))
    return {}


@router.post(f"{API}/runs/log-batch")
def log_batch(store: WRITE, body: BODY) -> Any:
    tracking.log_batch(store, _need(body, "run_id"), body.get("metrics"), body.get("params"), body.get("tags"))
    return {}


@router.post(f"{API}/runs/log-inputs")
def log_inputs(store: WRITE, body: BODY) -> Any:
    datasets.log_inputs(store, _need(body, "run_id"), body.get("datasets"))
    return {}


@router.post(f"{API}/runs/outputs")
def log_outputs(store: WRITE, body: BODY) -> Any:
    run_id = _need(body, "run_id")
    produced = set(logged_models.of_run(store, run_id))
    for output in body.get("models") or []:
        if output.get("model_id") not in produced:
            raise errors.UnsupportedError("mlkeep links a logged model only to the run that logged it "
                                          f"({output.get('model_id')!r} was not logged by run {run_id}).")
    return {}


@router.post(f"{API}/runs/log-model")
def log_model_history(store: WRITE, body: BODY) -> Any:
    """MLflow 2's model history tag; kept as the run's `mlflow.log-model.history` tag would be, in a tag."""
    run_id = _need(body, "run_id")
    runs.set_tags(store.db, run_id, {"mlflow.log-model.history": str(body.get("model_json", ""))})
    return {}


@router.post(f"{API}/runs/search")
def search_runs(store: READ, body: BODY) -> Any:
    ids = [tracking.experiment_id(store, e) for e in _list(body.get("experiment_ids"))]
    size = filters.page_size(body.get("max_results"), 1000, MAX_RUNS_PAGE)
    offset = filters.offset_of(body.get("page_token"))
    found = search_run_ids(store.db, filters.run_filter(body.get("filter")),
                           order_by=filters.order_by(_list(body.get("order_by"))), limit=offset + size + 1,
                           experiments=ids or None, stage=filters.view_stage(body.get("run_view_type")))
    chunk, token = filters.page(found, offset, size)
    return Response(search_answer(store.db, chunk, token), media_type="application/json")


@router.get(f"{API}/metrics/get-history")
def get_metric_history(store: READ, body: BODY) -> Any:
    run_id = _need(body, "run_id", "run_uuid")
    runs.require_run(store.db, run_id)
    points = store.get_metric_history(run_id, _need(body, "metric_key"))
    size = filters.page_size(body.get("max_results"), 10_000_000, 10_000_000)
    chunk, token = filters.page(points, filters.offset_of(body.get("page_token")), size)
    return {"metrics": [messages.metric(m, run_id) for m in chunk], **({"next_page_token": token} if token else {})}


# -- logged models (MLflow 3) ----------------------------------------------------------------------------
@router.post(f"{API}/logged-models")
def create_logged_model(store: WRITE, body: BODY) -> Any:
    return {"model": logged_models.create(store, body)}


@router.post(f"{API}/logged-models/search")
def search_logged_models(store: READ, body: BODY) -> Any:
    if body.get("datasets") or body.get("order_by"):
        raise errors.UnsupportedError("mlkeep's MLflow API searches logged models without datasets or order_by.")
    found = logged_models.search(store, _list(body.get("experiment_ids")), body.get("filter"))
    size = filters.page_size(body.get("max_results"), 100, 10_000)
    chunk, token = filters.page(found, filters.offset_of(body.get("page_token")), size)
    return {"models": chunk, **({"next_page_token": token} if token else {})}


@router.get(API + "/logged-models/{model_id}")
def get_logged_model(model_id: str, store: READ) -> Any:
    return {"model": logged_models.get(store, model_id)}


@router.patch(API + "/logged-models/{model_id}")
def finalize_logged_model(model_id: str, store: WRITE, body: BODY) -> Any:
    return {"model": logged_models.finalize(store, model_id, str(_need(body, "status")))}


@router.patch(API + "/logged-models/{model_id}/tags")
def set_logged_model_tags(model_id: str, store: WRITE, body: BODY) -> Any:
    return {"model": logged_models.set_tags(store, model_id, tracking.pairs(body.get("tags"), "tag"))}


@router.delete(API + "/logged-models/{model_id}/tags/{key:path}")
def delete_logged_model_tag(model_id: str, key: str, store: WRITE) -> Any:
    logged_models.delete_tag(store, model_id, key)
    return {}


@router.post(API + "/logged-models/{model_id}/params")
def log_logged_model_params(model_id: str, store: WRITE, body: BODY) -> Any:
    logged_models.log_params(store, model_id, tracking.pairs(body.get("params"), "param"))
    return {}


# -- artifacts -----------------------------------------------------------------------------------------------
@router.put(ARTIFACTS + "/artifacts/{path:path}")
async def upload_artifact(path: str, request: Request, store: WRITE) -> Any:
    import anyio

    tmp = tempfile.NamedTemporaryFile(prefix="mlkeep-mlflow-", delete=False)
    try:
        with tmp:
            async for chunk in request.stream():
                tmp.write(chunk)
        await anyio.to_thread.run_sync(artifacts.upload, store, path, tmp.name)
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    return {}


@router.get(ARTIFACTS + "/artifacts/{path:path}")
def download_artifact(path: str, store: READ) -> Any:
    file, name = artifacts.fetch(store, path)
    return FileResponse(file, media_type="application/octet-stream", filename=name,
                        background=BackgroundTask(shutil.rmtree, file.parent, True))


@router.get(ARTIFACTS + "/artifacts")
def list_proxied_artifacts(store: READ, path: str = "") -> Any:
    run_id, rel = artifacts.locate(path)
    return {"files": artifacts.listing(store, run_id, rel)}


@router.get(f"{API}/artifacts/list")
def list_artifacts(store: READ, body: BODY) -> Any:
    run_id = _need(body, "run_id", "run_uuid")
    rel = str(body.get("path") or "")
    files = artifacts.listing(store, run_id, artifacts.locate(f"runs/{run_id}/{rel}")[1])
    return {"root_uri": messages.run_artifact_uri(run_id),
            "files": [{**f, "path": f"{rel.strip('/')}/{f['path']}" if rel.strip("/") else f["path"]}
                      for f in files]}


# -- model registry ----------------------------------------------------------------------------------------
@router.post(f"{API}/registered-models/create")
def create_registered_model(store: WRITE, body: BODY) -> Any:
    tags = tracking.pairs(body.get("tags"), "tag")
    return {"registered_model": registry.create_model(store, _need(body, "name"), body.get("description"), tags)}


@router.get(f"{API}/registered-models/get")
def get_registered_model(store: READ, body: BODY) -> Any:
    return {"registered_model": registry.registered_model(store, _need(body, "name"))}


@router.get(f"{API}/registered-models/search")
def search_registered_models(store: READ, body: BODY) -> Any:
    found = [registry.registered_model(store, rm.name) for rm in store.registry.search(registry.model_filter(body.get("filter")))]
    size = filters.page_size(body.get("max_results"), 100, 10_000)
    chunk, token = filters.page(found, filters.offset_of(body.get("page_token")), size)
    return {"registered_models": chunk, **({"next_page_token": token} if token else {})}


@router.patch(f"{API}/registered-models/update")
def update_registered_model(store: WRITE, body: BODY) -> Any:
    store.registry.update_model(_need(body, "name"), description=body.get("description"))
    return {"registered_model": registry.registered_model(store, body["name"])}


@router.post(f"{API}/registered-models/set-tag")
def set_registered_model_tag(store: WRITE, body: BODY) -> Any:
    store.registry.update_model(_need(body, "name"), tags={_need(body, "key"): str(body.get("value", ""))})
    return {}


@router.post(f"{API}/registered-models/get-latest-versions")
def get_latest_versions(store: READ, body: BODY) -> Any:
    latest = registry.latest_versions(store, _need(body, "name"), _list(body.get("stages")))
    return {"model_versions": [messages.model_version(v) for v in latest]}


@router.post(f"{API}/registered-models/rename")
def rename_registered_model(store: WRITE, body: BODY) -> Any:
    rm = store.registry.rename(_need(body, "name"), _need(body, "new_name"))
    return {"registered_model": registry.registered_model(store, rm.name)}


@router.delete(f"{API}/registered-models/delete")
def delete_registered_model(store: WRITE, body: BODY) -> Any:
    store.registry.delete(_need(body, "name"))
    return {}


@router.delete(f"{API}/registered-models/delete-tag")
def delete_registered_model_tag(store: WRITE, body: BODY) -> Any:
    store.registry.update_model(_need(body, "name"), tags={_need(body, "key"): ""})  # an empty value deletes
    return {}


@router.post(f"{API}/registered-models/alias")
def set_alias(store: WRITE, body: BODY) -> Any:
    store.registry.set_alias(_need(body, "name"), _need(body, "alias"),
                             registry.version_number(_need(body, "version")))
    return {}


@router.delete(f"{API}/registered-models/alias")
def delete_alias(store: WRITE, body: BODY) -> Any:
    store.registry.delete_alias(_need(body, "name"), _need(body, "alias"))
    return {}


@router.get(f"{API}/registered-models/alias")
def get_version_by_alias(store: READ, body: BODY) -> Any:
    version = store.registry.resolve(f"models:/{_need(body, 'name')}@{_need(body, 'alias')}")
    return {"model_version": messages.model_version(version)}


@router.post(f"{API}/model-versions/create")
def create_model_version(store: WRITE, body: BODY) -> Any:
    _need(body, "name")
    return {"model_version": registry.create_version(store, body, tracking.pairs(body.get("tags"), "tag"))}


@router.get(f"{API}/model-versions/get")
def get_model_version(store: READ, body: BODY) -> Any:
    v = store.registry.get_version(_need(body, "name"), registry.version_number(_need(body, "version")))
    return {"model_version": messages.model_version(v)}


@router.patch(f"{API}/model-versions/update")
def update_model_version(store: WRITE, body: BODY) -> Any:
    v = store.registry.update_version(_need(body, "name"), registry.version_number(_need(body, "version")),
                                      description=body.get("description"))
    return {"model_version": messages.model_version(v)}


@router.post(f"{API}/model-versions/set-tag")
def set_model_version_tag(store: WRITE, body: BODY) -> Any:
    store.registry.update_version(_need(body, "name"), registry.version_number(_need(body, "version")),
                                  tags={_need(body, "key"): str(body.get("value", ""))})
    return {}


@router.delete(f"{API}/model-versions/delete-tag")
def delete_model_version_tag(store: WRITE, body: BODY) -> Any:
    store.registry.update_version(_need(body, "name"), registry.version_number(_need(body, "version")),
                                  tags={_need(body, "key"): ""})  # an empty value deletes
    return {}


@router.delete(f"{API}/model-versions/delete")
def delete_model_version(store: WRITE, body: BODY) -> Any:
    store.registry.delete_version(_need(body, "name"), registry.version_number(_need(body, "version")))
    return {}


@router.post(f"{API}/model-versions/transition-stage")
def transition_model_version_stage(store: WRITE, body: BODY) -> Any:
    v = registry.transition_stage(store, _need(body, "name"), registry.version_number(_need(body, "version")),
                                  _need(body, "stage"))
    return {"model_version": messages.model_version(v)}


@router.get(f"{API}/model-versions/search")
def search_model_versions(store: READ, body: BODY) -> Any:
    found = [messages.model_version(v) for v in registry.search_versions(store, body.get("filter"))]
    size = filters.page_size(body.get("max_results"), 10_000, 200_000)
    chunk, token = filters.page(found, filters.offset_of(body.get("page_token")), size)
    return {"model_versions": chunk, **({"next_page_token": token} if token else {})}


@router.get(f"{API}/model-versions/get-download-uri")
def get_model_version_download_uri(store: READ, body: BODY) -> Any:
    uri = registry.download_uri(store, _need(body, "name"), registry.version_number(_need(body, "version")))
    return {"artifact_uri": uri}


# -- everything else ------------------------------------------------------------------------------------------
_UNSUPPORTED = {
    "traces": "tracing (GenAI traces)",
}


@router.api_route(API + "/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"], include_in_schema=False)
@router.api_route(ARTIFACTS + "/{rest:path}", methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
                  include_in_schema=False)
def unsupported(rest: str, request: Request) -> Any:
    """Any other MLflow call: a clear NOT_IMPLEMENTED, never a 404 page or a 500."""
    what = next((v for k, v in _UNSUPPORTED.items() if rest.startswith(k)), f"{request.method} {request.url.path}")
    raise errors.UnsupportedError(f"mlkeep's MLflow API does not support {what}.")
