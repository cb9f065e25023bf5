"""The FastAPI app: routers per domain, errors as JSON, the web UI as static files."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlkeep import __version__
from mlkeep.access import LOCAL, Principal, verify_token
from mlkeep.errors import InvalidInputError, MlkeepError
from mlkeep.tracking.entities import Entity

if TYPE_CHECKING:
    from mlkeep.store import Store

log = logging.getLogger(__name__)
UI = Path(__file__).with_name("ui")


class JSON(JSONResponse):
    """JSON with entities as their dicts and NaN/infinity as null (JSON has no NaN).

    The C encoder writes the content as it is, asking `_plain` only for
    entities; walking it in Python first (`jsonable`) cost more than encoding
    it (a 100,000-point history: 300,000 calls). Only content holding a NaN or
    an infinity, which the encoder refuses, is walked, to turn them into null.
    """

    def render(self, content: Any) -> bytes:
        try:
            return _dumps(content)
        except ValueError:  # a NaN or an infinity somewhere
            return _dumps(jsonable(content))


def _dumps(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    """What the encoder writes for a value it does not know: an entity's fields, else `to_dict()`, as `jsonable`."""
    names = _entity_fields(type(value))
    if names is not None:
        return {n: getattr(value, n) for n in names}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types; NaN and infinities become null.

    A page of runs is thousands of small values, so the common types are
    dispatched on their exact type first, and entities that keep the default
    `Entity.to_dict` are walked field by field instead of through
    `dataclasses.asdict` (which deep-copies every leaf only for this function
    to copy it again): on a page of 50 runs that was most of the request.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else None
    if t is dict:
        return {k: jsonable(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [jsonable(v) for v in value]
    names = _entity_fields(t)
    if names is not None:
        return {n: jsonable(getattr(value, n)) for n in names}
    if isinstance(value, float):  # numpy floats and other subclasses
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # as `asdict` did inside an entity
        return jsonable(dataclasses.asdict(value))
    return value


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _entity_fields(cls: type) -> tuple[str, ...] | None:
    """The field names of an entity whose `to_dict` is `Entity`'s own (a plain field walk); else None."""
    if cls not in _FIELDS:
        plain = getattr(cls, "to_dict", None) is Entity.to_dict
        _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)) if plain else None
    return _FIELDS[cls]


@dataclass(frozen=True)
class Ctx:
    """What every route gets: the store and who is asking."""

    store: Store
    principal: Principal


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def create_app(store: Store, auth: bool = False) -> FastAPI:
    app = FastAPI(
        title="mlkeep", version=__version__, default_response_class=JSON,
        description="Runs, metrics, artifacts, datasets, models, predictions, evaluations, lineage, search, model "
                    "repositories, the model registry and intermediates of one mlkeep store. "
                    "Errors are `{\"error\": {\"code\", \"message\"}}`.",
    )
    app.state.store = store
    app.state.auth = auth

    @app.exception_handler(MlkeepError)
    async def mlkeep_error(request: Request, exc: MlkeepError) -> JSON:
        position = getattr(exc, "position", None)
        extra = {"position": position} if position is not None else {}
        if getattr(exc, "tensors", None):
            extra["tensors"] = exc.tensors  # type: ignore[attr-defined]
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSON(error_body(exc.code, str(exc), **extra), status_code=exc.http_status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return JSON(error_body(MlkeepError.code, f"Internal error: {type(exc).__name__}: {exc}"), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSON:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSON(error_body(InvalidInputError.code, f"{where}: {first.get('msg', 'invalid request')}"),
                    status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return JSON(error_body(code, str(exc.detail)), status_code=exc.status_code)

    from mlkeep.server.routes import (
        artifacts, entities, experiments, intermediates, lineage, monitoring, registry, repositories, runs, search,
        tokens,
    )

    for module in (experiments, runs, artifacts, search, entities, lineage, repositories, registry, intermediates,
                   monitoring, tokens):
        app.include_router(module.router, prefix="/api")
    from mlkeep.compat.mlflow.routes import mount as mount_mlflow  # the MLflow REST API, for its client

    mount_mlflow(app)

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "auth": auth}

    @app.get("/api/whoami", tags=["server"])
    def whoami(ctx: Annotated[Ctx, Depends(current)]) -> dict[str, Any]:
        return ctx.principal.to_dict()

    app.mount("/ui", StaticFiles(directory=UI), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(UI / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/ui/favicon.svg")

    return app


bearer = HTTPBearer(auto_error=False, description="A token from `mlkeep token create` (only with --auth).")


async def current(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Ctx:
    """The store and the principal of a request: everyone is the local admin unless auth is on.

    Async so that FastAPI does not send it to a worker thread: without auth it
    does no I/O, and a thread hop per request costs more than the rest of a
    small request on a busy machine. Checking a token reads the database, so
    that is done on a worker thread.
    """
    store = request.app.state.store
    if not request.app.state.auth:
        return Ctx(store, LOCAL)
    principal = await run_in_threadpool(verify_token, store, credentials.credentials if credentials else None)
    return Ctx(store, principal)


CTX = Annotated[Ctx, Depends(current)]
