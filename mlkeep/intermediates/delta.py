"""Chunks stored together: one chunk kept as what differs from a similar stored chunk (its *base*).

Two stages of a pipeline that rescale the same features, or one layer in two
fine-tuned versions, give chunks whose codes are nearly the same bytes. Two
ways of keeping only what differs, each chosen when it is smaller:

* `DICT`: zstd compresses the chunk with the base's raw content as its
  dictionary, which finds shared runs wherever they sit (a stage that keeps
  some columns of its input);
* `SUB`: the byte-wise difference from a base of the same length, then zstd.
  k-bit codes of a layer that moved a little between two checkpoints differ
  by a code or two at most places, and no run is shared for a dictionary to
  find, while the difference is mostly zeros and ±1.

A delta object is its 4-byte magic, the base's 32-byte id (a `SUB` delta
then an 8-byte digest of the content it restores), then the zstd frame. Bases are always full chunks (never deltas), so a read needs at most
one extra object. Lossless: the content comes back byte for byte, and both
the delta and its base are verified by their hashes on read.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError

DICT = b"MKD1"
SUB = b"MKD2"
_HEAD = len(DICT) + 32
_DIGEST = 8


def _zstd() -> Any:
    import zstandard

    return zstandard


def _dictionary(base: bytes) -> Any:
    zstd = _zstd()
    return zstd.ZstdCompressionDict(base, dict_type=zstd.DICT_TYPE_RAWCONTENT)


def encode(content: bytes, base_id: str, base: bytes, level: int, good_enough: int = 0,
           dictionary: bool = True) -> bytes | None:
    """The smaller delta object of `content` against the base chunk `base` (whose object id is `base_id`);
    a `SUB` delta of at most `good_enough` bytes is taken without trying the dearer `DICT` one, which
    `dictionary=False` never tries (None then when the lengths differ)."""
    sub = None
    if len(content) == len(base):
        frame = _zstd().ZstdCompressor(level=level).compress(_difference(content, base))
        sub = SUB + bytes.fromhex(base_id) + _digest(content) + frame
        if len(sub) <= good_enough or not dictionary:
            return sub
    if not dictionary:
        return None
    # the checksum makes decoding against any other base fail loudly instead of returning other bytes
    frame = _zstd().ZstdCompressor(level=level, dict_data=_dictionary(base), write_checksum=True).compress(content)
    full = DICT + bytes.fromhex(base_id) + frame
    return sub if sub is not None and len(sub) < len(full) else full


def is_delta(data: bytes) -> bool:
    return data[: len(DICT)] in (DICT, SUB)


def base_of(data: bytes) -> str:
    """The object id of a delta's base chunk."""
    if len(data) < _HEAD or not is_delta(data):
        raise CorruptObjectError("Intermediate delta chunk is shorter than its header.")
    return data[len(DICT) : _HEAD].hex()


def decode(data: bytes, base: bytes) -> bytes:
    """The content of a delta given its base's content; `CorruptObjectError` if they do not fit."""
    try:
        if data[: len(SUB)] == SUB:
            diff = _zstd().ZstdDecompressor().decompress(data[_HEAD + _DIGEST :])
            content = (np.frombuffer(diff, np.uint8) + np.frombuffer(base, np.uint8)).tobytes()
            if _digest(content) != data[_HEAD : _HEAD + _DIGEST]:
                raise CorruptObjectError("Intermediate delta chunk does not fit its base.")
            return content
        return _zstd().ZstdDecompressor(dict_data=_dictionary(base)).decompress(data[_HEAD:])  # type: ignore[no-any-return]
    except CorruptObjectError:
        raise
    except Exception as exc:  # zstandard raises its own ZstdError
        raise CorruptObjectError(f"Intermediate delta chunk cannot be decoded against its base: {exc}.") from exc


def _digest(content: bytes) -> bytes:
    """A short digest of the content a `SUB` delta restores: adding a difference to the wrong base would
    otherwise give other bytes without a word."""
    return hashlib.blake2b(content, digest_size=_DIGEST).digest()


def _difference(content: bytes, base: bytes) -> bytes:
    """content − base byte by byte, modulo 256 (what `decode` adds back)."""
    return (np.frombuffer(content, np.uint8) - np.frombuffer(base, np.uint8)).tobytes()
