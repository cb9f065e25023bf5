"""Packs: small encoded chunks of one tree stored together as one object.

A pack's content is a 4-byte magic followed by its members, each an ordinary
encoded chunk (header, plane table, planes; see `codecs`), one after the
other. A manifest entry names the pack as its object and records where its
member lies (`ChunkRef.at`), so the pack needs no index of its own and is
content-addressed like any object: `gc` keeps it while any tree names it,
`fsck` re-hashes it. Members are always full chunks, never delta bases, so a
delta chain never has to look inside a pack.
"""

from __future__ import annotations

from mlkeep.errors import CorruptObjectError

MAGIC = b"MKP1"


def join(members: list[bytes]) -> tuple[bytes, list[tuple[int, int]]]:
    """A pack's content and each member's (offset, length) within it."""
    at, pos = [], len(MAGIC)
    for member in members:
        at.append((pos, len(member)))
        pos += len(member)
    return b"".join([MAGIC, *members]), at


def member(content: bytes | memoryview, at: tuple[int, int], oid: str) -> memoryview:
    """The member at `at` of pack `oid`'s content; `CorruptObjectError` if the object is no pack or too short."""
    offset, length = at
    if bytes(content[: len(MAGIC)]) != MAGIC:
        raise CorruptObjectError(f"Object {oid} is not a pack of chunks. Run `mlkeep fsck`.")
    if offset < len(MAGIC) or length < 0 or offset + length > len(content):
        raise CorruptObjectError(f"Pack {oid} is shorter than its manifest says. Run `mlkeep fsck`.")
    return memoryview(content)[offset : offset + length]
