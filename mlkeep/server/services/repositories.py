"""Model repositories: refs, log, diff, checkout as a file, and commits uploaded as safetensors files.

Repositories belong to no experiment, so a scoped token reaches none.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep.access import Principal
from mlkeep.errors import InvalidInputError
from mlkeep.server.services.access import check_run
from mlkeep.server.services.files import spooled, temp_file

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.versioning.commit import Commit
    from mlkeep.versioning.repository import Repository


def repository(store: Store, principal: Principal, name: str, role: str = "read") -> Repository:
    """The repository `name`, for an unscoped principal with `role`."""
    principal.require(role)
    principal.require_unscoped("repositories")
    return store.repo(name)


def repositories(store: Store, principal: Principal) -> list[dict[str, Any]]:
    """Every repository with its branches and tags."""
    principal.require("read")
    principal.require_unscoped("repositories")
    out = []
    for name in store.repositories():
        repo = store.repo(name)
        out.append({"name": name, "branches": repo.branches(), "tags": repo.tags()})
    return out


def checkout_file(store: Store, principal: Principal, name: str, ref: str) -> tuple[Path, str]:
    """The version `ref` written to a temporary file (safetensors, or .pkl for estimators); its download name."""
    repo = repository(store, principal, name)
    commit = repo.get(ref)
    suffix = ".pkl" if commit.kind == "sklearn" else ".safetensors"
    path = temp_file(f"{commit.id[:12]}{suffix}", lambda target: repo.checkout_file(commit.id, target),
                     prefix="mlkeep-checkout-")
    return path, f"{name}-{commit.id[:12]}{suffix}"


def commit_file(store: Store, principal: Principal, name: str, file: str | Path, *, message: str = "",
                branch: str = "main", run_id: str | None = None, datasets: Sequence[str] = (),
                code: Mapping[str, str] | None = None) -> Commit:
    """Commit a safetensors file onto `branch` (compare-and-swap on its head: `ConflictError` if it moved).

    `code` is the client's code reference (git commit, branch, ...): the server's own would be wrong.
    """
    repo = repository(store, principal, name, "write")
    if run_id is not None:
        check_run(store, principal, run_id, "write")
    for dataset_id in datasets:
        store.get_dataset(dataset_id)
    return repo.commit(Path(file), message, branch=branch, run=run_id, datasets=list(datasets),
                       code=dict(code) if code is not None else {})


def code_pairs(pairs: Sequence[str] | None) -> dict[str, str] | None:
    """A code reference sent as `key=value` strings (a query string holds no mapping)."""
    if pairs is None:
        return None
    split = [p.partition("=") for p in pairs]
    if any(not key or not sep for key, sep, _ in split):
        raise InvalidInputError("A code reference is given as key=value, e.g. commit=3f2a...")
    return {key: value for key, _, value in split}


async def commit_upload(store: Store, principal: Principal, name: str, chunks: AsyncIterable[bytes],
                        **options: Any) -> Commit:
    """`commit_file` for a request body, spooled to disk as it arrives (checks first, so a refusal is quick)."""
    import anyio

    await anyio.to_thread.run_sync(repository, store, principal, name, "write")
    return await spooled(chunks, lambda file: commit_file(store, principal, name, file, **options))
