"""What changed between two commits: tensors, hyperparameters, architecture, datasets, code.

Unchanged tensors are recognised from their manifests' digests without
reading a byte of weights; only tensors whose digest differs are decoded to
measure how much they changed.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from typing import TYPE_CHECKING

from mlkeep.tensors import RawTensor
from mlkeep.versioning.commit import Commit

if TYPE_CHECKING:
    from mlkeep.versioning.repository import Repository


@dataclass(frozen=True)
class TensorChange:
    """One tensor that differs: `status` is added, removed, reshaped, retyped or changed."""

    name: str
    status: str
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    fraction_changed: float | None = None
    l2: float | None = None
    max_abs: float | None = None


@dataclass(frozen=True)
class CommitDiff:
    a: str
    b: str
    tensors: list[TensorChange] = field(default_factory=list)
    unchanged: int = 0
    hyperparameters: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    architecture: list[str] = field(default_factory=list)  # unified diff lines
    datasets_added: list[str] = field(default_factory=list)
    datasets_removed: list[str] = field(default_factory=list)
    code: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_commits(repo: Repository, a: Commit, b: Commit) -> CommitDiff:
    """Compare two commits; only tensors whose digests differ are read (or re-made, for provenance commits)."""
    ma, mb = repo.tensors.manifests(a.tree), repo.tensors.manifests(b.tree)
    changes: list[TensorChange] = []
    unchanged = 0
    for name in sorted(set(ma) | set(mb)):
        x, y = ma.get(name), mb.get(name)
        if x is None or y is None:
            status = "added" if x is None else "removed"
            changes.append(TensorChange(name, status, x and tuple(x.shape), y and tuple(y.shape)))  # type: ignore[arg-type]
        elif x.digest == y.digest and x.dtype == y.dtype and tuple(x.shape) == tuple(y.shape):
            unchanged += 1
        elif tuple(x.shape) != tuple(y.shape) or x.dtype != y.dtype:
            status = "reshaped" if tuple(x.shape) != tuple(y.shape) else "retyped"
            changes.append(TensorChange(name, status, tuple(x.shape), tuple(y.shape)))
        else:
            changes.append(_measure(name, repo.tensor_of(a, name), repo.tensor_of(b, name)))
    return CommitDiff(
        a=a.id, b=b.id, tensors=changes, unchanged=unchanged,
        hyperparameters=_dict_diff(a.hyperparameters, b.hyperparameters),
        architecture=list(difflib.unified_diff(
            (a.architecture or "").splitlines(), (b.architecture or "").splitlines(), "a", "b", lineterm="", n=1)),
        datasets_added=sorted(set(b.datasets) - set(a.datasets)),
        datasets_removed=sorted(set(a.datasets) - set(b.datasets)),
        code=_dict_diff(a.code, b.code),
    )


def _measure(name: str, x: Any, y: Any) -> TensorChange:
    xa, ya = _numeric(x), _numeric(y)
    d = ya - xa
    changed = np.count_nonzero(~((xa == ya) | (np.isnan(xa) & np.isnan(ya))))
    size = max(xa.size, 1)
    return TensorChange(
        name, "changed", tuple(xa.shape), tuple(ya.shape), fraction_changed=float(changed) / size,
        l2=float(np.sqrt(np.nansum(d * d))), max_abs=float(np.nanmax(np.abs(d))) if d.size else 0.0,
    )


def _numeric(t: Any) -> np.ndarray:
    if isinstance(t, RawTensor):  # bfloat16 bits -> float32 by shifting into the high half
        if t.dtype == "bfloat16":
            return (t.bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return t.bits.astype(np.float64)
    return np.asarray(t).astype(np.float64) if np.asarray(t).dtype.kind != "c" else np.abs(np.asarray(t))


def _dict_diff(a: dict[str, str], b: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
