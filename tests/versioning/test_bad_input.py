"""Bad input gets a specific error from mlkeep.errors, and the repository is left unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mlkeep.errors import CorruptObjectError, InvalidInputError, MergeConflictError, NotFoundError
from mlkeep.store import Store


def _state(seed: int, hidden: int = 16) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_unknown_refs(store: Store) -> None:
    repo = store.repo("refs")
    with pytest.raises(NotFoundError):
        repo.resolve("main")  # no commits yet
    repo.commit(_state(0), "v0")
    for ref in ("nope", "main~1", "main^2", "deadbeef", "v9"):
        with pytest.raises(NotFoundError):
            repo.checkout(ref)
    with pytest.raises(InvalidInputError):
        repo.branch("bad name")
    for ref in ("", "main\n", "main~1\n", "ma in", "~1", "main~x"):
        with pytest.raises(InvalidInputError):
            repo.resolve(ref)  # schemathesis found a newline making a 500 here
    assert list(repo.branches()) == ["main"] and repo.tags() == {}


def test_merge_with_mismatched_shapes_fails_and_writes_nothing(store: Store) -> None:
    repo = store.repo("shapes")
    repo.commit(_state(0), "base")
    repo.branch("wide")
    a = repo.commit(_state(1), "a")
    b = repo.commit(_state(2, hidden=32), "b", branch="wide")
    objects_before = set(store.objects)
    with pytest.raises(MergeConflictError) as info:
        repo.merge("main", "wide", strategy="average")
    assert "0.weight" in info.value.tensors and "shape" in str(info.value)
    assert repo.resolve("main") == a.id and repo.resolve("wide") == b.id
    assert set(store.objects) == objects_before and len(repo.log("main")) == 2


@pytest.mark.parametrize("damage", ["truncate", "tamper"])
def test_truncated_or_tampered_blob_raises(folder_store: Store, damage: str) -> None:
    repo = folder_store.repo("fragile")
    c = repo.commit(_state(0, hidden=256), "x")
    oid = folder_store.tensors.manifests(c.tree)["0.weight"].chunks[0].obj
    path = Path(folder_store.objects.path(oid))
    os.chmod(path, 0o644)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else raw[:-9] + bytes([raw[-9] ^ 1]) + raw[-8:])
    folder_store.tensors.blobs.forget()
    with pytest.raises(CorruptObjectError):
        repo.checkout(c.id)
    with pytest.raises(CorruptObjectError):
        folder_store.tensors.verify(c.tree)
    assert not folder_store.fsck().ok


def test_a_file_that_is_not_safetensors(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    repo = store.repo("files")
    with pytest.raises(InvalidInputError):
        repo.commit(bad, "bad")
    with pytest.raises(InvalidInputError):
        repo.commit(tmp_path / "missing.safetensors", "missing")
    assert store.repositories() == [] or "files" not in store.repositories()
    repo.commit(_state(0), "good")
    with pytest.raises(InvalidInputError):
        repo.checkout_file("main", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
