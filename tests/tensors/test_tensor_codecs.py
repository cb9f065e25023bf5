"""Codecs: every encoding round-trips any bit pattern of any supported width."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlkeep.errors import CorruptObjectError
from mlkeep.tensors import codecs
from mlkeep.tensors.blobs import decompress, raw_frame
from mlkeep.tensors.chunks import BLAKE3, SHA256, chunk_id
from mlkeep.tensors.dtypes import as_bytes, plane_width

DTYPES = ["float32", "float16", "float64", "int64", "int32", "uint8", "bool", "int8", "complex64"]
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-45, 6e-8, 1.0, -1.0]


@st.composite
def array_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of one dtype and shape: random bits, specials, and small perturbations."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9))
    n = int(np.prod(shape))
    raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
    a = np.frombuffer(raw, dtype=np.uint8).copy().view(dtype).reshape(shape) if dtype != np.bool_ else (
        np.frombuffer(raw, dtype=np.uint8).reshape(shape) & 1).astype(bool)  # fmt: skip
    if dtype.kind == "f" and n:
        specials = np.array(draw(st.lists(st.sampled_from(SPECIAL), min_size=n, max_size=n)), dtype=dtype)
        mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))).reshape(shape)
        a = np.where(mask, specials.reshape(shape), a)
        if draw(st.booleans()):  # a NaN with a payload: bits numpy arithmetic would never produce
            a.reshape(-1).view(f"u{dtype.itemsize}")[0] |= np.array(-1, dtype=f"i{dtype.itemsize}").view(f"u{dtype.itemsize}") >> 1
    b = a.copy()
    flat = b.reshape(-1).view(np.uint8)
    for i in draw(st.lists(st.integers(0, max(0, len(flat) - 1)), max_size=5)) if len(flat) else []:
        flat[i] ^= draw(st.integers(1, 255)) if dtype != np.bool_ else 0
    return a, b


@settings(max_examples=150, deadline=None)
@given(pair=array_pairs(), encoding=st.sampled_from(codecs.ENCODINGS), level=st.sampled_from([1, 3]))
def test_every_encoding_round_trips_bit_exactly(pair: tuple[np.ndarray, np.ndarray], encoding: str, level: int) -> None:
    base_arr, new_arr = pair
    dtype, _, new = as_bytes(new_arr)
    _, _, base = as_bytes(base_arr)
    if not len(new):
        return  # an empty tensor has no chunks
    width = plane_width(dtype)
    base_oid = None if encoding == codecs.FULL else "ab" * 32
    logical = codecs.pack(encoding, new, base, width, chunk_id(new), BLAKE3, base_oid, level)
    parsed = codecs.read_header(logical)
    assert (parsed.encoding, parsed.width, parsed.nbytes, parsed.raw_id, parsed.base, parsed.hash) == (
        encoding, width, len(new), chunk_id(new), base_oid, BLAKE3)
    out = np.empty(len(new), dtype=np.uint8)
    codecs.decode(parsed, logical, base, out)
    assert out.tobytes() == new.tobytes()


@settings(max_examples=50, deadline=None)
@given(pair=array_pairs(), encoding=st.sampled_from(codecs.ENCODINGS))
def test_format_1_objects_still_decode(pair: tuple[np.ndarray, np.ndarray], encoding: str) -> None:
    """Objects written before per-plane compression: raw planes after an 80-byte header, SHA-256 ids."""
    base_arr, new_arr = pair
    dtype, _, new = as_bytes(new_arr)
    _, _, base = as_bytes(base_arr)
    width = plane_width(dtype)
    planes = codecs.encode(encoding, new, None if encoding == codecs.FULL else base, width)
    header = codecs.ChunkHeader(encoding, width, len(new), chunk_id(new, SHA256), None if encoding == codecs.FULL else "ab" * 32)
    logical = header.pack() + planes.tobytes()
    assert logical[:4] == codecs.MAGIC_1
    parsed = codecs.read_header(logical)
    assert parsed == header
    out = np.empty(len(new), dtype=np.uint8)
    codecs.decode(parsed, logical, base, out)
    assert out.tobytes() == new.tobytes()


def test_incompressible_planes_are_kept_raw_and_compressible_ones_shrink() -> None:
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(1 << 16) * 0.05).astype(np.float32)
    b = a + (rng.standard_normal(1 << 16) * 1e-5).astype(np.float32)
    logical = codecs.pack(codecs.SUB, b.view(np.uint8), a.view(np.uint8), 4, chunk_id(b), BLAKE3, "cd" * 32, 1)
    stored = codecs.read_header(logical).stored
    assert stored is not None
    plane = len(a)
    assert stored[0] == plane  # the lowest mantissa byte of a delta is noise: stored as it is
    assert stored[3] < plane // 20  # sign and exponent barely move


def test_planes_named_noise_are_stored_raw_without_trying_and_still_decode() -> None:
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(1 << 14) * 0.05).astype(np.float32)
    b = a + (rng.standard_normal(1 << 14) * 1e-5).astype(np.float32)
    new, base = b.view(np.uint8), a.view(np.uint8)
    logical = codecs.pack(codecs.XOR, new, base, 4, chunk_id(new), BLAKE3, "cd" * 32, 1, keep_raw={1, 3})
    parsed = codecs.read_header(logical)
    assert logical[:4] == codecs.MAGIC and parsed.joined == 1
    assert parsed.stored is not None and parsed.stored[1] == parsed.stored[3] == len(a)
    assert parsed.stored[2] < len(a)  # the plane not named is compressed as before
    out = np.empty(len(new), dtype=np.uint8)
    codecs.decode(parsed, logical, base, out)
    assert out.tobytes() == new.tobytes()


@pytest.mark.parametrize(("dtype", "keep_raw", "joined"), [
    (np.float32, {0, 1, 3}, 2), (np.float64, {0, 1, 2, 3}, 4), (np.float64, {0, 1, 2}, 2), (np.float16, {0, 1}, 1),
])
def test_raw_low_planes_are_stored_joined_as_low_words_and_decode(dtype: type, keep_raw: set[int], joined: int) -> None:
    """Format 3: noise planes at the bottom are one run of low words; the header says how wide; the other
    planes are still compressed, and every encoding decodes bit for bit."""
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(1 << 13) * 0.05).astype(dtype)
    b = a + (rng.standard_normal(1 << 13) * 1e-3).astype(dtype)
    new, base = b.view(np.uint8), a.view(np.uint8)
    width = a.itemsize
    for encoding in codecs.ENCODINGS:
        ref = None if encoding == codecs.FULL else base
        logical = codecs.pack(encoding, new, ref, width, chunk_id(new), BLAKE3,
                              None if ref is None else "cd" * 32, 1, keep_raw=keep_raw)
        parsed = codecs.read_header(logical)
        assert parsed.joined == joined and logical[:4] == (codecs.MAGIC_3 if joined > 1 else codecs.MAGIC)
        assert parsed.stored is not None and len(parsed.stored) == width - joined + 1
        if joined > 1:
            assert parsed.stored[0] == joined * len(a)
        out = np.empty(len(new), dtype=np.uint8)
        codecs.decode(parsed, logical, ref, out)
        assert out.tobytes() == new.tobytes()


def test_format_3_header_is_checked() -> None:
    rng = np.random.default_rng(3)
    raw = rng.standard_normal(256).astype(np.float32).view(np.uint8)
    logical = codecs.pack(codecs.FULL, raw, None, 4, chunk_id(raw), BLAKE3, None, 1, keep_raw={0, 1})
    assert logical[:4] == codecs.MAGIC_3
    flags = 6  # offset of the flags field: joined width in its high byte
    for joined in (0, 1, 3, 4, 8):  # 4 is not narrower than a 4-byte element
        bad = logical[:flags] + bytes([logical[flags], joined]) + logical[flags + 2 :]
        with pytest.raises(CorruptObjectError):
            codecs.read_header(bad)
    with pytest.raises(CorruptObjectError):
        codecs.read_header(logical[:-1])  # a truncated part
    mkt2 = codecs.MAGIC + logical[4:]  # format 2 cannot carry a joined width
    with pytest.raises(CorruptObjectError):
        codecs.read_header(mkt2)


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_byte_planes_split_and_interleave_like_a_transpose(width: int) -> None:
    """Split and interleave work on whole little-endian words with per-thread scratch buffers: check them
    against the plain transpose, on sizes that grow and shrink so a reused buffer is never stale."""
    rng = np.random.default_rng(width)
    for n in (3, 1 << 18, 5, 1 << 19, 1):
        data = rng.integers(0, 256, n * width, dtype=np.uint8)
        planes = codecs.to_planes(data, width)
        assert np.array_equal(planes, data.reshape(-1, width).T)
        out = np.empty_like(data)
        codecs.interleave(list(planes), out)
        assert np.array_equal(out, data)
        for joined in (2, 4):
            if joined < width:
                parts = codecs.split_parts(codecs.to_planes(data, width, joined), width, joined)
                assert np.array_equal(parts[0], data.reshape(-1, width)[:, :joined].reshape(-1))
                assert all(np.array_equal(p, planes[joined + i]) for i, p in enumerate(parts[1:]))
                out[:] = 0
                codecs.interleave(parts, out, joined)
                assert np.array_equal(out, data)


def test_small_float_updates_leave_high_planes_zero() -> None:
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(4096) * 0.05).astype(np.float32)
    b = a + (rng.standard_normal(4096) * 1e-5).astype(np.float32)
    for enc in (codecs.XOR, codecs.SUB):
        planes = codecs.encode(enc, b.view(np.uint8), a.view(np.uint8), 4).reshape(4, -1)
        assert (planes[3] == 0).mean() > 0.95  # sign and high exponent bits never change


def test_sub_delta_handles_carries_and_wraparound() -> None:
    a = np.array([0x7FFF, 0xFFFF, 0, 0x8000], dtype=np.uint16)
    b = np.array([0x8000, 0, 0xFFFF, 0x7FFF], dtype=np.uint16)
    d = codecs.delta(codecs.SUB, b.view(np.uint8), a.view(np.uint8), 2)
    assert list(d.view(np.uint16)) == [2, 2, 1, 1]  # zig-zag: +1 -> 2, -1 -> 1
    codecs.undelta(codecs.SUB, d, a.view(np.uint8), 2)
    assert d.view(np.uint16).tolist() == b.tolist()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:10],
        lambda b: b"XXXX" + b[4:],
        lambda b: b[:4] + b"\x09" + b[5:],
        lambda b: b[:6] + b"\x07\x00" + b[8:],  # unknown hash
        lambda b: b + b"extra",
        lambda b: b[:-1],
    ],
)
@pytest.mark.parametrize("fmt", [1, 2])
def test_malformed_headers_are_corrupt(mutate, fmt: int) -> None:  # type: ignore[no-untyped-def]
    raw = np.arange(16, dtype=np.uint8)
    if fmt == 1:
        logical = codecs.ChunkHeader(codecs.FULL, 1, 16, chunk_id(raw), None).pack() + raw.tobytes()
    else:
        logical = codecs.pack(codecs.FULL, raw, None, 1, chunk_id(raw), BLAKE3, None, 1)
    with pytest.raises(CorruptObjectError):
        codecs.read_header(mutate(logical))


def test_a_plane_table_that_does_not_fit_is_corrupt() -> None:
    raw = np.arange(16, dtype=np.uint8)
    logical = codecs.pack(codecs.FULL, raw, None, 1, chunk_id(raw), BLAKE3, None, 1)
    with pytest.raises(CorruptObjectError):
        codecs.read_header(logical[:80] + b"\xff" + logical[81:])  # names more bytes than there are


@pytest.mark.parametrize("sizes", [[], [0], [5], [131072], [131073, 7, 300000], [0, 200000, 0]])
def test_raw_frames_are_standard_zstd_frames_of_their_parts(sizes: list[int]) -> None:
    import zstandard

    rng = np.random.default_rng(len(sizes))
    parts = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    frame = raw_frame([memoryview(p) for p in parts])
    assert zstandard.frame_content_size(frame) == sum(sizes)
    assert zstandard.ZstdDecompressor().decompress(frame) == b"".join(parts) == decompress(frame)
    if sizes and sum(sizes):  # zstandard answers an empty frame from its header alone
        with pytest.raises(CorruptObjectError):
            decompress(frame[:-1])
