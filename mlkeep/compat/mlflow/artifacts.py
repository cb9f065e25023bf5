"""The `mlflow-artifacts` proxy over mlkeep's run artifacts.

Proxy paths are `runs/RUN_ID/PATH` (see `messages.run_artifact_uri`); PATH
is checked by `safe_relpath`, so nothing outside the run's artifacts is
reachable. Uploads are spooled to a temporary file, never held in memory.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep.compat.mlflow.messages import RUNS_ROOT
from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.tracking import artifacts, runs

if TYPE_CHECKING:
    from mlkeep.store import Store


def locate(path: str) -> tuple[str, str]:
    """(run id, artifact path inside the run) of a proxy path."""
    parts = (path or "").strip("/").split("/", 2)
    if len(parts) < 2 or parts[0] != RUNS_ROOT or not parts[1]:
        raise NotFoundError(f"mlkeep serves artifacts under {RUNS_ROOT}/RUN_ID/, not at {path!r}.")
    return parts[1], artifacts.safe_relpath(parts[2] if len(parts) == 3 else "")


def upload(store: Store, path: str, spooled: str) -> None:
    """Store the spooled file as the artifact at proxy path `path`."""
    run_id, rel = locate(path)
    if not rel:
        raise InvalidInputError("An uploaded artifact needs a file name.")
    runs.require_run(store.db, run_id)
    folder, _, name = rel.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mlkeep-mlflow-") as tmp:
        target = Path(tmp) / name
        shutil.move(spooled, target)
        artifacts.log_artifact(store.db, store.objects, run_id, target, folder or None)


def listing(store: Store, run_id: str, rel: str) -> list[dict[str, Any]]:
    """The files and folders directly inside folder `rel` of the run, as MLflow FileInfo (paths relative to `rel`)."""
    runs.require_run(store.db, run_id)
    found = artifacts.list_artifacts(store.db, run_id, rel)
    if len(found) == 1 and found[0].path == rel:  # a file, not a folder: MLflow lists nothing
        return []
    children: dict[str, dict[str, Any]] = {}
    for art in found:
        inner = posixpath.relpath(art.path, rel) if rel else art.path
        head, sep, _ = inner.partition("/")
        if sep:
            children.setdefault(head, {"path": head, "is_dir": True})
        else:
            children[head] = {"path": head, "is_dir": False, "file_size": art.size}
    return [children[k] for k in sorted(children)]


def fetch(store: Store, path: str) -> tuple[Path, str]:
    """A verified temporary copy of the artifact at proxy path `path` (the caller removes its folder), and its name."""
    run_id, rel = locate(path)
    found = [a for a in artifacts.list_artifacts(store.db, run_id, rel) if a.path == rel]
    if not found:
        raise NotFoundError(f"Run {run_id} has no artifact {rel!r}.")
    folder = Path(tempfile.mkdtemp(prefix="mlkeep-mlflow-"))
    try:
        store.objects.get_file(found[0].object, folder / "artifact")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "artifact", posixpath.basename(rel)
