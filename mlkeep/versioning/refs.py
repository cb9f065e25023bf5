"""Branches and tags: the only mutable state of a repository.

A branch head moves by compare-and-swap (`UPDATE ... WHERE commit_id =
expected`): when two writers commit to one branch at once, one wins and the
other gets `ConflictError` naming the new head — a commit is never silently
dropped. Tags never move.
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from mlkeep.errors import ConflictError, InvalidInputError, NotFoundError
from mlkeep.metadata.tables import refs

BRANCH, TAG = "branch", "tag"


def check_ref_name(name: str) -> str:
    bad = not isinstance(name, str) or not name or name.startswith(("-", "/")) or ".." in name
    if bad or any(c in name for c in " ~^:?*[\\") or len(name) > 250 or not name.isprintable():
        raise InvalidInputError(f"{name!r} is not a valid branch or tag name (no spaces, '~', '^', ':' or '..').")
    return name


def get_ref(conn: Connection, repo_id: str, kind: str, name: str) -> str | None:
    return conn.execute(
        select(refs.c.commit_id).where(refs.c.repo_id == repo_id, refs.c.kind == kind, refs.c.name == name)
    ).scalar()


def list_refs(conn: Connection, repo_id: str, kind: str) -> dict[str, str]:
    rows = conn.execute(
        select(refs.c.name, refs.c.commit_id).where(refs.c.repo_id == repo_id, refs.c.kind == kind).order_by(refs.c.name)
    ).all()
    return {r.name: r.commit_id for r in rows}


def create_ref(conn: Connection, repo_id: str, kind: str, name: str, commit_id: str) -> None:
    """Create a ref; `ConflictError` if it exists (raced or not)."""
    check_ref_name(name)
    if get_ref(conn, repo_id, kind, name) is not None:
        raise ConflictError(f"A {kind} named {name!r} already exists.")
    try:
        with conn.begin_nested():
            conn.execute(refs.insert(), [{"repo_id": repo_id, "kind": kind, "name": name, "commit_id": commit_id}])
    except IntegrityError:
        raise ConflictError(f"A {kind} named {name!r} was just created by another writer.") from None


def move_branch(conn: Connection, repo_id: str, name: str, expected: str | None, new: str) -> None:
    """Point branch `name` at `new` if it still points at `expected` (None: the branch must not exist)."""
    if expected is None:
        create_ref(conn, repo_id, BRANCH, name, new)
        return
    moved = conn.execute(
        refs.update()
        .where(refs.c.repo_id == repo_id, refs.c.kind == BRANCH, refs.c.name == name, refs.c.commit_id == expected)
        .values(commit_id=new)
    ).rowcount
    if moved != 1:
        head = get_ref(conn, repo_id, BRANCH, name)
        if head is None:
            raise NotFoundError(f"Branch {name!r} does not exist.")
        raise ConflictError(
            f"Branch {name!r} moved to {head[:12]} while you committed on {expected[:12]}; "
            "check out the new head, re-apply your change and commit again."
        )


def delete_ref(conn: Connection, repo_id: str, kind: str, name: str) -> None:
    gone = conn.execute(
        refs.delete().where(refs.c.repo_id == repo_id, refs.c.kind == kind, refs.c.name == name)
    ).rowcount
    if gone != 1:
        raise NotFoundError(f"No {kind} named {name!r}.")
