"""Content-addressed blobs behind fsspec.

A blob's name is the SHA-256 of its *uncompressed* bytes; it is stored
zstd-compressed at `<root>/<2 hex>/<62 hex>`. Writes go to a temporary name
in the same folder and are renamed into place, so a reader never sees half a
blob and a killed writer leaves at most a `.tmp-*` file that `fsck` sweeps.
Every read re-hashes: a blob that does not match its name raises
`CorruptObjectError`, it is never returned.

Like dvc-objects' ObjectDB, this layer only maps an id to bytes; knowing what
the bytes mean is the business of the layers above.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from mlkeep.errors import CorruptObjectError, InvalidInputError, NotFoundError

CHUNK = 1 << 20
LEVEL = 3


def _zstd() -> Any:
    import zstandard

    return zstandard


@dataclass(frozen=True)
class IncompleteUpload:
    """A multipart upload a writer started and never completed (S3): invisible to readers, but its parts take space."""

    key: str
    upload_id: str
    initiated: float  # POSIX seconds
    size: int  # bytes of the parts uploaded so far

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_OBJECT_ID = re.compile(r"[0-9a-f]{64}")


def _check_id(oid: str) -> str:
    """`oid` if it is an object id: it becomes a path, so nothing else may pass (called for every chunk)."""
    if not isinstance(oid, str) or _OBJECT_ID.fullmatch(oid) is None:
        raise InvalidInputError(f"{oid!r} is not an object id (64 lowercase hex digits).")
    return oid


class ObjectStore:
    """Blobs named by hash in one folder of any fsspec filesystem."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self._local = getattr(fs, "protocol", None) in ("file", ("file", "local"))
        self._folders: set[str] = set()  # folders this process made or found (local): each checked once
        self._tmp_prefix = f".tmp-{uuid.uuid4().hex[:16]}-"  # temporary names: a process-unique prefix ...
        self._tmp_count = itertools.count()  # ... and a counter (next() is atomic under the GIL)

    @classmethod
    def from_url(cls, url: str) -> ObjectStore:
        """An object store at an fsspec URL (`/path`, `file://`, `memory://`, `s3://`)."""
        if url.startswith("s3://"):
            from mlkeep.objects.s3 import S3ObjectStore

            return S3ObjectStore.from_url(url)
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
        fs.makedirs(root, exist_ok=True)
        return cls(fs, root)

    def path(self, oid: str) -> str:
        _check_id(oid)
        return f"{self.root}/{oid[:2]}/{oid[2:]}"

    def exists(self, oid: str) -> bool:
        if self._local:
            return os.path.exists(self.path(oid))
        return bool(self.fs.exists(self.path(oid)))

    def put_bytes(self, data: bytes) -> str:
        """Store `data` (idempotent) and return its id."""
        oid = hashlib.sha256(data).hexdigest()
        if not self._reuse(oid):
            self._write(oid, _zstd().ZstdCompressor(level=LEVEL).compress(data))
        return oid

    def put_compressed(self, oid: str, frame: bytes) -> bool:
        """Store a zstd frame the caller already compressed, whose *content* hashes to `oid`.

        Returns False when the object was already there; then its modification
        time is refreshed, so `gc`'s grace period protects an old object a new
        writer is about to reference again. The caller promises the frame's
        content hashes to `oid` (every read checks it).
        """
        if self._reuse(oid):
            return False
        self._write(oid, frame)
        return True

    def _reuse(self, oid: str) -> bool:
        """True when the object is already stored, and then touched (a reused object is young again, so a
        concurrent gc keeps it). In a local folder one system call answers both."""
        if not self._local:
            if not self.exists(oid):
                return False
            self.touch(oid)
            return True
        try:
            os.utime(self.path(oid))
        except FileNotFoundError:
            return False
        except OSError:  # there, but not ours to touch (another user's store): reuse it all the same
            pass
        return True

    def staging(self) -> Staging:
        """A batch of objects written now and published together by `Staging.publish`: one durability
        barrier for all of them instead of an fsync each."""
        return Staging(self)

    def touch(self, oid: str) -> None:
        """Refresh an object's modification time (best effort; local folders only)."""
        if self._local:
            try:
                os.utime(self.path(oid))
            except OSError:
                pass

    def modified(self, oid: str) -> float | None:
        """When the object was last written or touched (POSIX seconds); None if unknown."""
        path = self.path(oid)
        if self._local:
            return os.stat(path).st_mtime
        try:
            return _mtime(self.fs.info(path))
        except FileNotFoundError:
            return None

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file by streaming it (never whole in memory); return (id, size)."""
        zstd = _zstd()
        digest = hashlib.sha256()
        size = 0
        tmp = self._tmp_path()
        self.fs.makedirs(tmp.rsplit("/", 1)[0], exist_ok=True)
        try:
            with open(path, "rb") as src, self.fs.open(tmp, "wb") as dst:
                size_hint = os.fstat(src.fileno()).st_size
                with zstd.ZstdCompressor(level=LEVEL).stream_writer(dst, size=size_hint, closefd=False) as w:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        w.write(chunk)
                _sync(dst)
            oid = digest.hexdigest()
            if self.exists(oid):
                self.fs.rm(tmp)
            else:
                self._rename(tmp, self.path(oid))
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return oid, size

    def get_bytes(self, oid: str) -> bytes:
        """The blob's bytes, verified against its id."""
        try:
            raw = self.fs.cat_file(self.path(oid))
        except FileNotFoundError:
            raise NotFoundError(f"Object {oid} is not in the object store at {self.root}.") from None
        try:
            data = _zstd().ZstdDecompressor().decompressobj().decompress(raw)
        except Exception as exc:
            raise CorruptObjectError(f"Object {oid} cannot be decompressed: {exc}. Run `mlkeep fsck`.") from exc
        if hashlib.sha256(data).hexdigest() != oid:
            raise CorruptObjectError(f"Object {oid} does not match its hash. Run `mlkeep fsck`.")
        return data

    def get_file(self, oid: str, dest: str | os.PathLike[str]) -> int:
        """Write the blob to `dest` by streaming; verified before `dest` appears."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        digest = hashlib.sha256()
        size = 0
        try:
            with self._open_raw(oid) as src, open(tmp, "wb") as out:
                reader = _zstd().ZstdDecompressor().stream_reader(src)
                while chunk := reader.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if digest.hexdigest() != oid:
                raise CorruptObjectError(f"Object {oid} does not match its hash. Run `mlkeep fsck`.")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def __iter__(self) -> Iterator[str]:
        """Every stored object id (temporary files excluded)."""
        for path in self.fs.find(self.root):
            oid = _oid_of(path)
            if oid:
                yield oid

    def entries(self) -> Iterator[tuple[str, int, float | None]]:
        """(id, stored size, modification time or None) of every object, from one listing.

        For `gc`: on S3 the listing carries sizes and times, where asking
        object by object would cost a request each.
        """
        for path, info in self.fs.find(self.root, detail=True).items():
            oid = _oid_of(path)
            if oid:
                yield oid, int(info.get("size") or 0), _mtime(info)

    def verify(self, oid: str) -> bool:
        """True when the stored blob still matches its id (streamed: any size, little memory)."""
        try:
            return self._content_digest(oid)[0] == oid
        except NotFoundError:
            raise
        except Exception:  # not a zstd frame, truncated, unreadable: corrupt either way
            return False

    def content_size(self, oid: str) -> int:
        """The blob's uncompressed size, from its zstd frame header (one small read).

        For reports (`du`), not for trusting content: the header is not
        verified. A frame without a recorded size is read whole, and then
        checked against its id (`CorruptObjectError` if it does not match).
        """
        try:
            header = self.fs.cat_file(self.path(oid), start=0, end=18)  # the longest zstd frame header: one ranged read
        except FileNotFoundError:
            raise NotFoundError(f"Object {oid} is not in the object store at {self.root}.") from None
        try:
            size = _zstd().frame_content_size(header)
        except Exception as exc:
            raise CorruptObjectError(f"Object {oid} is not a zstd frame: {exc}. Run `mlkeep fsck`.") from exc
        if size >= 0:
            return int(size)
        digest, size = self._content_digest(oid)
        if digest != oid:
            raise CorruptObjectError(f"Object {oid} does not match its hash. Run `mlkeep fsck`.")
        return size

    def _content_digest(self, oid: str) -> tuple[str, int]:
        """(SHA-256, size) of the blob's content, streamed."""
        digest = hashlib.sha256()
        size = 0
        with self._open_raw(oid) as src:
            reader = _zstd().ZstdDecompressor().stream_reader(src)
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def abort_incomplete_uploads(self, older_than: float, *, dry_run: bool = False) -> list[IncompleteUpload]:
        """Abort the multipart uploads started before `older_than` (POSIX seconds) and never completed.

        A folder has none: a killed writer leaves a temporary file instead
        (`temporary_files`). The S3 store overrides this.
        """
        return []

    def open_compressed(self, oid: str) -> IO[bytes]:
        """The stored (zstd) bytes of a blob as a stream, unverified: for copying between stores."""
        return self._open_raw(oid)

    def put_stream(self, oid: str, src: IO[bytes]) -> None:
        """Store the compressed payload read from `src` under `oid`, streamed; the caller verifies.

        For transfers between stores (`mlkeep migrate`): the bytes are those
        another store's `open_compressed` returned.
        """
        tmp = self._tmp_path()
        self.fs.makedirs(tmp.rsplit("/", 1)[0], exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                _sync(dst)
            self._rename(tmp, self.path(oid))
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def remove(self, oid: str) -> None:
        self.fs.rm(self.path(oid))

    def quarantine(self, oid: str) -> str:
        """Move an object aside to `<root>/quarantine/` and return where it went.

        For a blob that no longer matches its hash: kept for inspection, but
        out of reach of reads, and no longer "present", so the next writer of
        the same content stores it afresh instead of trusting the bad copy.
        """
        dest = f"{self.root}/quarantine/{oid}.{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(self.path(oid), dest)
        return dest

    def temporary_files(self) -> list[str]:
        """Leftovers of writers that were killed mid-write."""
        return [p for p in self.fs.find(self.root) if p.rsplit("/", 1)[-1].startswith(".tmp-")]

    def _open_raw(self, oid: str) -> IO[bytes]:
        try:
            return self.fs.open(self.path(oid), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise NotFoundError(f"Object {oid} is not in the object store at {self.root}.") from None

    def _tmp_path(self) -> str:
        return f"{self.root}/tmp/.tmp-{uuid.uuid4().hex}"

    def _write(self, oid: str, payload: bytes) -> None:
        if self._local:
            self._write_local(oid, payload)
            return
        tmp = self._tmp_path()
        self.fs.makedirs(tmp.rsplit("/", 1)[0], exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as f:
                f.write(payload)
                _sync(f)
            self._rename(tmp, self.path(oid))
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def _write_local(self, oid: str, payload: bytes | memoryview) -> None:
        """`_write` for a local folder with plain system calls: the temporary file goes into the object's own
        folder (the rename then touches one directory), is created read-only, written, fsynced and renamed
        into place. fsspec's layer cost more than the writing for the small chunk objects of a tensor tree."""
        path = self.path(oid)
        tmp = self._write_temporary(oid, payload, sync=True)  # the bytes are on disk before the name exists
        try:
            os.replace(tmp, path)  # atomic on POSIX; a concurrent same-blob writer is harmless
        except BaseException:
            _unlink(tmp)
            raise

    def _write_temporary(self, oid: str, payload: bytes | memoryview, *, sync: bool) -> str:
        """Write `payload` to a new read-only temporary file in the folder of object `oid` (fsynced with
        `sync`) and return its path; nothing is left behind on failure."""
        folder = self.path(oid).rsplit("/", 1)[0]
        self._make_folder(folder)
        tmp = f"{folder}/{self._tmp_prefix}{next(self._tmp_count)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o444)
        except FileNotFoundError:  # someone removed the folder since: make it again
            self._folders.discard(folder)
            self._make_folder(folder)
            fd = os.open(tmp, flags, 0o444)
        try:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, 0o444)  # whatever the umask took away: every reader may read it, nobody write
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _make_folder(self, folder: str) -> None:
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)

    def _rename(self, tmp: str, final: str) -> None:
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self._local:
            os.replace(tmp, final)  # atomic on POSIX; a concurrent same-blob writer is harmless
            os.chmod(final, 0o444)
        else:
            self.fs.mv(tmp, final)


class Staging:
    """Objects written to temporary names now and published under their ids together.

    A name must never point at bytes that are not on disk, and a capture's
    objects are named by its manifests and record only once all are written:
    so each object is written to a temporary file in its folder and fsynced
    (by the writing thread: a capture's I/O threads overlap that with
    encoding), or, with `sync=False`, left for `publish` to fsync together
    with the others on a few threads (the manifests a capture writes at its
    end); `publish` then renames each into place in the order staged. A
    writer killed before `publish` leaves temporary files that `fsck`
    sweeps; nothing staged is visible to readers. One `syncfs` of the whole
    filesystem instead measured 0.03 s on a quiet disk but up to 1.5 s while
    other processes had data to flush, which a capture would wait for.
    Stores other than a local folder write each object at once (their
    writes are atomic and durable as they are). Safe from several threads.
    """

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._lock = threading.Lock()
        self._staged: dict[str, str] = {}  # object id -> temporary path, in the order staged
        self._unsynced: list[str] = []  # temporary paths `publish` must fsync

    def put_compressed(self, oid: str, frame: bytes, *, sync: bool = True) -> bool:
        """Stage a zstd frame whose content hashes to `oid`, as `ObjectStore.put_compressed` stores one,
        fsynced now unless `sync=False`; False when the object is already stored (then touched) or staged."""
        with self._lock:
            if oid in self._staged:
                return False
        if not self.objects._local:
            return self.objects.put_compressed(oid, frame)
        if self.objects._reuse(oid):
            return False
        tmp = self.objects._write_temporary(oid, frame, sync=sync)
        with self._lock:
            if oid not in self._staged:
                self._staged[oid] = tmp
                if not sync:
                    self._unsynced.append(tmp)
                return True
        _unlink(tmp)  # another thread staged the same object meanwhile
        return False

    def put_bytes(self, data: bytes) -> str:
        """Stage `data` (compressed here, fsynced by `publish`) and return its id."""
        oid = hashlib.sha256(data).hexdigest()
        self.put_compressed(oid, _zstd().ZstdCompressor(level=LEVEL).compress(data), sync=False)
        return oid

    def publish(self) -> None:
        """Make every staged object durable, then give each its name. On failure the objects not yet
        published are discarded (their temporaries removed) and the error raised."""
        with self._lock:
            staged, self._staged = self._staged, {}
            unsynced, self._unsynced = self._unsynced, []
        try:
            _fsync_all(unsynced)
            while staged:
                oid, tmp = next(iter(staged.items()))
                os.replace(tmp, self.objects.path(oid))
                del staged[oid]
        except BaseException:
            for tmp in staged.values():
                _unlink(tmp)
            raise

    def discard(self) -> None:
        """Remove what was staged and not published (an aborted capture)."""
        with self._lock:
            staged, self._staged, self._unsynced = self._staged, {}, []
        for tmp in staged.values():
            _unlink(tmp)


_SYNC_THREADS = 8  # fsyncs in flight at once: the filesystem's journal commits several in one flush


def _fsync_all(paths: list[str]) -> None:
    """fsync each file of `paths`, several at a time."""

    def sync(path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    if len(paths) == 1:
        sync(paths[0])
    elif paths:
        with ThreadPoolExecutor(max_workers=min(_SYNC_THREADS, len(paths)), thread_name_prefix="mlkeep-sync") as pool:
            list(pool.map(sync, paths))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _oid_of(path: str) -> str | None:
    """The object id a stored path holds (`<2 hex>/<62 hex>`), None for temporary and quarantined files."""
    parent, name = path.rsplit("/", 2)[-2:]
    return parent + name if len(parent) == 2 and len(name) == 62 and not name.startswith(".") else None


def _mtime(info: dict[str, Any]) -> float | None:
    """A listing entry's modification time in POSIX seconds, whatever the filesystem calls it."""
    for key in ("mtime", "LastModified", "created", "last_modified"):
        value = info.get(key)
        if value is not None:
            return value.timestamp() if hasattr(value, "timestamp") else float(value)
    return None


def _sync(f: BinaryIO) -> None:
    """fsync a local file so a rename never publishes bytes still in the page cache."""
    f.flush()
    fileno = getattr(f, "fileno", None)
    if fileno is not None:
        try:
            os.fsync(fileno())
        except (OSError, ValueError, TypeError):
            pass
