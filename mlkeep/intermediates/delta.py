"""Chunks stored together: one chunk compressed with a similar stored chunk as its dictionary.

Two stages of a pipeline that rescale the same features, or one layer in two
fine-tuned versions, give chunks whose codes are nearly the same bytes. zstd
compresses a chunk against the raw content of such a *base* chunk and keeps
only what differs, which is what storing them together and compressing them
together achieves, while every chunk stays its own content-addressed object.

A delta object is `MAGIC`, the base's 32-byte id, then the zstd frame. Bases
are always full chunks (never deltas), so a read needs at most one extra
object. Lossless: the content comes back byte for byte, and both the delta
and its base are verified by their hashes on read.
"""

from __future__ import annotations

from typing import Any

from mlkeep.errors import CorruptObjectError

MAGIC = b"MKD1"
_HEAD = len(MAGIC) + 32


def _zstd() -> Any:
    import zstandard

    return zstandard


def _dictionary(base: bytes) -> Any:
    zstd = _zstd()
    return zstd.ZstdCompressionDict(base, dict_type=zstd.DICT_TYPE_RAWCONTENT)


def encode(content: bytes, base_id: str, base: bytes, level: int) -> bytes:
    """The delta object of `content` against the base chunk `base` (whose object id is `base_id`)."""
    # the checksum makes decoding against any other base fail loudly instead of returning other bytes
    frame = _zstd().ZstdCompressor(level=level, dict_data=_dictionary(base), write_checksum=True).compress(content)
    return MAGIC + bytes.fromhex(base_id) + frame


def is_delta(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def base_of(data: bytes) -> str:
    """The object id of a delta's base chunk."""
    if len(data) < _HEAD or not is_delta(data):
        raise CorruptObjectError("Intermediate delta chunk is shorter than its header.")
    return data[len(MAGIC) : _HEAD].hex()


def decode(data: bytes, base: bytes) -> bytes:
    """The content of a delta given its base's content; `CorruptObjectError` if they do not fit."""
    try:
        return _zstd().ZstdDecompressor(dict_data=_dictionary(base)).decompress(data[_HEAD:])  # type: ignore[no-any-return]
    except Exception as exc:  # zstandard raises its own ZstdError
        raise CorruptObjectError(f"Intermediate delta chunk cannot be decoded against its base: {exc}.") from exc
