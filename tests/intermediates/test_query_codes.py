"""A layer stored as 8-bit codes read as its codes decodes to what a read of its values gives, and CKA's
cross term taken on the codes gives the CKA of the decoded values."""

from __future__ import annotations

import numpy as np
import pytest

from mlkeep.errors import CorruptObjectError
from mlkeep.intermediates import codes, queries, storage
from mlkeep.intermediates.codecs import decode_chunk, encode_chunk, parse_codec


def _cka64(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64), b.astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _as_codes(values: np.ndarray, block_rows: int, chunk_cols: int) -> codes.Codes:
    """`values` encoded as 8-bit uniform chunks on a grid, parsed back as codes."""
    kbit = parse_codec("kbit(8)")
    chunks = []
    for r0 in range(0, len(values), block_rows):
        for c0 in range(0, values.shape[1], chunk_cols):
            part = values[r0 : r0 + block_rows, c0 : c0 + chunk_cols]
            lo, step, held = codes.parse(encode_chunk(kbit, part), *part.shape)
            chunks.append(codes.CodeChunk(r0, r0 + len(part), np.arange(c0, c0 + part.shape[1]), lo, step, held))
    return codes.Codes(*values.shape, chunks)


def _wide_and_narrow(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ReLU-like wide layer (a dead unit, a constant one, a large-mean small-spread one) and a narrow
    layer computed from it."""
    rng = np.random.default_rng(seed)
    wide = np.maximum(rng.standard_normal((n, 96)) @ rng.standard_normal((96, 96)), 0).astype(np.float32)
    wide[:, 0], wide[:, 1] = 0.0, 2.5
    wide[:, 2] = 1000.0 + rng.standard_normal(n).astype(np.float32) * 1e-2
    narrow = (np.tanh(wide[:, :12] / 4) + 0.1 * rng.standard_normal((n, 12))).astype(np.float32)
    return wide, narrow


def test_codes_decode_to_the_values() -> None:
    wide, _ = _wide_and_narrow(300)
    held = _as_codes(wide, 128, 32)
    values = held.decode()
    assert values.flags.f_contiguous and len(held) == 300
    for chunk in held.chunks:  # each chunk decodes as the codec's own decoder does
        part = wide[chunk.r0 : chunk.r1, chunk.cols]
        np.testing.assert_array_equal(values[chunk.r0 : chunk.r1, chunk.cols],
                                      decode_chunk(encode_chunk(parse_codec("kbit(8)"), part)))


def test_parse_refuses_chunks_that_are_not_8bit_codes() -> None:
    block = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    with pytest.raises(CorruptObjectError, match="8-bit codes"):
        codes.parse(encode_chunk(parse_codec("kbit(4)"), block), 10, 4)
    with pytest.raises(CorruptObjectError, match="8-bit codes"):
        codes.parse(encode_chunk(parse_codec("kbit(8)"), block), 10, 5)  # not the shape promised


@pytest.mark.parametrize("block_rows", [128, 1000])  # several blocks (each its own lo and step) and one
def test_cka_on_codes_is_the_cka_of_the_decoded_values(block_rows: int,
                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    wide, narrow = _wide_and_narrow(700)
    held = _as_codes(wide, block_rows, 32)
    values = held.decode()
    want, tx, ty = queries.cka_and_self_terms(values, narrow)
    assert want == pytest.approx(_cka64(values, narrow), abs=1e-6)
    used = []
    real = queries._cross_on_codes
    monkeypatch.setattr(queries, "_cross_on_codes", lambda x, y: used.append(1) or real(x, y))
    for a, b, terms in ((held, narrow, (tx, None)), (narrow, held, (None, tx))):
        value, *kept = queries.cka_and_self_terms(a, b, terms)  # type: ignore[arg-type]
        assert value == pytest.approx(_cka64(values, narrow), abs=1e-6)
        assert kept == ([tx, pytest.approx(ty, rel=1e-5)] if a is held else [pytest.approx(ty, rel=1e-5), tx])
    narrow_codes = _as_codes(narrow, 128, 8)  # both as codes: the narrow one is decoded
    value, _, ty = queries.cka_and_self_terms(held, narrow_codes, (tx, None))
    assert value == pytest.approx(_cka64(values, narrow_codes.decode()), abs=1e-6)
    assert ty == pytest.approx(queries.self_term(narrow_codes.decode()), rel=1e-6)
    assert len(used) == 3
    # without the wide layer's self term it is computed from the decoded values, and returned to be kept
    value, nx, _ = queries.cka_and_self_terms(held, narrow)
    assert len(used) == 3 and nx == pytest.approx(tx, rel=1e-6) and value == pytest.approx(want, abs=1e-7)
    assert queries.cka(held, held) == pytest.approx(1.0, abs=1e-6)
    assert queries.svcca(held, narrow) == pytest.approx(queries.svcca(values, narrow), abs=1e-9)


def test_store_reads_codes_of_8bit_layers_only(inter, cnn, digits_images) -> None:  # type: ignore[no-untyped-def]
    X, y = digits_images
    got = inter.capture(cnn, X, layers=["features.1", "head.2"], codec={"features.1": "kbit", "head.2": "exact"},
                        targets=y)
    wide, exact = got["features.1"], got["head.2"]
    manifest = storage.get_manifest(inter.objects, wide.manifest)
    values = inter.get(wide, source="read")
    held = storage.read_codes(inter.objects, manifest, None)
    assert held is not None and len(held.chunks) > 4  # several blocks and chunks
    np.testing.assert_array_equal(held.decode(), values)
    cols = np.array([40, 3, 41, 200])
    some = storage.read_codes(inter.objects, manifest, cols)
    assert some is not None
    np.testing.assert_array_equal(some.decode(), values[:, cols])
    assert storage.read_codes(inter.objects, storage.get_manifest(inter.objects, exact.manifest), None) is None
    # through the store: the first query keeps the self terms, the next runs the cross term on the codes
    first = inter.similarity(wide, exact, source="read")
    second = inter.similarity(wide, exact, source="read")
    want = _cka64(values, inter.get(exact, source="read"))
    assert first == pytest.approx(want, abs=1e-6) and second == pytest.approx(want, abs=1e-6)
