"""Lossless chunk encodings: byte planes, XOR and subtraction deltas, the chunk object format.

Three encodings, all bit-exact:

* ``full``: the chunk's elements split into byte planes (all lowest bytes, then
  all next bytes, ...). The high-order plane of floats (sign and exponent) is
  low-entropy and compresses well once it is contiguous.
* ``xor``: ``new ^ base`` on the unsigned bit patterns, then byte planes. A
  small update leaves sign, exponent and top mantissa bits equal, so the
  high planes become runs of zeros.
* ``sub``: ``new - base`` as unsigned integers (wrapping), zig-zag folded so a
  small negative difference is a small number too, then byte planes. Beats
  XOR when an update carries across a byte boundary (0x7fff -> 0x8000).

An encoded chunk is an object whose content is an 80-byte header, a table of
each plane's stored length (4 bytes a plane), then the planes, each zstd-
compressed on its own or kept raw when compressing does not make it smaller
(format ``MKT2``). Planes differ: the high plane of a fine-tuning delta shrinks
to under 1%, the low two do not shrink at all, and trying zstd on a plane of
noise costs a fraction of what compressing the whole chunk in one frame did
(which also compressed worse). The object store's zstd frame around the
content then holds it as raw blocks (`blobs.raw_frame`). The header names the
encoding, the plane width, the raw length, the hash of the decoded chunk and
the object id of the delta base, so an object decodes unambiguously on its
own and every decode can be checked against the hash it promises.

Format ``MKT3`` is format 2 with the low planes *joined*: when the planner's
sample shows the lowest 2 (or 4, of 8-byte elements) planes to be noise, they
are stored raw anyway, so they are kept together as the elements' low 2-byte
(4-byte) words instead of being split and put back byte by byte: one
narrowing cast to write, one widening cast to read, where byte planes took a
shift and a cast each way per plane (the interleave is the costliest step of
a checkout). The header's flags field carries the joined width in its high
byte; the plane table then lists ``width - joined + 1`` parts, the words
first.

Format ``MKT1`` (written before per-plane compression: raw planes after the
header, compressed only by the object store's frame) still decodes.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from mlkeep.errors import CorruptObjectError
from mlkeep.tensors.blobs import compress, decompress
from mlkeep.tensors.chunks import BLAKE3, SHA256
from mlkeep.tensors.dtypes import uint_dtype

FULL = "full"
XOR = "xor"
SUB = "sub"
ENCODINGS = (FULL, XOR, SUB)
# Not an encoding of bytes: a chunk left unstored because the commit's training
# provenance recreates it (its manifest entry has no object; `base` names the
# stored chunk the re-run starts from, so later versions can delta against it).
RECIPE = "recipe"
_CODE = {FULL: 0, XOR: 1, SUB: 2}
_NAME = {v: k for k, v in _CODE.items()}
_SIGNED = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}

MAGIC_1, MAGIC, MAGIC_3 = b"MKT1", b"MKT2", b"MKT3"
_HEADER = struct.Struct("<4sBBHQ32s32s")
HEADER_SIZE = _HEADER.size  # 80: the fixed part, enough to learn an object's delta base
_NO_BASE = bytes(32)
_HASH_CODE = {SHA256: 0, BLAKE3: 1}  # the header's flags field: how `raw_id` was hashed (0 in every MKT1 object)
_HASH_NAME = {v: k for k, v in _HASH_CODE.items()}


@dataclass(frozen=True)
class ChunkHeader:
    """What an encoded chunk object says about itself.

    `hash` is the algorithm of `raw_id`. `stored` holds each part's stored
    length (format 2 and 3); None for a format-1 object, whose planes follow
    the header raw. `joined` is the width of the low words stored as one part
    before the remaining byte planes (format 3); 1 when every plane is its own.
    """

    encoding: str
    width: int
    nbytes: int
    raw_id: str
    base: str | None
    hash: str = SHA256
    stored: tuple[int, ...] | None = None
    joined: int = 1

    @property
    def parts(self) -> int:
        """Parts the payload holds: the joined low words, then one byte plane per remaining byte."""
        return self.width - self.joined + 1

    @property
    def size(self) -> int:
        """Bytes of the header with its plane table: where the planes start."""
        return HEADER_SIZE + (4 * self.parts if self.stored is not None else 0)

    def pack(self) -> bytes:
        base = bytes.fromhex(self.base) if self.base else _NO_BASE
        magic = MAGIC_1 if self.stored is None else (MAGIC if self.joined == 1 else MAGIC_3)
        flags = _HASH_CODE[self.hash] | (self.joined << 8 if self.joined > 1 else 0)
        fixed = _HEADER.pack(magic, _CODE[self.encoding], self.width, flags, self.nbytes,
                             bytes.fromhex(self.raw_id), base)
        return fixed if self.stored is None else fixed + struct.pack(f"<{self.parts}I", *self.stored)


def read_header(data: bytes | memoryview) -> ChunkHeader:
    """Parse an encoded chunk's header and check it fits the object's length; `CorruptObjectError` if not."""
    header = read_header_prefix(data)
    if header.encoding not in ENCODINGS or (header.encoding == FULL) != (header.base is None):
        raise CorruptObjectError("Encoded chunk's base does not fit its encoding.")
    if header.nbytes % header.width:
        raise CorruptObjectError("Encoded chunk's length is not a whole number of elements.")
    if bytes(data[:4]) in (MAGIC, MAGIC_3):
        if len(data) < header.size + 4 * header.parts:
            raise CorruptObjectError("Encoded chunk is shorter than its plane table.")
        stored = struct.unpack_from(f"<{header.parts}I", data, HEADER_SIZE)
        header = ChunkHeader(header.encoding, header.width, header.nbytes, header.raw_id, header.base, header.hash,
                             stored, header.joined)
        plane = header.nbytes // header.width
        if stored[0] > plane * header.joined or any(n > plane for n in stored[1:]) \
                or len(data) != header.size + sum(stored):
            raise CorruptObjectError("Encoded chunk's plane table does not fit its length.")
    elif len(data) - HEADER_SIZE != header.nbytes:
        raise CorruptObjectError("Encoded chunk has a malformed header.")
    return header


def read_header_prefix(data: bytes | memoryview) -> ChunkHeader:
    """Parse the fixed part of a chunk header from the first `HEADER_SIZE` bytes of an object (the rest unread)."""
    if len(data) < HEADER_SIZE:
        raise CorruptObjectError("Encoded chunk is shorter than its header.")
    magic, code, width, flags, nbytes, raw, base = _HEADER.unpack_from(data)
    joined = flags >> 8 if magic == MAGIC_3 else 1
    if magic not in (MAGIC, MAGIC_1, MAGIC_3) or code not in _NAME or width not in (1, 2, 4, 8) \
            or flags & 0xFF not in _HASH_NAME or (magic != MAGIC_3 and flags > 0xFF) \
            or (magic == MAGIC_3 and (joined not in (2, 4) or joined >= width)):
        raise CorruptObjectError("Encoded chunk has a malformed header.")
    return ChunkHeader(_NAME[code], width, nbytes, raw.hex(), None if base == _NO_BASE else base.hex(),
                       _HASH_NAME[flags & 0xFF], joined=joined)


def pack(encoding: str, raw: np.ndarray, base: np.ndarray | None, width: int, raw_id: str, hash: str,
         base_oid: str | None, level: int | None, keep_raw: Collection[int] = ()) -> bytes:
    """`pack_parts` joined: an encoded chunk object's content."""
    return b"".join(pack_parts(encoding, raw, base, width, raw_id, hash, base_oid, level, keep_raw))


def pack_parts(encoding: str, raw: np.ndarray, base: np.ndarray | None, width: int, raw_id: str, hash: str,
               base_oid: str | None, level: int | None, keep_raw: Collection[int] = ()) -> list[bytes | memoryview]:
    """An encoded chunk object's content in pieces: the header with its plane table (format 2, or 3 with joined
    low planes), then each plane compressed or raw. Raw pieces are views of this thread's scratch buffer, so
    they are joined (or framed, `blobs.raw_frame`) before the thread packs again.

    `level` None keeps every plane raw without trying zstd; so do the planes
    numbered in `keep_raw`, which a sample showed to be noise (the low
    mantissa bytes of a fine-tuning delta): zstd would spend as long on them
    as on the rest of the chunk, to save nothing. When the lowest planes are
    all raw they are stored joined, as low words (format 3). A full chunk of
    width 1 is *flat*: its bytes as they are, which decode with one copy.
    """
    raw_planes = set(range(width)) if level is None else set(keep_raw)
    joined = max([j for j in (2, 4) if j < width and raw_planes.issuperset(range(j))], default=1)
    buf = _scratch(3, len(raw))  # raw parts are views of it: join them before this thread packs again
    encode_into(encoding, raw, base, width, buf, joined)
    rows = split_parts(buf, width, joined)
    parts = [memoryview(rows[0]) if joined > 1 else _part(rows[0], 0, level, raw_planes)]  # type: ignore[arg-type]
    parts += [_part(row, joined + i, level, raw_planes) for i, row in enumerate(rows[1:])]
    header = ChunkHeader(encoding, width, len(raw), raw_id, base_oid, hash, tuple(len(p) for p in parts), joined)
    return [header.pack(), *parts]


def _part(plane: np.ndarray, index: int, level: int | None, raw_planes: set[int]) -> bytes | memoryview:
    return memoryview(plane) if level is None or index in raw_planes else _shrink(plane, level)  # type: ignore[arg-type]


def split_parts(planes: np.ndarray, width: int, joined: int = 1) -> list[np.ndarray]:
    """The parts of flat plane-major `planes`: the joined low words (as bytes), then each remaining plane."""
    rows = planes.reshape(width, -1)
    return [rows[:joined].reshape(-1), *rows[joined:]]


def plane_sizes(planes: np.ndarray, width: int, level: int) -> list[int]:
    """Bytes each plane (of flat uint8, plane-major `planes`) takes in a format-2 object."""
    return [len(_shrink(plane, level)) for plane in planes.reshape(width, -1)]


def _shrink(plane: np.ndarray, level: int) -> bytes | memoryview:
    """A plane zstd-compressed, or as it is when compressing does not make it smaller."""
    packed = compress(plane, level, planes=True)
    return packed if len(packed) < len(plane) else memoryview(plane)  # type: ignore[arg-type]


def to_planes(data: np.ndarray, width: int, joined: int = 1) -> np.ndarray:
    """Byte planes of a flat uint8 buffer of `width`-byte elements, shape (width, n); with `joined`, the first
    `joined` rows together hold the low `joined`-byte words instead (see `split_parts`)."""
    if width == 1:
        return data.reshape(1, -1)
    planes = np.empty((width, len(data) // width), dtype=np.uint8)
    split_into(data, width, planes, joined)
    return planes


def split_into(data: np.ndarray, width: int, planes: np.ndarray, joined: int = 1) -> None:
    """Write the byte planes of `data` (flat uint8, little-endian `width`-byte elements) into `planes` (width, n),
    the lowest `joined` of them as one run of low words.

    Whole-element shifts and a narrowing cast are SIMD loops in numpy, about
    twice as fast as copying a transposed byte view, which numpy does one
    byte at a time.
    """
    words = data.view(f"<u{width}")  # planes are of the stored (little-endian) bytes on any host
    shifted = _scratch(0, data.nbytes).view(words.dtype)
    if joined > 1:
        np.copyto(planes[:joined].reshape(-1).view(f"<u{joined}"), words, casting="unsafe")  # keeps the low bytes
    for k in range(joined if joined > 1 else 0, width):
        np.copyto(planes[k], np.right_shift(words, 8 * k, out=shifted) if k else words, casting="unsafe")


def from_planes(planes: np.ndarray, width: int, out: np.ndarray) -> None:
    """Interleave planes (flat uint8, plane-major) back into `out` (flat uint8)."""
    interleave(list(planes.reshape(width, -1)), out)


def interleave(rows: list[np.ndarray], out: np.ndarray, joined: int = 1) -> None:
    """Interleave byte planes (one flat uint8 array each) into `out` (flat uint8); with `joined`, the first
    row holds the elements' low `joined`-byte words (see `split_parts`).

    Each plane is widened to whole elements, shifted into place and OR-ed in:
    SIMD loops, 2-3 times faster than numpy's byte-by-byte strided copy.
    """
    width = joined + len(rows) - 1
    if width == 1:
        out[:] = rows[0]
        return
    words = out.view(f"<u{width}")
    np.copyto(words, rows[0].view(f"<u{joined}") if joined > 1 else rows[0], casting="unsafe")
    wide = _scratch(0, out.nbytes).view(words.dtype)
    for k, row in zip(range(joined, width), rows[1:]):
        np.copyto(wide, row, casting="unsafe")
        np.left_shift(wide, 8 * k, out=wide)
        np.bitwise_or(words, wide, out=words)


def delta(encoding: str, new: np.ndarray, base: np.ndarray, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """The delta of `new` against `base` (flat uint8 buffers of equal length), flat uint8 (in `out` if given)."""
    u = uint_dtype(width)
    a, b = new.view(u), base.view(u)
    d = np.empty_like(a) if out is None else out.view(u)
    if encoding == XOR:
        return np.bitwise_xor(a, b, out=d).view(np.uint8)
    if encoding == SUB:
        np.subtract(a, b, out=d)  # wraps modulo 2**bits: exact for any bit patterns
        signs = _scratch(1, d.nbytes).view(_SIGNED[width])
        np.right_shift(d.view(_SIGNED[width]), 8 * width - 1, out=signs)  # 0 or all ones
        np.left_shift(d, 1, out=d)
        np.bitwise_xor(d, signs.view(u), out=d)  # zig-zag: a small negative step is a small number too
        return d.view(np.uint8)
    raise ValueError(f"not a delta encoding: {encoding}")


def undelta(encoding: str, d: np.ndarray, base: np.ndarray, width: int) -> None:
    """Turn the delta in `d` (flat uint8) back into the new bytes, in place."""
    u = uint_dtype(width)
    z, b = d.view(u), base.view(u)
    if encoding == XOR:
        np.bitwise_xor(z, b, out=z)
    elif encoding == SUB:
        signs = (z & 1).view(_SIGNED[width])
        np.negative(signs, out=signs)  # 0 or all ones
        np.right_shift(z, 1, out=z)
        np.bitwise_xor(z, signs.view(u), out=z)
        np.add(z, b, out=z)
    else:
        raise ValueError(f"not a delta encoding: {encoding}")


def encode(encoding: str, raw: np.ndarray, base: np.ndarray | None, width: int) -> np.ndarray:
    """The planes (flat uint8, plane-major) of `raw` under `encoding` (header not included)."""
    out = np.empty(len(raw), dtype=np.uint8)
    encode_into(encoding, raw, base, width, out)
    return out


def encode_into(encoding: str, raw: np.ndarray, base: np.ndarray | None, width: int, out: np.ndarray,
                joined: int = 1) -> None:
    """Write the planes of `raw` under `encoding` into `out` (flat uint8, len(raw) bytes), the lowest `joined`
    as low words."""
    body = raw if encoding == FULL else delta(encoding, raw, _need(base), width, _scratch(2, len(raw)))
    if width == 1:
        out[:] = body
    else:
        split_into(body, width, out.reshape(width, -1), joined)


def decode(header: ChunkHeader, data: memoryview | bytes, base: np.ndarray | None, out: np.ndarray) -> None:
    """Write the raw chunk an encoded object's content `data` describes into `out` (flat uint8, header.nbytes).

    `header` is `read_header(data)`; `base` is the decoded raw base chunk for
    delta encodings. Decoding does not verify; the caller checks `out`
    against `header.raw_id`.
    """
    interleave(planes_of(header, data), out, header.joined)
    if header.encoding != FULL:
        base_arr = _need(base)
        if len(base_arr) != header.nbytes:
            raise CorruptObjectError("Delta chunk and its base differ in length.")
        undelta(header.encoding, out, base_arr, header.width)


def planes_of(header: ChunkHeader, data: memoryview | bytes) -> list[np.ndarray]:
    """The parts an object's content holds (decompressed; read-only when stored raw): its byte planes, the
    lowest `header.joined` of them as one part of low words."""
    payload = memoryview(data)[header.size :]
    plane = header.nbytes // header.width
    if header.stored is None:
        return list(np.frombuffer(payload, dtype=np.uint8).reshape(header.width, plane))
    rows, pos = [], 0
    for i, n in enumerate(header.stored):
        size = plane * header.joined if i == 0 else plane
        part = payload[pos : pos + n]
        pos += n
        row = np.frombuffer(part if n == size else decompress(part), dtype=np.uint8)
        if len(row) != size:
            raise CorruptObjectError("Encoded chunk's plane does not decompress to its length.")
        rows.append(row)
    return rows


_local = threading.local()


def _scratch(slot: int, nbytes: int) -> np.ndarray:
    """A reusable per-thread uint8 buffer of `nbytes` (contents undefined), for temporaries that die within a call.

    A fresh megabyte from malloc comes back from the kernel page by page
    (glibc returns freed large blocks to it), which cost more than the
    arithmetic done in it: encoding a chunk took 2 ms instead of 0.3.
    """
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buf = buffers.get(slot)
    if buf is None or len(buf) < nbytes:
        buf = buffers[slot] = np.empty(max(nbytes, 1 << 20), dtype=np.uint8)
    return buf[:nbytes]


def _need(base: np.ndarray | None) -> np.ndarray:
    if base is None:
        raise ValueError("a delta encoding needs a base chunk")
    return base
