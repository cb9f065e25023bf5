"""Three-way merge of two model versions, tensor by tensor.

Each tensor is taken from the side that changed it relative to the merge
base. Where both changed it, the strategy decides: `ours`, `theirs`,
`average` (element-wise mean of floating-point tensors: weight averaging, the
"model soup"; integer tensors such as batch-norm counters keep ours), or
`fail` (raise `MergeConflictError` naming the tensors, nothing written).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError, MergeConflictError
from mlkeep.tensors import RawTensor
from mlkeep.versioning.commit import Commit
from mlkeep.versioning.repository import Repository
from mlkeep.versioning.snapshot import Snapshot

STRATEGIES = ("ours", "theirs", "average", "fail")


def merge_base(repo: Repository, a: str, b: str) -> str | None:
    """The nearest common ancestor of commits `a` and `b` (breadth-first from `b`)."""
    ancestors, frontier = {a}, [a]
    while frontier:
        nxt = [p for c in frontier for p in repo.get(c).parents if p not in ancestors]
        ancestors.update(nxt)
        frontier = nxt
    seen, frontier = {b}, [b]
    while frontier:
        for c in frontier:
            if c in ancestors:
                return c
        nxt = [p for c in frontier for p in repo.get(c).parents if p not in seen]
        seen.update(nxt)
        frontier = nxt
    return None


def merge(
    repo: Repository, ours: str, theirs: str, *, strategy: str = "fail", message: str | None = None,
    branch: str | None = None,
) -> Commit:
    """Merge `theirs` into `ours` and commit on `branch` (default: `ours` when it is a branch)."""
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"Merge strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}.")
    a, b = repo.get(ours), repo.get(theirs)
    if a.kind != b.kind:
        raise InvalidInputError(f"Cannot merge a {a.kind} commit with a {b.kind} commit.")
    branch = branch if branch is not None else (ours if ours in repo.branches() else None)
    base_id = merge_base(repo, a.id, b.id)
    if base_id == b.id:
        return a  # already contains theirs
    base = repo.get(base_id) if base_id else None
    da, db_ = _digests(repo, a), _digests(repo, b)
    dbase = _digests(repo, base) if base else {}
    take_b, conflicts = [], []
    for name in sorted(set(da) | set(db_)):
        x, y, o = da.get(name), db_.get(name), dbase.get(name)
        if x == y or y == o:
            continue
        if x == o:
            take_b.append(name)
        else:
            conflicts.append(name)
    if conflicts and strategy == "fail":
        raise MergeConflictError(
            f"Both sides changed {len(conflicts)} tensor(s): {', '.join(conflicts[:10])}"
            f"{' ...' if len(conflicts) > 10 else ''}. Merge again with strategy 'ours', 'theirs' or 'average'.",
            conflicts,
        )
    if strategy == "average":
        _check_averageable(repo, a, b, [n for n in conflicts if n in da and n in db_])
    stored = repo.tensors_of(a)
    merged: dict[str, Any] = {name: stored[name] for name in a.order if name in stored} | stored
    for name in take_b + (conflicts if strategy == "theirs" else []):
        if name in db_:
            merged[name] = repo.tensor_of(b, name)
        else:
            merged.pop(name, None)
    if strategy == "average":
        for name in conflicts:
            if name in da and name in db_:
                merged[name] = _average(merged[name], repo.tensor_of(b, name))
    skeleton = repo.objects.get_bytes(a.extra["skeleton"]) if "skeleton" in a.extra else None
    snap = Snapshot(a.kind, merged, a.architecture, a.hyperparameters, skeleton)
    head = repo.branches().get(branch) if branch else None
    text = message or f"Merge {theirs} into {ours} ({strategy}: {len(take_b)} taken, {len(conflicts)} conflicting)"
    return repo.write_snapshot(snap, text, branch, head, [a.id, b.id], a.run_id, sorted(set(a.datasets) | set(b.datasets)),
                       dict(a.code), None)


def _check_averageable(repo: Repository, a: Commit, b: Commit, names: list[str]) -> None:
    """`MergeConflictError` (nothing written) when tensors both sides changed differ in shape or dtype."""
    ma, mb = repo.tensors.manifests(a.tree), repo.tensors.manifests(b.tree)
    bad = [n for n in names if (tuple(ma[n].shape), ma[n].dtype) != (tuple(mb[n].shape), mb[n].dtype)]
    if bad:
        detail = ", ".join(f"{n} {tuple(ma[n].shape)} {ma[n].dtype} vs {tuple(mb[n].shape)} {mb[n].dtype}" for n in bad[:5])
        raise MergeConflictError(
            f"Cannot average {len(bad)} tensor(s) whose shapes or dtypes differ: {detail}. "
            "Merge with strategy 'ours' or 'theirs'.",
            bad,
        )


def _digests(repo: Repository, commit: Commit) -> dict[str, str]:
    return {name: f"{m.dtype}{tuple(m.shape)}{m.digest}" for name, m in repo.tensors.manifests(commit.tree).items()}


def _average(x: Any, y: Any) -> Any:
    if isinstance(x, RawTensor) or isinstance(y, RawTensor) or np.asarray(x).dtype.kind not in "fc":
        return x
    if x.shape != y.shape:
        return x
    return ((x.astype(np.float64) + y.astype(np.float64)) / 2).astype(x.dtype)
