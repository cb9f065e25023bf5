"""Artifacts and blobs, streamed both ways: a large file never sits in memory."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from mlkeep.server.services import artifacts
from mlkeep.server.app import CTX
from mlkeep.server.schemas import ObjectOut
from mlkeep.tracking.entities import Artifact

router = APIRouter(tags=["artifacts"])


@router.get("/runs/{run_id}/artifacts", response_model=list[Artifact])
def list_artifacts(run_id: str, ctx: CTX, path: str = "") -> Any:
    """Artifacts of the run under folder `path`."""
    return artifacts.list_artifacts(ctx.store, ctx.principal, run_id, path)


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=FileResponse)
def download_artifact(run_id: str, path: str, ctx: CTX, inline: bool = False) -> FileResponse:
    """The artifact's bytes, verified against their hash before the first byte is sent."""
    file, name = artifacts.artifact_file(ctx.store, ctx.principal, run_id, path)
    return _file(file, name, inline)


@router.put("/runs/{run_id}/artifacts/{path:path}", response_model=list[Artifact], status_code=201)
async def upload_artifact(run_id: str, path: str, request: Request, ctx: CTX) -> Any:
    """Store the request body (streamed, any size) as artifact `path` of a RUNNING run."""
    return await artifacts.log_artifact_async(ctx.store, ctx.principal, run_id, path, request.stream())


@router.put("/objects", response_model=ObjectOut, status_code=201)
async def put_object(request: Request, ctx: CTX) -> Any:
    """Store the body as a content-addressed blob (e.g. a model or dataset before it is recorded)."""
    oid, size = await artifacts.put_object_async(ctx.store, ctx.principal, request.stream())
    return {"id": oid, "size": size}


def _file(file: Any, name: str, inline: bool) -> FileResponse:
    import mimetypes

    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(file, media_type=media, filename=name, content_disposition_type="inline" if inline else
                        "attachment", background=BackgroundTask(shutil.rmtree, file.parent, True))
