"""Codecs alone: exactness, error bounds, pooling, parsing, and the queries they must keep."""

from __future__ import annotations

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from mlkeep.errors import CodecMismatchError, CorruptObjectError, InvalidInputError
from mlkeep.intermediates import delta, parse_codec
from mlkeep.intermediates.codecs import decode_chunk, encode_chunk, error_bound
from mlkeep.intermediates.dedup import SimilarIndex, pack_keys, unpack_keys
from mlkeep.intermediates.layout import Layout, plan_layout, select_rows, touched
from mlkeep.intermediates.queries import cka, knn, overlap, svcca, topk


def _relu_block(seed: int = 0, rows: int = 300, cols: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(rows, cols)) * rng.uniform(0.1, 5, cols), 0).astype(np.float32)


def test_exact_is_bit_exact_including_nan_and_negative_zero() -> None:
    block = _relu_block()
    block[0, 0], block[1, 1], block[2, 2] = np.nan, -0.0, np.inf
    out = decode_chunk(encode_chunk(parse_codec("exact"), block))
    assert out.tobytes() == block.tobytes()


@pytest.mark.parametrize("spec", ["float16", "kbit", "kbit(4)", "kbit(12)", "kbit(8,quantile)"])
def test_lossy_codecs_stay_within_their_error_bound(spec: str) -> None:
    codec = parse_codec(spec)
    block = _relu_block(1) - 0.5
    out = decode_chunk(encode_chunk(codec, block))
    assert out.shape == block.shape and out.dtype == np.float32
    assert (np.abs(out - block) <= error_bound(codec, block) + 1e-7).all()


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 16), rows=st.integers(1, 37), cols=st.integers(1, 7), seed=st.integers(0, 1 << 16))
def test_kbit_codes_take_k_bits_and_round_trip(bits: int, rows: int, cols: int, seed: int) -> None:
    block = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    codec = parse_codec(f"kbit({bits})")
    content = encode_chunk(codec, block)
    out = decode_chunk(content)
    assert out.shape == block.shape
    assert (np.abs(out - block) <= error_bound(codec, block) + 1e-6).all()
    payload = len(content) - 16 - 8 * cols  # header, then lo and step per column
    assert payload == (-(-rows * cols * bits // 8) if bits < 8 else rows * cols * (1 if bits == 8 else 2))


def test_uniform_kbit_keeps_zeros_and_extremes_exact() -> None:
    block = _relu_block(2)
    out = decode_chunk(encode_chunk(parse_codec("kbit(8)"), block))
    assert (out[block == 0] == 0).all()
    np.testing.assert_allclose(out.max(0), block.max(0), rtol=1e-6)


def test_threshold_is_the_binary_map() -> None:
    block = _relu_block(3) - 0.2
    out = decode_chunk(encode_chunk(parse_codec("threshold(0.1)"), block))
    assert np.array_equal(out, (block > 0.1).astype(np.float32))


def test_uniform_bins_keep_topk_where_quantile_bins_tie() -> None:
    rng = np.random.default_rng(4)
    block = np.maximum(rng.normal(size=(2000, 8)), 0).astype(np.float32) ** 2
    exact = [topk(block[:, j], 20) for j in range(8)]
    agree = {}
    for spec in ("kbit(8)", "kbit(8,quantile)"):
        out = decode_chunk(encode_chunk(parse_codec(spec), block))
        agree[spec] = np.mean([overlap(topk(out[:, j], 20), exact[j]) for j in range(8)])
    assert agree["kbit(8)"] >= 0.95
    assert agree["kbit(8)"] >= agree["kbit(8,quantile)"]


def test_kbit_keeps_knn_and_cka() -> None:
    block = _relu_block(5, rows=400, cols=64)
    out = decode_chunk(encode_chunk(parse_codec("kbit(8)"), block))
    scores = [overlap(knn(out, out[r], 10, exclude=r)[0], knn(block, block[r], 10, exclude=r)[0]) for r in range(20)]
    assert np.mean(scores) >= 0.9
    assert abs(cka(out, block) - 1) < 1e-3 and svcca(out, block) > 0.99


def test_pool_average_and_max_and_full() -> None:
    x = np.arange(2 * 2 * 4 * 4, dtype=np.float32).reshape(2, 32)
    avg = parse_codec("pool(2)").transform(x, (2, 4, 4))
    assert avg.shape == (2, 8) and avg[0, 0] == np.mean([0, 1, 4, 5])
    assert parse_codec("pool(2,max)+kbit").transform(x, (2, 4, 4))[0, 0] == 5
    assert parse_codec("pool(full)").out_shape((2, 4, 4)) == (2, 1, 1)
    with pytest.raises(CodecMismatchError, match="convolutional maps"):
        parse_codec("pool(2)").out_shape((10,))
    with pytest.raises(CodecMismatchError):
        parse_codec("pool(8)").out_shape((2, 4, 4))


@pytest.mark.parametrize("bad", ["", "zip", "kbit(0)", "kbit(8,log)", "pool(2)+pool(2)", "float16(3)", "kbit(x)"])
def test_bad_codec_specs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_codec(bad)


def test_codec_specs_print_back() -> None:
    for spec in ("exact", "float16", "kbit(4)", "kbit(8,quantile)", "threshold(0.5)", "pool(2)+kbit(8)", "pool(full,max)+exact"):
        assert str(parse_codec(spec)) == spec


def test_layout_keeps_channels_together_and_selects_chunks() -> None:
    layout = plan_layout(1000, (8, 4, 4), block_rows=256, chunk_bytes=256 * 4 * 40)
    assert layout.chunk_cols % 16 == 0 and layout.n_blocks == 4
    assert touched(layout, np.array([3]), None) == [(0, c) for c in range(layout.n_chunks)]
    assert Layout.from_dict(layout.to_dict()) == layout
    with pytest.raises(InvalidInputError, match="out of range"):
        select_rows(layout, [1000])


def test_minhash_lsh_finds_near_duplicates_and_rescaled_chunks_only() -> None:
    block = _relu_block(6)
    index = SimilarIndex()
    index.add("a", index.sketcher.keys(block))
    near = block + np.random.default_rng(0).uniform(-0.01, 0.01, block.shape).astype(np.float32)
    assert index.candidates(index.sketcher.keys(near)) == ["a"]
    # a per-column affine rescaling (a scaler stage) has the same k-bit codes: it must be found too
    assert index.candidates(index.sketcher.keys(block * 3.0 + 1.0)) == ["a"]
    assert index.candidates(index.sketcher.keys(_relu_block(7))) == []
    assert index.candidates(index.sketcher.keys(block[:, :20])) == []  # another shape
    keys = index.sketcher.keys(block)
    assert unpack_keys(pack_keys(keys)) == keys and SimilarIndex().sketcher.keys(block) == keys  # stable


def test_delta_against_a_similar_chunk_is_small_and_lossless() -> None:
    codec = parse_codec("kbit(8)")
    block = _relu_block(3, rows=2000, cols=64)
    base = encode_chunk(codec, block)
    content = encode_chunk(codec, block * 2.5 + 0.5)
    record = delta.encode(content, "ab" * 32, base, 3)
    assert delta.is_delta(record) and delta.base_of(record) == "ab" * 32
    assert delta.decode(record, base) == content
    assert len(record) < len(content) // 20
    with pytest.raises(CorruptObjectError):
        delta.decode(record, encode_chunk(codec, _relu_block(4, rows=2000, cols=64)))


def test_a_layer_that_moved_a_little_is_kept_as_a_small_difference() -> None:
    codec = parse_codec("kbit(8)")
    block = _relu_block(8, rows=2000, cols=64)
    moved = block.copy()
    moved[::7] *= 1.004  # a few codes change by one: no long run left for a dictionary to find
    base, content = encode_chunk(codec, block), encode_chunk(codec, moved)
    assert base != content and len(base) == len(content)
    record = delta.encode(content, "cd" * 32, base, 3)
    assert record[:4] == delta.SUB and delta.decode(record, base) == content
    assert len(record) < len(content) // 10
    with pytest.raises(CorruptObjectError):  # the same length, another base: refused, never other bytes
        delta.decode(record, encode_chunk(codec, _relu_block(9, rows=2000, cols=64)))


def test_chunks_of_different_codecs_are_never_candidates() -> None:
    block = _relu_block(10)
    index = SimilarIndex()
    index.add("a", index.sketcher.keys(block, "kbit(8)"))
    assert index.candidates(index.sketcher.keys(block, "kbit(8)")) == ["a"]
    assert index.candidates(index.sketcher.keys(block, "exact")) == []


def test_a_finished_layer_names_only_chunks_already_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from mlkeep.intermediates.storage import ChunkSink, LayerWriter
    from mlkeep.objects.store import ObjectStore

    class SlowStore(ObjectStore):
        def put_compressed(self, oid: str, frame: bytes) -> bool:
            time.sleep(0.05)  # a slow disk: writes lag well behind encoding
            return super().put_compressed(oid, frame)

    objects = SlowStore.from_url(str(tmp_path))
    objects.__class__ = SlowStore
    sink = ChunkSink(objects, workers=2)
    try:
        writer = LayerWriter(sink, parse_codec("kbit(8)"), 600, block_rows=256, chunk_bytes=4096)
        values = _relu_block(11, rows=600, cols=40)
        writer.add(0, values[:300], (40,))
        writer.add(300, values[300:], (40,))
        result = writer.finish()
        ids = [oid for block in result.manifest["chunks"] for oid in block]
        assert len(ids) > 3 and all(objects.exists(oid) for oid in ids)
    finally:
        sink.close()
    from mlkeep.intermediates.storage import read

    assert np.array_equal(read(objects, result.manifest, None, None),
                          np.concatenate([decode_chunk(encode_chunk(parse_codec("kbit(8)"), values[a:b]))
                                          for a, b in ((0, 256), (256, 512), (512, 600))]))


def test_a_fitted_delta_keeps_selected_and_row_normalised_columns_losslessly() -> None:
    codec = parse_codec("kbit(8)")
    rng = np.random.default_rng(12)
    base_values = np.cos(rng.normal(size=(900, 48)) * 3).astype(np.float32)  # RBF-like: codes spread evenly
    base = encode_chunk(codec, base_values)
    normalised = base_values / np.linalg.norm(base_values, axis=1, keepdims=True)  # Normalizer
    selected = base_values[:, [5, 1, 30, 2, 17, 40]] * 4.0 - 1.0  # SelectKBest then a scaler: another shape
    for derived, within in ((normalised, 0.6 * len(delta.encode(encode_chunk(codec, normalised), "ef" * 32, base, 3))),
                            (selected, 0.1 * selected.size)):  # byte-level deltas gain little on the first
        content = encode_chunk(codec, derived.astype(np.float32))
        record = delta.encode_fit(content, "ef" * 32, base, 3)
        assert record is not None and record[:4] == delta.FIT and delta.base_of(record) == "ef" * 32
        assert delta.decode(record, base) == content
        assert len(record) < within
    unrelated = encode_chunk(codec, np.cos(rng.normal(size=(900, 48)) * 3).astype(np.float32))
    assert delta.encode_fit(unrelated, "ef" * 32, base, 3) is None  # no map predicts it: not tried in full
    assert delta.encode_fit(encode_chunk(parse_codec("exact"), base_values), "ef" * 32, base, 3) is None
    with pytest.raises(CorruptObjectError):
        delta.decode(delta.encode_fit(content, "ef" * 32, base, 3), unrelated)  # type: ignore[arg-type]


def test_a_stage_is_kept_against_the_stage_before_it_through_a_chain(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.intermediates.storage import MAX_DEPTH, ChunkSink, LayerWriter, load_content, read
    from mlkeep.objects.store import ObjectStore

    objects = ObjectStore.from_url(str(tmp_path))
    codec = parse_codec("kbit(8)")
    rng = np.random.default_rng(13)
    first = np.cos(rng.normal(size=(500, 32)) * 3).astype(np.float32)
    stages = [first, first / np.linalg.norm(first, axis=1, keepdims=True)]
    stages += [stages[-1] / np.linalg.norm(stages[-1], axis=1, keepdims=True) for _ in range(MAX_DEPTH + 1)]
    sink = ChunkSink(objects, dedup="similar", index=SimilarIndex())
    try:
        writers: list[LayerWriter] = []
        for values in stages:
            writers.append(LayerWriter(sink, codec, 500, block_rows=512, chunk_bytes=1 << 20,
                                       parent=writers[-1] if writers else None))
            writers[-1].add(0, values.astype(np.float32), (32,))
        results = [w.finish() for w in writers]
    finally:
        sink.close()
    # the first normalisation is predicted to a code or two, each idempotent one after it all but exactly
    assert results[1].deltas == 1 and results[1].new_bytes < results[0].new_bytes / 2
    assert all(r.deltas >= 1 and r.new_bytes < results[0].new_bytes / 20 for r in results[2:])
    for values, result in zip(stages, results):
        assert np.array_equal(read(objects, result.manifest, None, None),
                              decode_chunk(encode_chunk(codec, values.astype(np.float32))))
        deltas = result.manifest.get("deltas", {})
        oid = result.manifest["chunks"][0][0]
        depth = 0
        while oid in deltas:  # the manifest names the whole chain, down to a full chunk
            oid, depth = deltas[oid][0], depth + 1
        assert depth <= MAX_DEPTH and not delta.is_delta(objects.get_bytes(oid))
        assert load_content(objects, result.manifest["chunks"][0][0]) == encode_chunk(codec, values.astype(np.float32))
