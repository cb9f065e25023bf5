"""Where a store lives: resolving a URI to a metadata database and an object store.

A store is a metadata database URL plus an object store URL. The forms a user
may give:

- a folder: `PATH/.mlkeep` or a folder that contains one (`mlkeep init PATH`),
  whose database is `mlkeep.db` and objects are `objects/` inside it;
- `memory://`: a private in-memory store (tests, notebooks);
- `sqlite:///file.db` or `postgresql://...`, with `objects=` an fsspec URL
  (a folder, `s3://bucket/prefix`, ...) or else `MLKEEP_OBJECTS`;
- a folder whose `config.json` names `database` and `objects` URLs: a team's
  PostgreSQL + S3 store, found by walking up like any other.

`find()` implements the lookup order of `mlkeep.open()`: explicit URI, then
`MLKEEP_URI`, then a `.mlkeep/` folder found by walking up from the working
directory, as git finds `.git`.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from mlkeep.errors import InvalidInputError, StoreExistsError, StoreNotFoundError

FOLDER = ".mlkeep"
CONFIG = "config.json"
FORMAT = 1


@dataclass(frozen=True)
class Location:
    """The two URLs of a store, plus its folder when it has one."""

    database: str
    objects: str
    folder: Path | None = None

    @property
    def uri(self) -> str:
        return str(self.folder) if self.folder else self.database


def find(uri: str | os.PathLike[str] | None = None, *, objects: str | None = None) -> Location:
    """Resolve `uri` (or the environment, or the working directory) to a Location."""
    if uri is None:
        uri = os.environ.get("MLKEEP_URI") or None
    if uri is None:
        folder = _walk_up(Path.cwd())
        if folder is None:
            raise StoreNotFoundError(
                f"No mlkeep store in {Path.cwd()} or any parent folder, and MLKEEP_URI is not set. "
                "Create one with `mlkeep init`."
            )
        return _from_folder(folder)
    uri = os.fspath(uri)
    if uri == "memory://":
        return Location("sqlite://", f"memory://mlkeep-{uuid.uuid4().hex}")
    if uri.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        objects = objects or os.environ.get("MLKEEP_OBJECTS") or None
        if objects is None:
            raise InvalidInputError(
                f"A database URL needs an object store URL too: open({_safe(uri)!r}, objects='...') "
                "or MLKEEP_OBJECTS."
            )
        return Location(uri, objects)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    path = Path(uri).expanduser().resolve()
    for candidate in (path, path / FOLDER):
        if (candidate / CONFIG).is_file():
            return _from_folder(candidate)
    raise StoreNotFoundError(f"No mlkeep store at {path}. Create one with `mlkeep init {uri}`.")


def create(path: str | os.PathLike[str] = ".") -> Location:
    """Make `PATH/.mlkeep/` with its config and object folder; the database comes next."""
    root = Path(path).expanduser().resolve()
    folder = root if root.name == FOLDER else root / FOLDER
    if (folder / CONFIG).exists():
        raise StoreExistsError(f"{folder} already holds an mlkeep store; open it with mlkeep.open({str(root)!r}).")
    (folder / "objects").mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CONFIG}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT}, indent=2) + "\n")
    os.replace(tmp, folder / CONFIG)
    return _from_folder(folder)


def _from_folder(folder: Path) -> Location:
    config = json.loads((folder / CONFIG).read_text())
    database = config.get("database") or f"sqlite:///{folder / 'mlkeep.db'}"
    objects = config.get("objects") or str(folder / "objects")
    return Location(database, objects, folder)


def _walk_up(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / FOLDER / CONFIG).is_file():
            return folder / FOLDER
    return None


def _safe(url: str) -> str:
    """A database URL with any password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
