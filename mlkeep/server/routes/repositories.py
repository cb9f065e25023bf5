"""Model repositories: refs, log, diff, and checkout as a file."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from mlkeep.server import service
from mlkeep.server.app import CTX
from mlkeep.server.routes.artifacts import _file

router = APIRouter(tags=["repositories"])


@router.get("/repositories")
def repositories(ctx: CTX) -> Any:
    """Every repository with its branches and tags."""
    return service.repositories(ctx.store, ctx.principal)


@router.get("/repositories/{name}/log")
def log(name: str, ctx: CTX, ref: str = "main", limit: Annotated[Optional[int], Query(ge=1)] = None) -> Any:
    """Commits reachable from `ref`, newest first."""
    return service.repository(ctx.store, ctx.principal, name).log(ref, limit=limit)


@router.get("/repositories/{name}/refs")
def refs(name: str, ctx: CTX) -> Any:
    repo = service.repository(ctx.store, ctx.principal, name)
    return {"branches": repo.branches(), "tags": repo.tags()}


@router.get("/repositories/{name}/commits/{ref}")
def get_commit(name: str, ref: str, ctx: CTX) -> Any:
    """The commit a branch, tag, id prefix or `main~2` names."""
    return service.repository(ctx.store, ctx.principal, name).get(ref)


@router.get("/repositories/{name}/diff")
def diff(name: str, a: str, ctx: CTX, b: str = "main") -> Any:
    """Tensors added, removed, reshaped or changed (fraction, L2, max |Δ|), and metadata differences."""
    return service.repository(ctx.store, ctx.principal, name).diff(a, b)


@router.get("/repositories/{name}/checkout", response_class=FileResponse)
def checkout(name: str, ctx: CTX, ref: str = "main") -> FileResponse:
    """The version as a `.safetensors` file (`.pkl` for scikit-learn), verified bit for bit first."""
    file, filename = service.checkout_file(ctx.store, ctx.principal, name, ref)
    return _file(file, filename, False)
