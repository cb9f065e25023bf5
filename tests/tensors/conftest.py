"""Fixtures for the tensor store: a private in-memory object store, a tensor store over it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mlkeep.objects import ObjectStore
from mlkeep.tensors import StoragePolicy, TensorStore


@pytest.fixture
def objects() -> ObjectStore:
    return ObjectStore.from_url(f"memory://tensors-{uuid.uuid4().hex}")


@pytest.fixture
def tensors(objects: ObjectStore) -> Iterator[TensorStore]:
    # small chunks so that tests see many chunks without big arrays
    with TensorStore(objects, policy=StoragePolicy(chunk_bytes=4096, sample_bytes=1024), workers=2) as ts:
        yield ts
