"""Model versions and datasets for intermediates: commit on capture, rebuild on recompute.

An intermediate is only as good as the ability to recompute it, so a capture
always names a model version (a commit) and a logged dataset. A live model
is committed first (reusing the branch head when its weights and kind are
unchanged). A commit keeps a PyTorch model's weights but not its Python
structure, so the module is also pickled with every parameter and buffer
lifted out (a "skeleton" of a few KB); recomputing unpickles it around the
checked-out weights.
"""

from __future__ import annotations

import io
import pickle
import time
from typing import Any

from mlkeep.errors import CorruptObjectError, DatasetUnavailableError, NotFoundError, RecomputeError
from mlkeep.metadata import Database
from mlkeep.objects import ObjectStore
from mlkeep.tensors import TensorStore
from mlkeep.versioning.commit import Commit
from mlkeep.versioning.repository import Repository


def commit_model(repo: Repository, model: Any, branch: str, datasets: list[str]) -> Commit:
    """A commit holding `model`: the branch head when it holds the same weights, else a new one."""
    from mlkeep.versioning.snapshot import snapshot

    snap = snapshot(model)
    head = repo._head(branch)
    if head is not None:
        head_commit = repo.get(head)
        tree = repo.tensors.put_tree(snap.tensors, head_commit.tree)
        if tree == head_commit.tree and head_commit.kind == snap.kind and set(datasets) <= set(head_commit.datasets):
            return head_commit
    parents = [head] if head else []
    return repo.write_snapshot(snap, "captured for intermediates", branch, head, parents, None, datasets, None, None)


def resolve_version(db: Database, objects: ObjectStore, tensors: TensorStore, version: Any) -> tuple[Repository, Commit]:
    """(repository, commit) for a `Commit` or a `"repository@ref"` string."""
    if isinstance(version, Commit):
        if not version.id:
            raise RecomputeError("This commit has no id; commit it to a repository first.")
        return Repository(db, objects, tensors, version.repository), version
    name, _, ref = str(version).partition("@")
    repo = Repository(db, objects, tensors, name)
    return repo, repo.get(ref or "main")


def module_skeleton(module: Any) -> bytes | None:
    """The module pickled without its tensors (None when it cannot be pickled, e.g. holds a lambda)."""
    import torch

    names = {id(t): (n, isinstance(t, torch.nn.Parameter), bool(t.requires_grad))
             for n, t in module.state_dict(keep_vars=True).items()}

    class Lifter(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return names.get(id(obj)) if isinstance(obj, torch.Tensor) else None

    buf = io.BytesIO()
    try:
        Lifter(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(module)
    except Exception:  # unpicklable attributes: recompute will ask for the architecture
        return None
    return buf.getvalue()


def module_from_skeleton(skeleton: bytes, state: dict[str, Any]) -> Any:
    """Unpickle a skeleton with its tensors taken from a checked-out state_dict."""
    import torch

    class Unlifter(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            name, is_param, requires_grad = pid
            if name not in state:
                raise RecomputeError(f"The model version has no tensor {name!r} that the architecture needs.")
            tensor = state[name]
            return torch.nn.Parameter(tensor, requires_grad=requires_grad) if is_param else tensor

    return Unlifter(io.BytesIO(skeleton)).load()


def load_model(repo: Repository, commit: Commit, objects: ObjectStore, skeleton: str | None,
               architecture: Any = None) -> tuple[Any, float]:
    """The model of `commit`, ready to run, and the seconds it took to load."""
    t0 = time.perf_counter()
    if commit.kind == "sklearn":
        model = repo.checkout(commit.id)  # type: ignore[arg-type]
    elif commit.kind == "torch":
        if architecture is not None:
            model = repo.checkout(commit.id, into=architecture)  # type: ignore[arg-type]
        elif skeleton is not None:
            model = module_from_skeleton(objects.get_bytes(skeleton), repo.checkout(commit.id))  # type: ignore[arg-type]
        else:
            raise RecomputeError(
                f"Commit {commit.id} holds weights only and this module could not be pickled; "
                "pass architecture=<a module of the same class> to rebuild it."
            )
    else:
        raise RecomputeError(f"Cannot run a model of kind {commit.kind!r}; intermediates need torch or sklearn.")
    return model, time.perf_counter() - t0


def load_inputs(db: Database, objects: ObjectStore, dataset_id: str) -> tuple[Any, Any, float]:
    """(X, y or None, seconds) of a logged dataset; `DatasetUnavailableError` when its content is gone."""
    from mlkeep.tracking import datasets

    t0 = time.perf_counter()
    try:
        doc = datasets.dataset_document(db, dataset_id)
        data = datasets.load_dataset(db, objects, dataset_id, document=doc)
    except (NotFoundError, CorruptObjectError) as exc:
        raise DatasetUnavailableError(
            f"Dataset {dataset_id} is no longer available, so this intermediate cannot be recomputed ({exc})."
        ) from exc
    X, y = split_targets(data, doc)
    return X, y, time.perf_counter() - t0


def split_targets(data: Any, doc: dict[str, Any]) -> tuple[Any, Any]:
    """Inputs and targets of a loaded dataset (targets None when it has none)."""
    if isinstance(data, tuple):
        return data[0], data[1]
    if isinstance(data, (bytes, bytearray)):
        import pandas as pd

        fmt = doc.get("format")
        if fmt in ("parquet", "pq"):
            data = pd.read_parquet(io.BytesIO(data))
        elif fmt in ("csv", "tsv"):
            data = pd.read_csv(io.BytesIO(data), sep="\t" if fmt == "tsv" else ",")
        else:
            raise RecomputeError(f"Dataset of format {fmt!r} cannot be fed to a model.")
    target = doc.get("targets")
    if hasattr(data, "columns") and target in data.columns:
        return data.drop(columns=[target]), data[target].to_numpy()
    return data, None
