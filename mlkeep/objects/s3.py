"""Blobs in an S3-compatible bucket (AWS, SeaweedFS, MinIO, ...) through s3fs.

The URL is `s3://bucket/prefix`. Endpoint and credentials come from the usual
AWS variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, profiles, instance roles: whatever
botocore finds), or from the URL's query, which wins::

    s3://models/team?endpoint_url=http://127.0.0.1:8333&key=ID&secret=SECRET&region=us-east-1

`part_size` (bytes, default 16 MiB, at least 5 MiB on AWS) sets the size of
the parts of a multipart upload and of the ranges read back.

What differs from a folder: an S3 PUT is atomic (an object appears whole or
not at all, and a multipart upload only when it is completed), so blobs are
written straight to their final key, never to a temporary name then renamed
(S3 has no rename; a copy would double the traffic). Two writers of the same
blob both PUT the same bytes under the same key, which is harmless. A writer
killed mid-upload leaves an incomplete multipart upload, invisible to
readers, whose parts `mlkeep gc` aborts once they are older than its grace
period (`abort_incomplete_uploads`; a bucket lifecycle rule,
AbortIncompleteMultipartUpload, does the same on AWS). Large blobs stream in
both directions, one part in memory at a time.
"""

from __future__ import annotations

import hashlib
import os
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from mlkeep.errors import InvalidInputError
from mlkeep.objects.store import CHUNK, LEVEL, IncompleteUpload, ObjectStore, _zstd

PART_SIZE = 16 << 20
_QUERY = {"endpoint_url", "key", "secret", "token", "region", "part_size", "anon"}


def filesystem(url: str) -> tuple[Any, str, int]:
    """(s3fs filesystem, `bucket/prefix`, part size) for an `s3://` URL with optional query options."""
    import s3fs

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - _QUERY
    if unknown:
        raise InvalidInputError(f"Unknown option(s) {', '.join(sorted(unknown))} in {url!r}; known: {', '.join(sorted(_QUERY))}.")
    root = (parts.netloc + parts.path).rstrip("/")
    if not parts.netloc:
        raise InvalidInputError(f"{url!r} names no bucket; write s3://BUCKET/PREFIX.")
    client: dict[str, Any] = {}
    endpoint = query.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client["endpoint_url"] = endpoint
    region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    fs = s3fs.S3FileSystem(
        key=query.get("key"),
        secret=query.get("secret"),
        token=query.get("token"),
        anon=query.get("anon", "").lower() in ("1", "true", "yes"),
        client_kwargs=client,
        # Another process may add or remove blobs at any time: never answer from a cached listing.
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    return fs, root, int(query.get("part_size", PART_SIZE))


class S3ObjectStore(ObjectStore):
    """Content-addressed blobs under one prefix of an S3 bucket; see the module docstring."""

    def __init__(self, fs: Any, root: str, part_size: int = PART_SIZE) -> None:
        super().__init__(fs, root)
        self.part_size = part_size

    @classmethod
    def from_url(cls, url: str) -> S3ObjectStore:
        """The store at `s3://bucket/prefix[?options]`; the bucket is created when missing."""
        fs, root, part_size = filesystem(url)
        bucket = root.split("/", 1)[0]
        if not fs.exists(bucket):
            try:
                fs.mkdir(bucket)
            except FileExistsError:  # another process made it first
                pass
        return cls(fs, root, part_size)

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file in two streamed passes (hash, then upload to its final key); return (id, size).

        The id must be known before the upload starts because the upload goes
        straight to the final key; reading a local file twice costs far less
        than copying the object inside the bucket. The second pass hashes
        again: a file changed in between is never published under a wrong id.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
            size = src.tell()
        oid = digest.hexdigest()
        if self.exists(oid):
            return oid, size
        again = hashlib.sha256()
        with open(path, "rb") as src:

            def compress(dst: IO[bytes]) -> None:
                with _zstd().ZstdCompressor(level=LEVEL).stream_writer(dst, size=size, closefd=False) as w:
                    while chunk := src.read(CHUNK):
                        again.update(chunk)
                        w.write(chunk)
                if again.hexdigest() != oid:
                    raise InvalidInputError(f"{os.fspath(path)} changed while it was being stored; store it again.")

            self._upload(oid, compress)
        return oid, size

    def put_stream(self, oid: str, src: IO[bytes]) -> None:
        """Store the compressed payload read from `src` under `oid`, straight to its final key."""

        def copy(dst: IO[bytes]) -> None:
            while chunk := src.read(CHUNK):
                dst.write(chunk)

        self._upload(oid, copy)

    def temporary_files(self) -> list[str]:
        """Always empty: nothing is written under a temporary name on S3."""
        return []

    def abort_incomplete_uploads(self, older_than: float, *, dry_run: bool = False) -> list[IncompleteUpload]:
        """Abort the multipart uploads under this store's prefix started before `older_than` (POSIX seconds).

        They are what writers killed mid-upload leave: never visible to
        readers, but their parts are stored (and billed) until aborted. An
        upload still running that is older than the cutoff is aborted too and
        its writer fails with an error, so the cutoff must exceed the longest
        upload (gc's grace period, an hour by default). With `dry_run`, only
        list them. Uploads outside the prefix (another store, another tool)
        are never touched.
        """
        bucket, _, prefix = self.root.partition("/")
        query: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{prefix}/" if prefix else ""}
        found = []
        while True:
            page = self.fs.call_s3("list_multipart_uploads", **query)
            for upload in page.get("Uploads") or []:
                initiated = upload["Initiated"].timestamp()
                if initiated > older_than:
                    continue
                key, upload_id = upload["Key"], upload["UploadId"]
                try:
                    size = self._parts_size(bucket, key, upload_id)
                    if not dry_run:
                        self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
                except FileNotFoundError:  # NoSuchUpload: completed or aborted since it was listed
                    continue
                found.append(IncompleteUpload(f"{bucket}/{key}", upload_id, initiated, size))
            if not page.get("IsTruncated"):
                return found
            query.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])

    def _parts_size(self, bucket: str, key: str, upload_id: str) -> int:
        """Bytes of the parts an incomplete upload holds (what aborting it frees)."""
        size = 0
        query: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        while True:
            page = self.fs.call_s3("list_parts", **query)
            size += sum(int(p.get("Size") or 0) for p in page.get("Parts") or [])
            if not page.get("IsTruncated"):
                return size
            query["PartNumberMarker"] = page["NextPartNumberMarker"]

    def _write(self, oid: str, payload: bytes) -> None:
        self._upload(oid, lambda dst: dst.write(payload))

    def _upload(self, oid: str, fill: Any) -> None:
        """Write the object at its final key through `fill(file)`; on any error nothing is published.

        s3fs completes an upload when its file is closed, also when it is
        closed by a `with` block that an exception is leaving: a half-written
        blob would appear under its final name. So the file is closed by hand,
        and discarded (the multipart upload aborted) on failure.
        """
        f = self.fs.open(self.path(oid), "wb", block_size=self.part_size)
        try:
            fill(f)
        except BaseException:
            f.discard()
            f.closed = True
            raise
        f.close()

    def _rename(self, tmp: str, final: str) -> None:  # pragma: no cover - S3 never renames
        raise NotImplementedError("S3ObjectStore writes objects straight to their final key.")

    def _open_raw(self, oid: str) -> IO[bytes]:
        from mlkeep.errors import NotFoundError

        try:
            return self.fs.open(self.path(oid), "rb", block_size=self.part_size)  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise NotFoundError(f"Object {oid} is not in the object store at s3://{self.root}.") from None

    def touch(self, oid: str) -> None:
        """Refresh the object's LastModified (copied onto itself), so `gc`'s grace period sees it reused."""
        bucket, key = self.path(oid).split("/", 1)
        try:
            self.fs.call_s3(
                "copy_object", Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                MetadataDirective="REPLACE",
            )
        except Exception:  # best effort, as for folders: a failed touch never fails a write
            pass
