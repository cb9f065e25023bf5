"""Artifacts: files and folders a run produced, stored as blobs and indexed by path.

An artifact path is a relative POSIX path inside the run; anything that would
climb out of it (`..`, an absolute path, a drive letter) is refused.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlkeep.errors import InvalidInputError, NotFoundError, UnsafePathError
from mlkeep.metadata import Database
from mlkeep.metadata.tables import artifacts
from mlkeep.metadata.upsert import insert_for
from mlkeep.objects import ObjectStore
from mlkeep.tracking.entities import Artifact


def safe_relpath(path: str) -> str:
    """`path` normalised to a relative POSIX path that stays inside its root."""
    if not isinstance(path, str):
        raise InvalidInputError(f"An artifact path must be a string, not {path!r}.")
    p = path.replace("\\", "/")
    norm = posixpath.normpath(p) if p else ""
    if p.startswith("/") or (len(p) > 1 and p[1] == ":") or norm == ".." or norm.startswith("../"):
        raise UnsafePathError(f"Artifact path {path!r} leaves the run's artifact folder; use a relative path without '..'.")
    return "" if norm == "." else norm


def log_artifact(
    db: Database, objects: ObjectStore, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None
) -> list[Artifact]:
    """Store a file or a folder's files (recursively) under `artifact_path`; one transaction indexes them."""
    src = Path(path)
    if not src.exists():
        raise NotFoundError(f"Cannot log artifact {str(src)!r}: no such file or folder.")
    prefix = safe_relpath(artifact_path or "")
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file())
        names = [posixpath.join(prefix, src.name if not prefix else "", p.relative_to(src).as_posix()) for p in files]
        names = [safe_relpath(n.lstrip("/")) for n in names]
    else:
        files = [src]
        names = [posixpath.join(prefix, src.name) if prefix else src.name]
    rows: list[dict[str, Any]] = []
    for file, name in zip(files, names):
        oid, size = objects.put_file(file)
        rows.append({"run_id": run_id, "path": name, "object": oid, "size": size})
    with db.begin() as conn:
        if rows:
            stmt = insert_for(conn)(artifacts)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id", "path"], set_={"object": stmt.excluded.object, "size": stmt.excluded.size}
                ),
                rows,
            )
    return [Artifact(**r) for r in rows]


def list_artifacts(db: Database, run_id: str, prefix: str = "") -> list[Artifact]:
    """Artifacts of a run whose path starts with the folder `prefix`."""
    prefix = safe_relpath(prefix)
    query = select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.path)
    if prefix:
        query = query.where((artifacts.c.path == prefix) | artifacts.c.path.startswith(prefix + "/", autoescape=True))
    with db.connect() as conn:
        return [Artifact(**r._asdict()) for r in conn.execute(query).all()]


def download_artifacts(
    db: Database, objects: ObjectStore, run_id: str, dest: str | os.PathLike[str], path: str = ""
) -> list[Path]:
    """Write the artifacts under `path` into folder `dest`, verified; returns the written files."""
    found = list_artifacts(db, run_id, path)
    if not found:
        raise NotFoundError(f"Run {run_id} has no artifact at {path!r}.")
    out = []
    root = Path(dest).resolve()
    for art in found:
        target = (root / safe_relpath(art.path)).resolve()
        if root != target and root not in target.parents:
            raise UnsafePathError(f"Artifact {art.path!r} would be written outside {root}.")
        objects.get_file(art.object, target)
        out.append(target)
    return out
