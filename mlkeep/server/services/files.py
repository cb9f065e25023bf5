"""Temporary files that uploads and downloads stream through, so no body sits whole in memory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mlkeep.store import Store

T = TypeVar("T")


async def spooled(chunks: AsyncIterable[bytes], then: Callable[[str], T]) -> T:
    """Write a request body to a temporary file as it arrives, run `then(path)` in a worker thread, delete it."""
    import anyio

    tmp = tempfile.NamedTemporaryFile(prefix="mlkeep-upload-", delete=False)
    try:
        with tmp:
            async for chunk in chunks:
                tmp.write(chunk)
        return await anyio.to_thread.run_sync(then, tmp.name)
    finally:
        Path(tmp.name).unlink(missing_ok=True)  # `then` may have moved it into place


def temp_file(name: str, write: Callable[[Path], object], prefix: str = "mlkeep-download-") -> Path:
    """`write(path)` into a fresh temporary folder; the caller deletes `path.parent` (nothing is left on error)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        write(folder / name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / name


def object_file(store: Store, oid: str) -> Path:
    """A verified temporary copy of a blob (the caller deletes its folder)."""
    return temp_file("object", lambda target: store.objects.get_file(oid, target))
