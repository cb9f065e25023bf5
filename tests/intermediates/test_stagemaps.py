"""Stage maps: a pipeline stage predicted from its input's codes, and the `MAP` delta that keeps what it misses."""

from __future__ import annotations

import numpy as np
import pytest

from mlkeep.errors import CorruptObjectError
from mlkeep.intermediates import delta, parse_codec
from mlkeep.intermediates.codecs import decode_chunk, encode_chunk
from mlkeep.intermediates.stagemaps import StageMap, for_layer

KBIT = parse_codec("kbit(8)")


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:900].astype(np.float32), y[:900]


def _pipelines():  # type: ignore[no-untyped-def]
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

    return [
        Pipeline([("scale", StandardScaler()), ("tanh", FunctionTransformer(np.tanh)), ("pca", PCA(12, whiten=True)),
                  ("rbf", RBFSampler(gamma=0.05, n_components=40, random_state=0)), ("norm", Normalizer()),
                  ("clf", LogisticRegression(max_iter=300))]),
        Pipeline([("scale", StandardScaler()), ("svd", TruncatedSVD(10, random_state=0)), ("l1", Normalizer("l1")),
                  ("max", Normalizer("max")), ("clf", RidgeClassifier())]),
    ]


def _codes(values: np.ndarray) -> bytes:
    return encode_chunk(KBIT, np.ascontiguousarray(values, dtype=np.float32))


def test_each_known_stage_is_kept_as_a_small_lossless_map_delta(digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    for pipe in _pipelines():
        pipe.fit(X, y)
        x = X
        for i, (name, stage) in enumerate(pipe.steps):
            last = i == len(pipe.steps) - 1
            out = (stage.predict_proba(x) if hasattr(stage, "predict_proba") else stage.decision_function(x)) if last \
                else stage.transform(x)
            program = for_layer(pipe, name)
            if i > 0:
                assert program is not None, name
                base, content = _codes(x), _codes(out)
                record = delta.encode_map(content, "ab" * 32, base, program, 3)
                assert record is not None and record[:4] == delta.MAP and delta.base_of(record) == "ab" * 32
                assert delta.decode(record, base) == content  # the codes exactly
                alone = len(__import__("zstandard").ZstdCompressor(level=3).compress(content))
                assert len(record) < 0.6 * alone, (name, len(record), alone)
            x = out


def test_the_prediction_is_the_same_bytes_whatever_the_blas_threads(digits) -> None:  # type: ignore[no-untyped-def]
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    X, y = digits
    pipe = Pipeline([("rbf", RBFSampler(gamma=0.01, n_components=64, random_state=1))]).fit(X, y)
    base = _codes(X)
    content = _codes(pipe.transform(X))
    program = for_layer(pipe, "rbf")
    assert program is not None
    record = delta.encode_map(content, "ab" * 32, base, program, 3)
    assert record is not None
    with threadpool_limits(1):
        assert delta.decode(record, base) == content
    # and it is the stage's own function: close to sklearn's output on the decoded input
    parts = delta._uniform8(base)
    assert parts is not None
    predicted = program.apply(parts[4], parts[2], parts[3])
    assert np.allclose(predicted, pipe.transform(decode_chunk(base)), atol=1e-5)


def test_a_program_reads_back_and_bad_bytes_or_a_wrong_base_fail_loudly(digits) -> None:  # type: ignore[no-untyped-def]
    X, y = digits
    pipe = _pipelines()[0].fit(X, y)
    program = for_layer(pipe, "rbf")
    assert program is not None
    again, end = StageMap.from_bytes(program.to_bytes())
    assert end == len(program.to_bytes()) and again.to_bytes() == program.to_bytes()
    with pytest.raises(CorruptObjectError):
        StageMap.from_bytes(b"\x01\x09")  # an operation that does not exist
    with pytest.raises(CorruptObjectError):
        StageMap.from_bytes(program.to_bytes()[:20])  # cut short
    x = pipe[:3].transform(X)
    base, content = _codes(x), _codes(pipe[:4].transform(X))
    record = delta.encode_map(content, "ab" * 32, base, program, 3)
    assert record is not None
    other = _codes(x[::-1].copy())  # same shape, other rows: the digest refuses the result
    with pytest.raises(CorruptObjectError):
        delta.decode(record, other)
    assert delta.encode_map(content, "ab" * 32, _codes(X), program, 3) is None  # not the program's input
    assert delta.encode_map(encode_chunk(parse_codec("exact"), x), "ab" * 32, base, program, 3) is None


def test_stages_without_a_known_program_get_none(digits) -> None:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    X, y = digits
    binary = Pipeline([("scale", StandardScaler()), ("own", FunctionTransformer(lambda z: z * 2)),
                       ("clf", LogisticRegression(max_iter=200))]).fit(X, y % 2)
    assert for_layer(binary, "own") is None  # an arbitrary function
    assert for_layer(binary, "clf") is None  # binary probabilities are another function than a softmax
    assert for_layer(binary, "missing") is None and for_layer(binary, "union/pca") is None
    assert for_layer(StandardScaler().fit(X), "output") is None  # not a pipeline


def test_a_captured_pipeline_keeps_its_stages_as_map_deltas_and_reads_them_back(store, digits) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.intermediates.storage import get_manifest

    X, y = digits
    pipe = _pipelines()[0].fit(X, y)
    got = store.intermediates.capture(pipe, X, targets=y, codec="kbit(8)", repo="maps")
    x = X
    kinds = set()
    for i, (name, stage) in enumerate(pipe.steps):
        x = stage.predict_proba(x) if i == len(pipe.steps) - 1 else stage.transform(x)
        stored = store.intermediates.get(got[name], source="read")
        bound = (x.max(0) - x.min(0)) / (2 * 255) + 1e-5 * np.abs(x).max(0) + 1e-6  # the 8-bit codes' own bound
        assert (np.abs(stored - x) <= bound).all(), name  # the codes exactly: delta kinds lose nothing
        manifest = get_manifest(store.objects, got[name].manifest)
        kinds |= {store.objects.get_bytes(oid)[:4] for oid in manifest.get("deltas", {})}
    assert delta.MAP in kinds
    # the last stage's chain of bases survives gc when every other stage is deleted
    expected = store.intermediates.get(got["clf"], source="read")
    for name, item in got.items():
        if name != "clf":
            store.intermediates.delete(item)
    store.gc(grace_seconds=0)
    assert np.array_equal(store.intermediates.get(got["clf"], source="read"), expected)


def test_a_base_decoded_before_is_not_used_once_the_store_lost_it(store, digits) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.errors import NotFoundError
    from mlkeep.intermediates.storage import get_manifest, load_content

    X, y = digits
    pipe = _pipelines()[1].fit(X, y)
    got = store.intermediates.capture(pipe, X, targets=y, codec="kbit(8)", repo="lost")
    manifest = get_manifest(store.objects, got["clf"].manifest)
    top = manifest["chunks"][0][0]
    content = load_content(store.objects, top)  # decodes the chain: its bases are now remembered
    deltas = manifest["deltas"]
    assert top in deltas
    assert load_content(store.objects, top) == content
    store.objects.remove(deltas[top][0])  # the base is gone (a damaged store): the read says so
    with pytest.raises(NotFoundError):
        load_content(store.objects, top)


def test_a_prediction_a_hair_from_rounding_the_other_way_still_decodes_on_another_machine(
        digits, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """cos, exp and tanh agree across CPUs and numpy builds to a few ulps, not bit for bit: a predicted code that
    sits on a rounding boundary must not decode to another code where the function rounds the other way."""
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.pipeline import Pipeline

    X, y = digits
    pipe = Pipeline([("rbf", RBFSampler(gamma=0.01, n_components=16, random_state=1))]).fit(X, y)
    program = for_layer(pipe, "rbf")
    assert program is not None
    base, content = _codes(X), _codes(pipe.transform(X))
    lo, step = (np.frombuffer(content, np.float32, 16, 16 + k * 64).astype(np.float64) for k in range(2))
    true = decode_chunk(content).astype(np.float64)
    # predictions exactly half a code from every true value: the worst case for rounding
    on_edge = true + 0.5 * step
    here = lambda self, codes, lo_, step_: on_edge  # noqa: E731
    there = lambda self, codes, lo_, step_: on_edge * (1 + np.where(np.arange(on_edge.size) % 2, 1, -1)  # noqa: E731
                                                       .reshape(on_edge.shape) * 4e-16)
    monkeypatch.setattr(StageMap, "apply", here)
    record = delta.encode_map(content, "ab" * 32, base, program, 3)
    assert record is not None
    monkeypatch.setattr(StageMap, "apply", there)
    assert delta.decode(record, base) == content


def test_a_networks_relu_is_found_and_kept_as_a_map_of_its_input_exactly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlkeep.intermediates.dedup import SimilarIndex
    from mlkeep.intermediates.stagemaps import for_network
    from mlkeep.intermediates.storage import LEVEL, ChunkSink, LayerWriter, read
    from mlkeep.objects.store import ObjectStore

    rng = np.random.default_rng(21)
    conv = (rng.normal(size=(700, 4, 8, 8)) + np.linspace(-1, 1, 64).reshape(8, 8)).astype(np.float32)
    relu = np.maximum(conv, 0).reshape(700, -1)
    conv = conv.reshape(700, -1)
    found = for_network({"conv": conv[:2], "relu": relu[:2], "scaled": 2 * relu[:2], "tanh": np.tanh(2 * relu[:2])})
    assert set(found) == {"relu", "tanh"} and found["relu"][0] == "conv" and found["relu"][1].elementwise
    objects = ObjectStore.from_url(str(tmp_path))
    sink = ChunkSink(objects, dedup="similar", index=SimilarIndex(), dictionary=False, map_level=LEVEL)
    try:  # several blocks and several chunks per block: each relu chunk against the conv chunk of its columns
        first = LayerWriter(sink, KBIT, 700, block_rows=256, chunk_bytes=64 * 256)
        second = LayerWriter(sink, KBIT, 700, block_rows=256, chunk_bytes=64 * 256, parent=first,
                             program=found["relu"][1])
        alone = LayerWriter(ChunkSink(ObjectStore.from_url(str(tmp_path / "alone"))), KBIT, 700, block_rows=256,
                            chunk_bytes=64 * 256)
        for start in range(0, 700, 100):
            first.add(start, conv[start : start + 100], (4, 8, 8))
            second.add(start, relu[start : start + 100], (4, 8, 8))
            alone.add(start, relu[start : start + 100], (4, 8, 8))
        conv_result, relu_result, alone_result = first.finish(), second.finish(), alone.finish()
    finally:
        sink.close()
        alone.sink.close()
    n_chunks = sum(len(b) for b in relu_result.manifest["chunks"])
    assert n_chunks > 3 and relu_result.deltas == n_chunks and conv_result.deltas == 0
    assert relu_result.new_bytes < alone_result.new_bytes / 2
    # a read gives exactly what storing the relu layer's own codes gives
    assert np.array_equal(read(objects, relu_result.manifest, None, None),
                          read(alone.sink.objects, alone_result.manifest, None, None))
    for a, b in ((0, 256), (256, 512), (512, 700)):
        assert np.array_equal(read(objects, relu_result.manifest, np.arange(a, b), None),
                              decode_chunk(encode_chunk(KBIT, relu[a:b])))
