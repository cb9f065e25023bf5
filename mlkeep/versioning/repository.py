"""`Repository`: git for models — commit, log, branch, tag, resolve refs, checkout.

Weights go to the tensor store (deduplicated and delta-compressed against the
first parent), the commit object to the object store, and an index row plus
the branch move to the metadata database in one transaction. Diff and merge
live in their own modules; this one owns the history.

A commit may carry a training provenance (`versioning.provenance`). Then the
weights are re-made once at commit time; if the re-run reproduces them bit
for bit, the version planner (`versioning.plan`) may keep only the recipe, and
a checkout re-runs it and verifies the result against the commit's hash tree.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import CorruptObjectError, InvalidInputError, NotFoundError, WeightsPrunedError
from mlkeep.ids import new_id, now_ms
from mlkeep.metadata import Database
from mlkeep.metadata.tables import commits, repositories
from mlkeep.objects import ObjectStore
from mlkeep.tensors import StoragePolicy, TensorLike, TensorStore
from mlkeep.tracking.lineage import add_links
from mlkeep.versioning import refs
from mlkeep.versioning.commit import Commit, read_commit, write_commit
from mlkeep.versioning.plan import PlanEntry, RecoveryPolicy, choose, entry
from mlkeep.versioning.provenance import Provenance, RecoveryError, capture, environment_differences
from mlkeep.versioning.snapshot import Snapshot, restore, snapshot

if TYPE_CHECKING:
    from mlkeep.versioning.diff import CommitDiff

log = logging.getLogger(__name__)

_ANCESTRY = re.compile(r"(?P<base>[^\s~^]+)(?P<ops>(?:~\d*|\^\d*)*)")


class Repository:
    """The versions of one model, addressed by branch, tag, `main~2` or a hash prefix."""

    def __init__(self, db: Database, objects: ObjectStore, tensors: TensorStore, name: str) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 250:
            raise InvalidInputError("A repository name must be a non-empty string of at most 250 characters.")
        self.db, self.objects, self.tensors, self.name = db, objects, tensors, name
        self._recovered: tuple[str, dict[str, TensorLike]] | None = None  # last commit re-made by provenance

    # ---------------------------------------------------------------- writing
    def commit(
        self,
        model: Any,
        message: str = "",
        *,
        branch: str = "main",
        run: Any = None,
        parents: Sequence[str] | None = None,
        datasets: Sequence[Any] = (),
        code: dict[str, str] | None = None,
        policy: StoragePolicy | None = None,
        provenance: Provenance | None = None,
        recovery: RecoveryPolicy | None = None,
    ) -> Commit:
        """Snapshot `model` (torch module or state_dict, estimator, safetensors file) onto `branch`.

        The parent defaults to the branch head; the head moves by compare-and-swap,
        so a concurrent commit to the same branch raises `ConflictError` instead of
        being lost. The new commit is returned with its `id`.

        With `provenance`, the training function is re-run from the parent at
        commit time (unless `recovery.provenance == "never"`); when it reproduces
        the weights bit for bit, `recovery` (a `RecoveryPolicy`) decides whether
        to keep only the recipe. The provenance is recorded either way.
        """
        refs.check_ref_name(branch)
        if provenance is not None and not isinstance(provenance, Provenance):
            raise InvalidInputError("provenance must be a mlkeep.versioning.Provenance.")
        snap = snapshot(model)
        head = self._head(branch)
        parent_ids = [self.resolve(p) for p in parents] if parents is not None else ([head] if head else [])
        return self.write_snapshot(snap, message, branch, head, parent_ids, run, datasets, code, policy,
                                   provenance=provenance, recovery=recovery)

    def branch(self, name: str, at: str = "main") -> str:
        """Create branch `name` at `at`; returns the commit id. `ConflictError` if it exists."""
        commit_id = self.resolve(at)
        with self.db.begin() as conn:
            refs.create_ref(conn, self._repo_id(conn, create=False), refs.BRANCH, name, commit_id)
        return commit_id

    def tag(self, name: str, ref: str = "main") -> str:
        """Tag the commit `ref` names, forever; `ConflictError` if the tag exists."""
        commit_id = self.resolve(ref)
        with self.db.begin() as conn:
            refs.create_ref(conn, self._repo_id(conn, create=False), refs.TAG, name, commit_id)
        return commit_id

    def delete_branch(self, name: str) -> None:
        with self.db.begin() as conn:
            refs.delete_ref(conn, self._repo_id(conn, create=False), refs.BRANCH, name)

    # ---------------------------------------------------------------- reading
    def branches(self) -> dict[str, str]:
        with self.db.connect() as conn:
            return refs.list_refs(conn, self._repo_id(conn, create=False), refs.BRANCH)

    def tags(self) -> dict[str, str]:
        with self.db.connect() as conn:
            return refs.list_refs(conn, self._repo_id(conn, create=False), refs.TAG)

    def resolve(self, ref: str) -> str:
        """The commit id of a branch, tag, full or short (≥ 4 hex) id, with `~N` / `^N` suffixes."""
        if not isinstance(ref, str) or not ref:
            raise InvalidInputError("A ref must be a branch, a tag or a commit id.")
        m = _ANCESTRY.fullmatch(ref)
        if m is None:
            raise InvalidInputError(f"{ref!r} is not a ref: a branch, a tag or a commit id, with ~N or ^N after it.")
        commit_id = self._resolve_name(m.group("base"))
        for op in re.findall(r"[~^]\d*", m.group("ops")):
            n = int(op[1:] or 1)
            if op[0] == "~":
                for _ in range(n):
                    commit_id = self._parent(commit_id, 0, ref)
            else:
                commit_id = self._parent(commit_id, n - 1, ref) if n else commit_id
        return commit_id

    def get(self, ref: str) -> Commit:
        """The commit `ref` names, with its id."""
        return read_commit(self.objects, self.resolve(ref))

    def log(self, ref: str = "main", limit: int | None = None) -> list[Commit]:
        """Commits reachable from `ref`, newest first (first parents and merged parents alike)."""
        start = self.resolve(ref)
        seen, frontier = {start}, [start]
        out: list[Commit] = []
        while frontier and (limit is None or len(out) < limit):
            frontier.sort(key=lambda c: self.get(c).time)
            commit = self.get(frontier.pop())
            out.append(commit)
            for p in commit.parents:
                if p not in seen:
                    seen.add(p)
                    frontier.append(p)
        return out

    def checkout(self, ref: str = "main", into: Any = None) -> Any:
        """The model as committed, bit for bit (every chunk verified against the commit's tree).

        Returns a state_dict for torch commits (or loads it `into` a module and
        returns the module), the estimator for scikit-learn commits, a dict of
        arrays otherwise. A corrupt blob raises `CorruptObjectError`.
        """
        commit = self.get(ref)
        stored = self.tensors_of(commit)
        tensors = {name: stored[name] for name in commit.order if name in stored} | stored
        skeleton = self.objects.get_bytes(commit.extra["skeleton"]) if "skeleton" in commit.extra else None
        model = restore(commit.kind, tensors, skeleton)
        if into is not None:
            into.load_state_dict(model)
            return into
        return model

    def checkout_file(self, ref: str, path: str | os.PathLike[str]) -> Path:
        """Write the version `ref` to a file: `.safetensors` for weights, `.pkl` for an estimator.

        Written to a temporary name and renamed, so a failed checkout leaves no partial file.
        """
        from mlkeep.versioning.snapshot import write_file

        commit = self.get(ref)
        return write_file(commit.kind, self.checkout(commit.id), Path(path))

    def diff(self, a: str, b: str) -> CommitDiff:
        """Tensors added, removed, reshaped or changed (with how much), and metadata differences."""
        from mlkeep.versioning.diff import diff_commits

        return diff_commits(self, self.get(a), self.get(b))

    def merge(self, ours: str, theirs: str, *, strategy: str = "fail", message: str | None = None,
              branch: str | None = None) -> Commit:
        """Commit the three-way merge of `theirs` into `ours`; see `mlkeep.versioning.merge`."""
        from mlkeep.versioning.merge import merge

        return merge(self, ours, theirs, strategy=strategy, message=message, branch=branch)

    def plan(self, ref: str = "main", recovery: RecoveryPolicy | None = None, limit: int | None = None) -> list[PlanEntry]:
        """How each commit reachable from `ref` keeps its weights: full, delta or provenance,
        with its new bytes, estimated recovery time and chain depth (newest first)."""
        from mlkeep.versioning.plan import plan

        return plan(self, ref, recovery, limit)

    def tensors_of(self, commit: Commit) -> dict[str, TensorLike]:
        """A commit's tensors, bit for bit: read from the tensor store, or re-made by its provenance and verified.

        Raises `WeightsPrunedError` when retention dropped the commit's weights.
        """
        self._check_kept(commit)
        if not self.tensors.is_recipe(commit.tree):
            return self.tensors.get_tree(commit.tree)
        if self._recovered is not None and self._recovered[0] == commit.id:
            return dict(self._recovered[1])
        tensors = self._recover(commit)
        self._recovered = (commit.id, tensors)
        return dict(tensors)

    def tensor_of(self, commit: Commit, name: str) -> TensorLike:
        """One tensor of a commit (re-made through its provenance only when it is not stored)."""
        self._check_kept(commit)
        manifests = self.tensors.manifests(commit.tree)
        if name in manifests and all(c.obj for c in manifests[name].chunks):
            return self.tensors.get_tensor(commit.tree, name)
        tensors = self.tensors_of(commit)
        if name not in tensors:
            raise NotFoundError(f"Commit {commit.id[:12]} has no tensor named {name!r}.")
        return tensors[name]

    # ---------------------------------------------------------------- internals
    def _check_kept(self, commit: Commit) -> None:
        """Raise `WeightsPrunedError` for a commit whose weights retention dropped. Checked before
        reading, so the answer does not depend on whether `gc` has deleted the objects yet."""
        with self.db.connect() as conn:
            pruned = conn.execute(select(commits.c.pruned_time).where(commits.c.id == commit.id)).scalar()
        if pruned is not None:
            raise WeightsPrunedError(
                f"Commit {commit.id[:12]} of {self.name!r} is in history, but its weights were dropped by the "
                "store's retention policy (`mlkeep retention show`); tag or branch a version to keep its weights."
            )

    def _recover(self, commit: Commit) -> dict[str, TensorLike]:
        """Re-run the commit's training provenance from its parent and verify the result bit for bit."""
        if not commit.provenance:
            raise CorruptObjectError(f"Commit {commit.id[:12]} keeps no weights and records no provenance to re-make them.")
        prov = Provenance.from_dict(commit.provenance)
        parent = self.checkout(prov.parent) if prov.parent else None
        try:
            out = prov.run(parent)
            again = snapshot(out)
        except RecoveryError:
            raise
        except Exception as exc:
            raise RecoveryError(f"Re-running {prov.fn} to recover commit {commit.id[:12]} failed: {exc}") from exc
        bad = self.tensors.mismatches(commit.tree, again.tensors)
        skeleton = commit.extra.get("skeleton")
        if skeleton and (again.skeleton is None or self.objects.put_bytes(again.skeleton) != skeleton):
            bad.append("(estimator skeleton)")
        if bad:
            hint = environment_differences(prov)
            raise RecoveryError(
                f"Re-running {prov.fn} did not reproduce commit {commit.id[:12]}: {len(bad)} tensor(s) differ "
                f"({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''})"
                + (f"; environment changed: {'; '.join(hint)}" if hint else "") + ". No weights were returned.",
                bad,
            )
        return again.tensors

    def _store_weights(
        self, snap: Snapshot, parent: Commit | None, policy: StoragePolicy | None, provenance: Provenance | None,
        recovery: RecoveryPolicy | None,
    ) -> tuple[str, dict[str, Any] | None]:
        """Write the weights as chunks or, when the planner prefers it, as a verified recipe."""
        parent_tree = parent.tree if parent else None
        if provenance is None:
            return self.tensors.put_tree(snap.tensors, parent_tree, policy), None
        rp = recovery or RecoveryPolicy()
        prov = capture(provenance, parent.id if parent else None)
        doc: dict[str, Any] = prov.to_dict() | {"verified": False, "rerun_seconds": None}
        memo: dict[str, PlanEntry] = {}
        up = entry(self, parent, rp, memo) if parent else None
        reruns = (up.reruns if up else 0) + 1
        if rp.provenance == "never" or reruns > rp.max_reruns:
            return self.tensors.put_tree(snap.tensors, parent_tree, policy), doc
        try:
            out, seconds = prov.timed_run(self.checkout(parent.id) if parent else None)
            again = snapshot(out)
        except Exception as exc:  # a training function that fails is recorded, never fatal to the commit
            log.warning("verification re-run of %s failed: %s; storing the weights", prov.fn, exc)
            return self.tensors.put_tree(snap.tensors, parent_tree, policy), doc
        same = _same_snapshot(snap, again)
        doc.update(verified=same, rerun_seconds=round(seconds, 6))
        if not same:
            log.info("re-running %s did not reproduce the weights bit for bit; storing them", prov.fn)
            return self.tensors.put_tree(snap.tensors, parent_tree, policy), doc
        recipe = self.tensors.put_recipe_tree(snap.tensors, parent_tree, policy)
        rerun_total = seconds + (up.recovery_seconds if up else 0.0)
        stored_seconds = recipe.decoded_bytes / rp.decode_bytes_per_second
        if choose(rp, recipe.estimated_bytes, stored_seconds, rerun_total, reruns) == "provenance":
            return recipe.tree_id, doc
        return self.tensors.put_tree(snap.tensors, parent_tree, policy), doc

    def write_snapshot(
        self,
        snap: Snapshot,
        message: str,
        branch: str | None,
        expected_head: str | None,
        parent_ids: list[str],
        run: Any,
        datasets: Sequence[Any],
        code: dict[str, str] | None,
        policy: StoragePolicy | None,
        *,
        provenance: Provenance | None = None,
        recovery: RecoveryPolicy | None = None,
    ) -> Commit:
        """Store a snapshot as a commit with `parent_ids` and move `branch` from `expected_head` (CAS)."""
        from mlkeep.tracking.environment import capture_environment

        parent = self.get(parent_ids[0]) if parent_ids else None
        tree, prov_doc = self._store_weights(snap, parent, policy, provenance, recovery)
        if prov_doc is not None:
            datasets = [*datasets, *(d for d in prov_doc["datasets"] if d not in {getattr(x, "id", x) for x in datasets})]
        env = capture_environment()
        extra = {"skeleton": self.objects.put_bytes(snap.skeleton)} if snap.skeleton is not None else {}
        commit = Commit(
            repository=self.name, tree=tree, parents=tuple(parent_ids), message=message, author=_user(),
            time=now_ms(), kind=snap.kind, architecture=snap.architecture, hyperparameters=snap.hyperparameters,
            run_id=getattr(run, "id", run), datasets=tuple(getattr(d, "id", d) for d in datasets),
            code=code if code is not None else {k[4:]: v for k, v in env.items() if k.startswith("git.")},
            environment=env, extra=extra, order=tuple(snap.tensors), provenance=prov_doc,
        )
        commit = write_commit(self.objects, commit)
        commit_id = commit.id
        with self.db.begin() as conn:
            repo_id = self._repo_id(conn, create=True)
            conn.execute(commits.insert(), [{
                "id": commit_id, "repo_id": repo_id, "tree": tree, "parents": json.dumps(list(parent_ids)),
                "message": message, "author": commit.author, "time": commit.time, "run_id": commit.run_id,
            }])
            add_links(conn, [(commit.run_id, "run", commit_id, "commit", "produced")]
                      + [(d, "dataset", commit_id, "commit", "trained_on") for d in commit.datasets])
            if branch is not None:
                refs.move_branch(conn, repo_id, branch, expected_head, commit_id)
        return commit

    def _head(self, branch: str) -> str | None:
        with self.db.connect() as conn:
            repo_id = self._repo_id(conn, create=False, missing_ok=True)
            return refs.get_ref(conn, repo_id, refs.BRANCH, branch) if repo_id else None

    def _repo_id(self, conn: Any, *, create: bool, missing_ok: bool = False) -> Any:
        found = conn.execute(select(repositories.c.id).where(repositories.c.name == self.name)).scalar()
        if found is not None or missing_ok:
            return found
        if not create:
            raise NotFoundError(f"Repository {self.name!r} has no commits yet; commit a model first.")
        from mlkeep.metadata.upsert import insert_for

        conn.execute(insert_for(conn)(repositories).on_conflict_do_nothing(index_elements=["name"]),
                     [{"id": new_id(), "name": self.name, "creation_time": now_ms()}])
        return conn.execute(select(repositories.c.id).where(repositories.c.name == self.name)).scalar_one()

    def _resolve_name(self, name: str) -> str:
        with self.db.connect() as conn:
            repo_id = self._repo_id(conn, create=False)
            for kind in (refs.BRANCH, refs.TAG):
                found = refs.get_ref(conn, repo_id, kind, name)
                if found:
                    return found
            if re.fullmatch(r"[0-9a-f]{4,64}", name):
                ids = conn.execute(
                    select(commits.c.id).where(commits.c.repo_id == repo_id, commits.c.id.startswith(name)).limit(2)
                ).scalars().all()
                if len(ids) == 1:
                    return str(ids[0])
                if len(ids) > 1:
                    raise InvalidInputError(f"Commit prefix {name!r} is ambiguous in {self.name!r}; give more digits.")
        raise NotFoundError(f"{name!r} names no branch, tag or commit of repository {self.name!r}.")

    def _parent(self, commit_id: str, index: int, ref: str) -> str:
        parents = self.get(commit_id).parents
        if index >= len(parents):
            raise NotFoundError(f"{ref!r} goes past the first commit of {self.name!r}.")
        return parents[index]


def _same_snapshot(a: Snapshot, b: Snapshot) -> bool:
    """Bit-for-bit equality of two snapshots' tensors (names, dtypes, shapes, bytes) and skeletons."""
    from mlkeep.tensors.dtypes import as_bytes

    if a.kind != b.kind or a.skeleton != b.skeleton or set(a.tensors) != set(b.tensors):
        return False
    for name, x in a.tensors.items():
        dx, sx, bx = as_bytes(x)
        dy, sy, by = as_bytes(b.tensors[name])
        if dx != dy or sx != sy or len(bx) != len(by) or not np_equal(bx, by):
            return False
    return True


def np_equal(a: Any, b: Any) -> bool:
    import numpy as np

    return bool(np.array_equal(a, b))


def list_repositories(db: Database) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(select(repositories.c.name).order_by(repositories.c.name)).scalars())


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user database in some containers
        return None
