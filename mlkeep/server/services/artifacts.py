"""Artifacts and blobs, streamed both ways through temporary files."""

from __future__ import annotations

from collections.abc import AsyncIterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.server.services.access import check_run, writable_run
from mlkeep.server.services.files import spooled, temp_file

if TYPE_CHECKING:
    from mlkeep.store import Store


def log_artifact_file(store: Store, principal: Principal, run_id: str, path: str, file: str) -> list[Any]:
    """Store (and consume) a local file as artifact `path` of a RUNNING run; a folder part of `path` is kept."""
    import shutil
    import tempfile

    from mlkeep.tracking import artifacts

    writable_run(store, principal, run_id)
    rel = artifacts.safe_relpath(path)
    if not rel:
        raise InvalidInputError("An uploaded artifact needs a file name.")
    folder, _, name = rel.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mlkeep-upload-") as tmp:
        target = Path(tmp) / name
        shutil.move(file, target)  # the artifact takes its name from the file: a rename, not a copy
        return artifacts.log_artifact(store.db, store.objects, run_id, target, folder or None)


async def log_artifact_async(store: Store, principal: Principal, run_id: str, path: str,
                             chunks: AsyncIterable[bytes]) -> list[Any]:
    """Store a request body as artifact `path` of the run, spooled to disk as it arrives."""
    import anyio

    await anyio.to_thread.run_sync(writable_run, store, principal, run_id)
    return await spooled(chunks, lambda file: log_artifact_file(store, principal, run_id, path, file))


def artifact_file(store: Store, principal: Principal, run_id: str, path: str) -> tuple[Path, str]:
    """A verified temporary copy of one artifact (the caller deletes its folder) and its file name."""
    from mlkeep.tracking import artifacts

    check_run(store, principal, run_id)
    rel = artifacts.safe_relpath(path)
    found = [a for a in store.list_artifacts(run_id, rel) if a.path == rel]
    if not found:
        raise NotFoundError(f"Run {run_id} has no artifact {path!r}.")
    target = temp_file("artifact", lambda t: store.objects.get_file(found[0].object, t))
    return target, rel.rsplit("/", 1)[-1]


def list_artifacts(store: Store, principal: Principal, run_id: str, path: str = "") -> list[Any]:
    check_run(store, principal, run_id)
    return store.list_artifacts(run_id, path)


async def put_object_async(store: Store, principal: Principal, chunks: AsyncIterable[bytes]) -> tuple[str, int]:
    """Store a streamed blob (content-addressed: the id is its SHA-256); returns (id, size)."""
    principal.require("write")
    return await spooled(chunks, store.objects.put_file)
