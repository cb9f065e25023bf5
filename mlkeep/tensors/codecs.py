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

An encoded chunk is an object whose bytes are an 80-byte header followed by
the planes; the object store compresses it (zstd). The header names the
encoding, the plane width, the raw length, the SHA-256 of the decoded chunk
and the object id of the delta base, so an object decodes unambiguously on
its own and every decode can be checked against the hash it promises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from mlkeep.errors import CorruptObjectError
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

MAGIC = b"MKT1"
_HEADER = struct.Struct("<4sBBHQ32s32s")
HEADER_SIZE = _HEADER.size  # 80
_NO_BASE = bytes(32)


@dataclass(frozen=True)
class ChunkHeader:
    """What an encoded chunk object says about itself."""

    encoding: str
    width: int
    nbytes: int
    raw_id: str
    base: str | None

    def pack(self) -> bytes:
        base = bytes.fromhex(self.base) if self.base else _NO_BASE
        return _HEADER.pack(MAGIC, _CODE[self.encoding], self.width, 0, self.nbytes, bytes.fromhex(self.raw_id), base)


def read_header(data: bytes | memoryview) -> ChunkHeader:
    """Parse an encoded chunk's header; raises `CorruptObjectError` if it is not one."""
    if len(data) < HEADER_SIZE:
        raise CorruptObjectError("Encoded chunk is shorter than its header.")
    magic, code, width, _flags, nbytes, raw, base = _HEADER.unpack_from(data)
    if magic != MAGIC or code not in _NAME or width not in (1, 2, 4, 8) or len(data) - HEADER_SIZE != nbytes:
        raise CorruptObjectError("Encoded chunk has a malformed header.")
    if (_NAME[code] == FULL) != (base == _NO_BASE):
        raise CorruptObjectError("Encoded chunk's base does not fit its encoding.")
    return ChunkHeader(_NAME[code], width, nbytes, raw.hex(), None if base == _NO_BASE else base.hex())


def read_header_prefix(data: bytes | memoryview) -> ChunkHeader:
    """Parse a chunk header from the first `HEADER_SIZE` bytes of an object (the rest unread)."""
    if len(data) < HEADER_SIZE:
        raise CorruptObjectError("Encoded chunk is shorter than its header.")
    magic, code, width, _flags, nbytes, raw, base = _HEADER.unpack_from(data)
    if magic != MAGIC or code not in _NAME or width not in (1, 2, 4, 8):
        raise CorruptObjectError("Encoded chunk has a malformed header.")
    return ChunkHeader(_NAME[code], width, nbytes, raw.hex(), None if base == _NO_BASE else base.hex())


def to_planes(data: np.ndarray, width: int) -> np.ndarray:
    """Byte planes of a flat uint8 buffer of `width`-byte elements, shape (width, n)."""
    if width == 1:
        return data.reshape(1, -1)
    return data.reshape(-1, width).T.copy()


def from_planes(planes: np.ndarray, width: int, out: np.ndarray) -> None:
    """Interleave planes (flat uint8, plane-major) back into `out` (flat uint8)."""
    if width == 1:
        out[:] = planes
        return
    rows = planes.reshape(width, -1)
    # np.stack along the last axis is several times faster than assigning a transpose.
    np.stack(list(rows), axis=1, out=out.reshape(-1, width))


def delta(encoding: str, new: np.ndarray, base: np.ndarray, width: int) -> np.ndarray:
    """The delta of `new` against `base` (flat uint8 buffers of equal length), flat uint8."""
    u = uint_dtype(width)
    a, b = new.view(u), base.view(u)
    if encoding == XOR:
        return np.bitwise_xor(a, b).view(np.uint8)
    if encoding == SUB:
        d = a - b  # wraps modulo 2**bits: exact for any bit patterns
        zigzag = (d << 1) ^ (d.view(_SIGNED[width]) >> (8 * width - 1)).view(u)
        return zigzag.view(np.uint8)
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


def encode_into(encoding: str, raw: np.ndarray, base: np.ndarray | None, width: int, out: np.ndarray) -> None:
    """Write the planes of `raw` under `encoding` into `out` (flat uint8, len(raw) bytes)."""
    body = raw if encoding == FULL else delta(encoding, raw, _need(base), width)
    out.reshape(width, -1)[:] = body.reshape(-1, width).T


def decode(header: ChunkHeader, payload: memoryview | bytes, base: np.ndarray | None, out: np.ndarray) -> None:
    """Write the raw chunk an encoded payload describes into `out` (flat uint8, header.nbytes).

    `base` is the decoded raw base chunk for delta encodings. Decoding does not
    verify; the caller checks `out` against `header.raw_id`.
    """
    planes = np.frombuffer(payload, dtype=np.uint8)
    from_planes(planes, header.width, out)
    if header.encoding != FULL:
        base_arr = _need(base)
        if len(base_arr) != header.nbytes:
            raise CorruptObjectError("Delta chunk and its base differ in length.")
        undelta(header.encoding, out, base_arr, header.width)


def _need(base: np.ndarray | None) -> np.ndarray:
    if base is None:
        raise ValueError("a delta encoding needs a base chunk")
    return base
