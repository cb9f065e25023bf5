"""Model repositories: refs, log, diff, checkout as a file, and commits uploaded as safetensors files."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse

from mlkeep.server.app import CTX, JSON
from mlkeep.server.schemas import MAX_INDEX
from mlkeep.server.services import repositories as repos
from mlkeep.server.routes.artifacts import _file

router = APIRouter(tags=["repositories"])
# A ref is a branch, tag, commit id (prefix) or `main~2`: printable text, no control characters.
REF_TEXT = r"^[^\x00-\x1f\x7f]+$"
Ref = Annotated[str, Query(pattern=REF_TEXT, description="A branch, tag, commit id (prefix) or `main~2`.")]


@router.get("/repositories")
def repositories(ctx: CTX) -> Any:
    """Every repository with its branches and tags."""
    return repos.repositories(ctx.store, ctx.principal)


@router.get("/repositories/{name}/log")
def log(name: str, ctx: CTX, ref: Ref = "main",
        limit: Annotated[Optional[int], Query(ge=1, le=MAX_INDEX)] = None) -> Any:
    """Commits reachable from `ref`, newest first."""
    return repos.repository(ctx.store, ctx.principal, name).log(ref, limit=limit)


@router.get("/repositories/{name}/refs")
def refs(name: str, ctx: CTX) -> Any:
    repo = repos.repository(ctx.store, ctx.principal, name)
    return {"branches": repo.branches(), "tags": repo.tags()}


@router.get("/repositories/{name}/commits/{ref}")
def get_commit(name: str, ref: Annotated[str, Path(pattern=REF_TEXT)], ctx: CTX) -> Any:
    """The commit a branch, tag, id prefix or `main~2` names."""
    return repos.repository(ctx.store, ctx.principal, name).get(ref)


@router.get("/repositories/{name}/diff")
def diff(name: str, a: Ref, ctx: CTX, b: Ref = "main") -> Any:
    """Tensors added, removed, reshaped or changed (fraction, L2, max |Δ|), and metadata differences."""
    return repos.repository(ctx.store, ctx.principal, name).diff(a, b)


@router.get("/repositories/{name}/checkout", response_class=FileResponse)
def checkout(name: str, ctx: CTX, ref: Ref = "main") -> FileResponse:
    """The version as a `.safetensors` file (`.pkl` for scikit-learn), verified bit for bit first."""
    file, filename = repos.checkout_file(ctx.store, ctx.principal, name, ref)
    return _file(file, filename, False)


@router.put("/repositories/{name}/commits", status_code=201)
async def commit(
    name: str,
    request: Request,
    ctx: CTX,
    message: str = "",
    branch: Ref = "main",
    run_id: Optional[str] = None,
    datasets: Annotated[Optional[list[str]], Query(description="Ids of logged datasets; repeatable.")] = None,
    code: Annotated[Optional[list[str]], Query(description="The client's code reference as `key=value`.")] = None,
) -> Any:
    """Commit the body (a `.safetensors` file, streamed) onto `branch`; 409 CONFLICT if the branch moved."""
    return JSON(await repos.commit_upload(
        ctx.store, ctx.principal, name, request.stream(), message=message, branch=branch, run_id=run_id,
        datasets=datasets or [], code=repos.code_pairs(code)), status_code=201)
