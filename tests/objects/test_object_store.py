"""The content-addressed object store: round trips, dedup, verification, atomic writes."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkeep.errors import CorruptObjectError, InvalidInputError, NotFoundError
from mlkeep.objects import ObjectStore


@pytest.fixture(params=["folder", "memory", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """One contract, every backend: a local folder, fsspec's memory, and S3 on a SeaweedFS server."""
    if request.param == "folder":
        return ObjectStore.from_url(str(tmp_path / "objects"))
    if request.param == "memory":
        return ObjectStore.from_url(f"memory://objects-{uuid.uuid4().hex}")
    server: Any = request.getfixturevalue("seaweedfs")
    return ObjectStore.from_url(server.url())


def _overwrite(objects: ObjectStore, oid: str, raw: bytes) -> None:
    """Replace a stored blob's bytes behind the store's back (bit rot, a bad disk, a bad copy)."""
    if objects._local:
        os.chmod(objects.path(oid), 0o644)
    objects.fs.pipe_file(objects.path(oid), raw)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=5000))
def test_bytes_round_trip_and_id_is_sha256(data: bytes) -> None:
    objects = ObjectStore.from_url("memory://objects-prop")
    oid = objects.put_bytes(data)
    assert oid == hashlib.sha256(data).hexdigest()
    assert objects.get_bytes(oid) == data


def test_same_content_stored_once(objects: ObjectStore) -> None:
    a = objects.put_bytes(b"weights" * 1000)
    b = objects.put_bytes(b"weights" * 1000)
    assert a == b
    assert list(objects) == [a]


def test_file_streams_in_and_out(objects: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * (1 << 20) + 17))
    oid, size = objects.put_file(src)
    assert size == src.stat().st_size
    assert oid == hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out" / "copy.bin"
    objects.get_file(oid, out)
    assert out.read_bytes() == src.read_bytes()
    assert objects.temporary_files() == []


def test_corrupt_blob_raises_and_is_never_returned(objects: ObjectStore, tmp_path: Path) -> None:
    oid = objects.put_bytes(b"a model" * 100)
    other = ObjectStore.from_url(str(tmp_path / "other"))
    forged = other.put_bytes(b"another model" * 100)
    _overwrite(objects, oid, Path(other.path(forged)).read_bytes())
    with pytest.raises(CorruptObjectError):
        objects.get_bytes(oid)
    with pytest.raises(CorruptObjectError):
        objects.get_file(oid, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()
    _overwrite(objects, oid, b"not zstd at all")
    with pytest.raises(CorruptObjectError):
        objects.get_bytes(oid)
    assert not objects.verify(oid)


def test_unknown_and_malformed_ids(objects: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        objects.get_bytes("0" * 64)
    with pytest.raises(InvalidInputError):
        objects.get_bytes("../../etc/passwd")


def test_blobs_are_read_only_on_disk(objects: ObjectStore) -> None:
    if not objects._local:
        pytest.skip("file modes exist only in a local folder")
    oid = objects.put_bytes(b"frozen")
    assert not os.stat(objects.path(oid)).st_mode & 0o222


def test_content_size_from_the_frame_header_or_by_reading(objects: ObjectStore, tmp_path: Path) -> None:
    import zstandard

    big = os.urandom(1000) * 300
    assert objects.content_size(objects.put_bytes(big)) == len(big)
    src = tmp_path / "f.bin"
    src.write_bytes(b"streamed" * 5000)
    assert objects.content_size(objects.put_file(src)[0]) == 40000
    unsized = b"no size in the header" * 50
    oid = hashlib.sha256(unsized).hexdigest()
    objects.put_compressed(oid, zstandard.ZstdCompressor(write_content_size=False).compress(unsized))
    assert objects.content_size(oid) == len(unsized)  # read whole, and checked against its id
    _overwrite(objects, oid, zstandard.ZstdCompressor(write_content_size=False).compress(b"other bytes"))
    with pytest.raises(CorruptObjectError):
        objects.content_size(oid)
    with pytest.raises(NotFoundError):
        objects.content_size("0" * 64)


def test_a_folder_removed_behind_the_store_is_made_again(tmp_path: Path) -> None:
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    oid = objects.put_bytes(b"weights" * 10)
    folder = Path(objects.path(oid)).parent
    os.chmod(objects.path(oid), 0o644)
    os.remove(objects.path(oid))
    folder.rmdir()  # the store remembers making this folder; the next write must not trust that
    assert objects.put_bytes(b"weights" * 10) == oid
    assert objects.get_bytes(oid) == b"weights" * 10
    assert objects.temporary_files() == []


def test_a_reused_object_is_touched(tmp_path: Path) -> None:
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    oid = objects.put_bytes(b"old weights")
    os.utime(objects.path(oid), (1_000_000, 1_000_000))
    objects.put_bytes(b"old weights")
    assert objects.modified(oid) > 1_000_000  # young again, so gc's grace period protects it


def test_a_killed_writers_leftover_beside_the_objects_is_temporary_not_an_object(tmp_path: Path) -> None:
    import mlkeep
    from mlkeep.fsck import fsck

    with mlkeep.init(str(tmp_path / "store")) as store:
        oid = store.objects.put_bytes(b"kept")
        # what kill -9 between the temporary file's creation and its rename leaves: the temp in the object's folder
        leftover = Path(store.objects.path(oid)).parent / f"{store.objects._tmp_prefix}7"
        leftover.write_bytes(b"half a blob")
        assert list(store.objects) == [oid]
        assert [Path(p) for p in store.objects.temporary_files()] == [leftover]
        report = fsck(store, repair=True)
        assert report.removed_temporary_files == 1 and not leftover.exists()
        assert store.objects.get_bytes(oid) == b"kept"


def test_staged_objects_are_named_only_when_published(objects: ObjectStore) -> None:
    import zstandard

    staging = objects.staging()
    frame = zstandard.ZstdCompressor().compress(b"a chunk")
    oid = hashlib.sha256(b"a chunk").hexdigest()
    assert staging.put_compressed(oid, frame) and not staging.put_compressed(oid, frame)  # staged once
    manifest = staging.put_bytes(b'{"chunks": ["' + oid.encode() + b'"]}')  # fsynced by publish
    if objects._local:  # a folder: invisible until published (other stores write at once, atomically)
        assert not objects.exists(oid) and not objects.exists(manifest) and len(objects.temporary_files()) == 2
    staging.publish()
    assert objects.get_bytes(oid) == b"a chunk" and objects.exists(manifest) and not objects.temporary_files()
    assert not objects.staging().put_compressed(oid, frame)  # already stored: not staged again


def test_a_discarded_staging_leaves_nothing(tmp_path: Path) -> None:
    objects = ObjectStore.from_url(str(tmp_path / "objects"))
    staging = objects.staging()
    oid = staging.put_bytes(b"never published")
    assert objects.temporary_files()
    staging.discard()
    assert not objects.temporary_files() and not objects.exists(oid) and list(objects) == []
    staging.publish()  # nothing left to publish
    assert list(objects) == []
