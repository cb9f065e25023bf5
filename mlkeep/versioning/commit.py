"""`Commit`: an immutable snapshot of a model, stored as an object like git's commits.

The commit's id is the SHA-256 of its canonical JSON, so a commit names its
whole history: the weights tree, the parents, and everything needed to say
where the model came from (architecture, hyperparameters, run, datasets, code,
environment).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlkeep.errors import CorruptObjectError
from mlkeep.objects import ObjectStore


@dataclass(frozen=True)
class Commit:
    repository: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author: str | None
    time: int
    kind: str  # "torch", "sklearn", "tensors"
    architecture: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    datasets: tuple[str, ...] = ()
    code: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. the sklearn skeleton object
    order: tuple[str, ...] = ()  # tensor names as the model lists them (trees are sorted)
    provenance: dict[str, Any] | None = None  # how it was trained (see `versioning.provenance`), if recorded
    id: str = field(default="", compare=False)  # the hash of the other fields, set once stored

    def to_bytes(self) -> bytes:
        content = asdict(self)
        del content["id"]
        if content["provenance"] is None:
            del content["provenance"]  # commits without provenance keep the ids they always had
        return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, oid: str) -> Commit:
        try:
            d = json.loads(data)
            d["parents"] = tuple(d["parents"])
            d["datasets"] = tuple(d["datasets"])
            d["order"] = tuple(d.get("order", ()))
            return cls(**d, id=oid)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptObjectError(f"Object {oid} is not a commit: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_commit(objects: ObjectStore, commit: Commit) -> Commit:
    """Store the commit object; returns it with its id, the hash of its bytes."""
    return replace(commit, id=objects.put_bytes(commit.to_bytes()))


def read_commit(objects: ObjectStore, commit_id: str) -> Commit:
    """The commit object, verified against its id by the object store."""
    return Commit.from_bytes(objects.get_bytes(commit_id), commit_id)
