"""The recovery planner at the level of versions: full, delta or provenance, from a cost model.

The tensor store already chooses, chunk by chunk, between a full copy and a
delta, under a bound on read amplification that keeps delta chains short and
puts a full copy in every so often (`mlkeep.tensors.planner`). This module adds
the third choice per version: keep no weights at all when the commit's training
provenance re-creates them bit for bit.

Cost of a version stored as chunks: its new bytes, plus the time to decode it
(``decoded bytes / decode_bytes_per_second``, decoded bytes counting every
delta on each chunk's chain). Cost of a version left to its provenance: no
weight bytes, and a recovery time of its parent's recovery plus the measured
re-run. Each cost is ``bytes + seconds · bytes_per_second``; the cheaper wins,
but provenance only when

* the verification re-run at commit time reproduced the weights bit for bit,
* the estimated recovery stays within ``max_recovery_seconds``, and
* at most ``max_reruns`` re-runs are chained (a provenance version whose parent
  is one too must re-run both).

`plan(repo, ref)` reports per commit the choice, bytes, estimated recovery
time and chain depth (`mlkeep repo plan NAME`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlkeep.errors import InvalidInputError
from mlkeep.tensors import TensorStore
from mlkeep.tensors.codecs import FULL, RECIPE

if TYPE_CHECKING:
    from mlkeep.versioning.commit import Commit
    from mlkeep.versioning.repository import Repository

MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class RecoveryPolicy:
    """Knobs of the version-level cost model.

    provenance: "auto" (cost model decides), "always" (drop reproduced weights
        whenever the bounds allow), "never" (always store weights; no re-run at commit).
    max_recovery_seconds: bound on the estimated time to check out any version.
    max_reruns: most provenance re-runs one checkout may chain.
    bytes_per_second: stored bytes one second of recovery time is worth.
    decode_bytes_per_second: decode speed assumed for stored chunks (per decoded byte).
    """

    provenance: str = "auto"
    max_recovery_seconds: float = 30.0
    max_reruns: int = 1
    bytes_per_second: float = 2e6
    decode_bytes_per_second: float = 250e6

    def __post_init__(self) -> None:
        if self.provenance not in MODES:
            raise InvalidInputError(f"RecoveryPolicy.provenance must be one of {', '.join(MODES)}.")
        if self.max_recovery_seconds <= 0 or self.max_reruns < 0 or self.bytes_per_second < 0:
            raise InvalidInputError("RecoveryPolicy bounds must be positive (max_reruns >= 0).")
        if self.decode_bytes_per_second <= 0:
            raise InvalidInputError("RecoveryPolicy.decode_bytes_per_second must be positive.")


@dataclass(frozen=True)
class PlanEntry:
    """How one commit's weights are kept and what checking it out costs (estimates)."""

    commit: str
    message: str
    storage: str  # "full", "delta" or "provenance"
    stored_bytes: int  # bytes of chunk objects this commit added (not shared with its first parent)
    nbytes: int  # raw bytes of its weights
    recovery_seconds: float
    chain_depth: int  # longest delta chain a chunk decodes through
    reruns: int  # provenance re-runs a checkout performs
    rerun_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(policy: RecoveryPolicy, stored_bytes: float, stored_seconds: float, rerun_seconds: float, reruns: int) -> str:
    """"provenance" or "stored" for a version whose weights a verified re-run reproduced."""
    if policy.provenance == "never" or reruns > policy.max_reruns or rerun_seconds > policy.max_recovery_seconds:
        return "stored"
    if policy.provenance == "always":
        return "provenance"
    keep = stored_bytes + policy.bytes_per_second * stored_seconds
    drop = policy.bytes_per_second * rerun_seconds
    return "provenance" if drop < keep else "stored"


def decoded_bytes(tensors: TensorStore, tree_id: str) -> int:
    """Bytes a checkout decodes: each stored chunk's raw size times the decodes on its chain."""
    return sum(c.nbytes * (c.depth + 1) for m in tensors.manifests(tree_id).values() for c in m.chunks
               if c.encoding != RECIPE)  # fmt: skip


def entry(repo: Repository, commit: Commit, policy: RecoveryPolicy, memo: dict[str, PlanEntry]) -> PlanEntry:
    """The plan entry of one commit (its parent's first, for recovery time through re-runs)."""
    if commit.id in memo:
        return memo[commit.id]
    manifests = repo.tensors.manifests(commit.tree)
    chunks = [c for m in manifests.values() for c in m.chunks]
    parent_objs: set[str] = set()
    if commit.parents:
        parent_objs = {c.obj for m in repo.tensors.manifests(repo.get(commit.parents[0]).tree).values() for c in m.chunks}
    new = {c.obj: c.stored for c in chunks if c.obj and c.obj not in parent_objs}
    depth = max((c.depth for c in chunks), default=0)
    seconds = decoded_bytes(repo.tensors, commit.tree) / policy.decode_bytes_per_second
    reruns, rerun_s = 0, None
    recipe = any(c.encoding == RECIPE for c in chunks)
    if recipe:
        prov = commit.provenance or {}
        rerun_s = float(prov.get("rerun_seconds") or 0.0)
        seconds = rerun_s + sum(c.nbytes for c in chunks) / policy.decode_bytes_per_second  # re-run, then verify
        if prov.get("parent"):
            up = entry(repo, repo.get(prov["parent"]), policy, memo)
            seconds += up.recovery_seconds
            reruns, depth = up.reruns, max(depth, up.chain_depth)
        reruns += 1
        storage = "provenance"
    else:
        storage = "delta" if any(c.encoding != FULL for c in chunks if c.obj in new) else "full"
    memo[commit.id] = PlanEntry(
        commit.id, commit.message, storage, sum(new.values()), sum(c.nbytes for c in chunks), seconds, depth, reruns,
        rerun_s,
    )
    return memo[commit.id]


def plan(repo: Repository, ref: str = "main", policy: RecoveryPolicy | None = None, limit: int | None = None) -> list[PlanEntry]:
    """Per commit reachable from `ref` (newest first): storage choice, bytes, recovery estimate, depth."""
    memo: dict[str, PlanEntry] = {}
    return [entry(repo, c, policy or RecoveryPolicy(), memo) for c in repo.log(ref, limit=limit)]
