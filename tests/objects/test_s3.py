"""S3 specifics: URLs and credentials, straight-to-final-key writes, streaming, concurrent uploads."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from mlkeep.errors import InvalidInputError
from mlkeep.objects import ObjectStore
from mlkeep.objects.s3 import S3ObjectStore

MiB = 1 << 20


def test_endpoint_and_credentials_from_the_environment(seaweedfs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    store = ObjectStore.from_url("s3://from-env/some/prefix")
    assert isinstance(store, S3ObjectStore) and store.root == "from-env/some/prefix"
    oid = store.put_bytes(b"env")
    assert ObjectStore.from_url(seaweedfs.url("from-env").replace("/objects?", "/some/prefix?")).get_bytes(oid) == b"env"


def test_bad_urls_say_what_is_wrong() -> None:
    with pytest.raises(InvalidInputError, match="endpoint"):
        ObjectStore.from_url("s3://bucket/p?endpoint=http://x")
    with pytest.raises(InvalidInputError, match="bucket"):
        ObjectStore.from_url("s3:///nobucket")


def test_objects_go_straight_to_their_final_key(seaweedfs: Any, tmp_path: Path) -> None:
    store = ObjectStore.from_url(seaweedfs.url())
    store.fs.mv = store.fs.copy = None  # no rename or copy may be used
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(MiB))
    ids = {store.put_bytes(b"small"), store.put_file(src)[0]}
    assert sorted(store.fs.find(store.root)) == sorted(store.path(i) for i in ids)
    assert store.temporary_files() == []


def test_a_failed_upload_publishes_nothing(seaweedfs: Any) -> None:
    store = ObjectStore.from_url(seaweedfs.url() + "&part_size=5242880")
    payload = os.urandom(12 * MiB)
    oid = hashlib.sha256(payload).hexdigest()

    class Breaks(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            if self.tell() > 8 * MiB:  # after the first part went up
                raise ConnectionError("network gone")
            return super().read(n)

    with pytest.raises(ConnectionError):
        store.put_stream(oid, Breaks(payload))
    assert not store.exists(oid) and list(store) == []


def test_large_blobs_stream_in_parts(seaweedfs: Any, tmp_path: Path) -> None:
    store = ObjectStore.from_url(seaweedfs.url() + "&part_size=5242880")
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(23 * MiB))
    oid, size = store.put_file(src)
    assert size == 23 * MiB
    assert store.fs.info(store.path(oid))["ETag"].strip('"').endswith("-5")  # a 5-part multipart upload
    store.get_file(oid, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes() and store.verify(oid)


def test_concurrent_uploads_of_one_blob(seaweedfs: Any, tmp_path: Path) -> None:
    url = seaweedfs.url()
    src = tmp_path / "same.bin"
    src.write_bytes(os.urandom(MiB))
    ids: list[str] = []
    errors: list[BaseException] = []

    stores = [ObjectStore.from_url(url) for _ in range(8)]  # a client each, as separate processes have

    def upload(store: ObjectStore) -> None:
        try:
            ids.append(store.put_file(src)[0])
            ids.append(store.put_bytes(b"same small blob"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = ObjectStore.from_url(url)
    assert not errors and len(ids) == 16 and len(set(ids)) == 2
    assert sorted(store) == sorted(set(ids)) and all(store.verify(i) for i in set(ids))


PEAK = textwrap.dedent(
    """
    import os, resource, sys
    from mlkeep.objects import ObjectStore
    store = ObjectStore.from_url(sys.argv[1])
    src, size = sys.argv[2], int(sys.argv[3])
    with open(src, "wb") as f:  # compressible but not trivially: random blocks repeated
        block = os.urandom(1 << 20)
        for i in range(size >> 20):
            f.write(block[i % 7:] + block[: i % 7])
    store.put_bytes(b"warm up")
    store.get_bytes(store.put_bytes(b"warm up 2"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    oid, n = store.put_file(src)
    store.get_file(oid, src + ".back")
    assert store.verify(oid)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) // 1024)
    """
)


@pytest.mark.slow
def test_peak_memory_stays_bounded_for_a_large_artifact(seaweedfs: Any, tmp_path: Path) -> None:
    """A 256 MiB artifact up and down through S3 costs a few parts of memory, not its size."""
    size = 256 * MiB
    out = subprocess.run(
        [sys.executable, "-c", PEAK, seaweedfs.url() + f"&part_size={8 * MiB}", str(tmp_path / "a.bin"), str(size)],
        capture_output=True, text=True, timeout=180, check=True,
    )
    growth_mib = int(out.stdout.strip())
    assert growth_mib < 96, f"peak RSS grew by {growth_mib} MiB for a {size // MiB} MiB blob"


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from mlkeep.objects import ObjectStore
    store = ObjectStore.from_url(sys.argv[1])
    store.put_stream(sys.argv[2], sys.stdin.buffer)  # parts go up as stdin fills them; killed before the end
    """
)


def _uploads(store: S3ObjectStore, prefix: str = "") -> list[str]:
    bucket = store.root.split("/", 1)[0]
    page = store.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    return sorted(f"{bucket}/{u['Key']}" for u in page.get("Uploads") or [])


def test_gc_aborts_the_multipart_upload_a_killed_writer_left(seaweedfs: Any, tmp_path: Path) -> None:
    """A writer SIGKILLed mid-upload leaves an incomplete multipart upload: invisible, but its parts take space.
    gc aborts it once older than the grace period, and never touches uploads outside the store's prefix."""
    import signal
    import time

    import mlkeep
    from mlkeep.gc import gc

    url = seaweedfs.url() + f"&part_size={5 * MiB}"
    store = ObjectStore.from_url(url)
    assert isinstance(store, S3ObjectStore)
    oid = hashlib.sha256(b"never finished").hexdigest()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, url, oid], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert writer.stdin is not None
    writer.stdin.write(os.urandom(6 * MiB))  # more than a part: the upload starts and its first part goes up
    writer.stdin.flush()
    deadline = time.monotonic() + 60
    while not _uploads(store) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # let the first part land
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)
    bucket = store.root.split("/", 1)[0]
    foreign = store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key="not-mlkeep/upload")["UploadId"]
    mine = [store.path(oid)]
    assert _uploads(store) == sorted([*mine, f"{bucket}/not-mlkeep/upload"])
    assert not store.exists(oid) and list(store) == []  # never visible to readers

    with mlkeep.open(f"sqlite:///{tmp_path}/meta.db", objects=url) as team:
        assert gc(team).incomplete_uploads == []  # younger than the default grace period: a writer may be at work
        dry = gc(team, grace_seconds=0, dry_run=True)
        assert [u.key for u in dry.incomplete_uploads] == mine and _uploads(store, "objects/") == mine
        report = gc(team, grace_seconds=0)
    assert [u.key for u in report.incomplete_uploads] == mine
    assert report.upload_bytes_freed == report.incomplete_uploads[0].size >= 5 * MiB
    assert report.to_dict()["incomplete_uploads"][0]["upload_id"] == report.incomplete_uploads[0].upload_id
    assert _uploads(store) == [f"{bucket}/not-mlkeep/upload"]  # another tool's upload is left alone
    store.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key="not-mlkeep/upload", UploadId=foreign)


def test_a_folder_has_no_incomplete_uploads(tmp_path: Path) -> None:
    store = ObjectStore.from_url(str(tmp_path))
    store.put_bytes(b"x")
    assert store.abort_incomplete_uploads(float("inf")) == []
