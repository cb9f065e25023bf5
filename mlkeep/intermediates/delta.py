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

* `FIT`: for 8-bit uniform k-bit chunks of the same rows, each column
  predicted from its best-matching base column by an affine map (times a
  per-row scale when that helps), and the difference between the chunk's
  codes and the predicted codes kept. Stages of a pipeline that select,
  rescale or normalise their input's columns (SelectKBest, StandardScaler,
  Normalizer) and a classifier refitted with another regularisation give
  codes that no byte-level delta finds alike but that a fitted prediction
  gets right to a code or two.
* `MAP`: for 8-bit uniform k-bit chunks of the same rows, the codes predicted
  by a stage's program (`stagemaps`: a projection, random Fourier features,
  an element-wise function, a linear classifier's scores) run on the base's
  decoded values, the program embedded, and the difference kept. Every output
  column of such a stage mixes every input column, which no per-column
  prediction follows.

A delta object is its 4-byte magic, the base's 32-byte id (a `SUB`, `FIT` or
`MAP` delta then an 8-byte digest of the content it restores), then the zstd frame.
A base is a full chunk or itself a delta (a pipeline stage kept against the
stage before it, which was kept against its own input); `storage` bounds
such chains (`MAX_DEPTH`) and names every link in the manifest, so gc keeps
them. Lossless: the content comes back byte for byte, and the delta and every
base are verified by their hashes on read.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError
from mlkeep.intermediates.codecs import HEADER_BYTES as _HEADER_BYTES
from mlkeep.intermediates.codecs import decode_chunk, is_uniform8
from mlkeep.intermediates.stagemaps import StageMap

DICT = b"MKD1"
SUB = b"MKD2"
FIT = b"MKD3"
MAP = b"MKD4"
_PREDICTED = (SUB, FIT, MAP)  # kinds that restore content the digest then checks
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
    return data[: len(DICT)] in (DICT, *_PREDICTED)


def base_of(data: bytes) -> str:
    """The object id of a delta's base chunk."""
    if len(data) < _HEAD or not is_delta(data):
        raise CorruptObjectError("Intermediate delta chunk is shorter than its header.")
    return data[len(DICT) : _HEAD].hex()


def decode(data: bytes, base: bytes) -> bytes:
    """The content of a delta given its base's content; `CorruptObjectError` if they do not fit."""
    try:
        if data[: len(SUB)] in _PREDICTED:
            body = data[_HEAD + _DIGEST :]
            if data[: len(FIT)] == FIT:
                content = _decode_fit(body, base)
            elif data[: len(MAP)] == MAP:
                content = _decode_map(body, base)
            else:
                diff = _zstd().ZstdDecompressor().decompress(body)
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


# ----------------------------------------------------------------------- FIT
_FIT_HEAD = struct.Struct("<IIB")  # new chunk's columns, base's columns, flags (1: per-row scale)
_MAP_BUDGET = 1 << 24  # sampled rows × new cols × base cols: above it, columns are matched by position only
_SAMPLE_ROWS = 256  # rows the map is fitted on
_MAX_MISS = 3.0  # mean |code − predicted code| on the sample above which no FIT delta is tried


def encode_fit(content: bytes, base_id: str, base: bytes, level: int) -> bytes | None:
    """A `FIT` delta of an 8-bit uniform k-bit chunk against a base chunk of the same rows (None when
    either is another kind, the rows differ, or the prediction is poor): each column predicted from its
    best-matching base column by an affine map, optionally times a per-row scale, and only the difference
    between the chunk's codes and the predicted codes kept. The map is fitted on a sample of rows, which
    also tells cheaply when no map predicts well enough to be worth a full pass."""
    new, old = _uniform8(content), _uniform8(base)
    if new is None or old is None or new[0] != old[0]:
        return None
    rows, cols, lo, step, codes = new
    sample = slice(None, None, max(1, rows // _SAMPLE_ROWS))
    values, basevals = _sampled(new, sample), _sampled(old, sample)  # decoding all rows waits for a good fit
    cmap = _match_columns(values, basevals)
    if cmap is None:
        return None
    fits = []
    for scaled in (False, True):
        a, b = _fit(values, basevals[:, cmap], scaled)
        s = _row_scale(values, basevals[:, cmap] * a + b) if scaled else None
        miss = _predicted_codes(basevals, cmap, a, b, s, lo, step) - codes[:, sample]
        fits.append((float(np.abs(miss.view(np.int8)).mean()), scaled, a, b))
    err, scaled, a, b = min(fits, key=lambda f: f[0])
    if err > _MAX_MISS:
        return None
    basevals = decode_chunk(base)
    s = _row_scale(decode_chunk(content), basevals[:, cmap] * a + b) if scaled else None
    resid = codes - _predicted_codes(basevals, cmap, a, b, s, lo, step)  # uint8: modulo 256
    head = _FIT_HEAD.pack(cols, basevals.shape[1], int(s is not None))
    params = cmap.astype("<u4").tobytes() + a.tobytes() + b.tobytes() + (s.tobytes() if s is not None else b"")
    prefix = bytes(content[: len(content) - rows * cols])
    frame = _zstd().ZstdCompressor(level=level).compress(head + params + prefix + resid.tobytes())
    return FIT + bytes.fromhex(base_id) + _digest(content) + frame


def _decode_fit(body: bytes, base: bytes) -> bytes:
    payload = _zstd().ZstdDecompressor().decompress(body)
    cols, base_cols, flags = _FIT_HEAD.unpack_from(payload)
    basevals = decode_chunk(base)
    if basevals.shape[1] != base_cols:
        raise CorruptObjectError("Intermediate delta chunk does not fit its base.")
    rows, at = basevals.shape[0], _FIT_HEAD.size
    cmap = np.frombuffer(payload, "<u4", cols, at).astype(np.intp)
    a = np.frombuffer(payload, np.float32, cols, at + 4 * cols)
    b = np.frombuffer(payload, np.float32, cols, at + 8 * cols)
    at += 12 * cols
    s = np.frombuffer(payload, np.float32, rows, at) if flags & 1 else None
    at += 4 * rows if flags & 1 else 0
    prefix = payload[at : at + _HEADER_BYTES + 8 * cols]
    parsed = _uniform8(prefix + bytes(rows * cols))
    if parsed is None or parsed[:2] != (rows, cols) or (cmap >= base_cols).any():
        raise CorruptObjectError("Intermediate delta chunk has a malformed header.")
    resid = np.frombuffer(payload, np.uint8, rows * cols, at + len(prefix))
    codes = resid + _predicted_codes(basevals, cmap, a, b, s, parsed[2], parsed[3]).ravel()
    return prefix + codes.tobytes()


def _uniform8(content: bytes | memoryview) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray] | None:
    """(rows, cols, lo, step, codes as cols × rows) of an 8-bit uniform k-bit chunk; None for other kinds."""
    if not is_uniform8(content):
        return None
    rows, cols = struct.unpack_from("<II", content, 8)
    if len(content) != _HEADER_BYTES + 8 * cols + rows * cols:
        return None
    lo = np.frombuffer(content, np.float32, cols, _HEADER_BYTES)
    step = np.frombuffer(content, np.float32, cols, _HEADER_BYTES + 4 * cols)
    codes = np.frombuffer(content, np.uint8, rows * cols, _HEADER_BYTES + 8 * cols).reshape(cols, rows)
    return rows, cols, lo, step, codes


def _sampled(parts: tuple[int, int, np.ndarray, np.ndarray, np.ndarray], sample: slice) -> np.ndarray:
    """The decoded values of a sample of rows (rows × cols), as `decode_chunk` computes them."""
    _rows, _cols, lo, step, codes = parts
    cm = codes[:, sample].astype(np.float32)
    cm *= step[:, None]
    cm += lo[:, None]
    return cm.T


def _match_columns(values: np.ndarray, base: np.ndarray) -> np.ndarray | None:
    """For each column, the base column most correlated with it (a stage that selects, reorders or
    rescales its input's columns keeps them); by position alone when matching would cost too much."""
    rows, cols = values.shape
    if rows * cols * base.shape[1] > _MAP_BUDGET:
        return np.arange(cols) if cols == base.shape[1] else None

    def standard(x: np.ndarray) -> np.ndarray:
        z = x - x.mean(axis=0)
        norm = np.sqrt((z * z).sum(axis=0))
        return z / np.where(norm > 0, norm, 1)

    corr = np.abs(standard(values).T @ standard(base))
    return np.asarray(corr.argmax(axis=1), dtype=np.intp)


def _fit(values: np.ndarray, base: np.ndarray, scaled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per column `a`, `b` with values ≈ (base · a + b) · s, least squares, `s` refitted per row in between
    when `scaled` (a row-normalising stage); float32 and finite, as the decoder uses them."""
    v, x = values.astype(np.float64), base.astype(np.float64)
    xm = x.mean(axis=0)
    xc = x - xm
    var = (xc * xc).mean(axis=0)
    t = v
    for _ in range(3 if scaled else 1):
        a = np.where(var > 0, (xc * (t - t.mean(axis=0))).mean(axis=0) / np.where(var > 0, var, 1), 0.0)
        b = t.mean(axis=0) - a * xm
        if scaled:
            scale = _row_scale(v, x * a + b).astype(np.float64)
            t = v / np.where(scale != 0, scale, 1.0)[:, None]
    return _finite(a, 0.0), _finite(b, 0.0)


def _row_scale(values: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per row, the factor that best scales `pred` onto `values` (1 where `pred` is zero)."""
    pp = np.einsum("ij,ij->i", pred, pred, dtype=np.float64)
    vp = np.einsum("ij,ij->i", values, pred, dtype=np.float64)
    return _finite(np.where(pp > 0, vp / np.where(pp > 0, pp, 1), 1.0), 1.0)


def _finite(z: np.ndarray, fill: float) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32)
    return np.where(np.isfinite(z), z, np.float32(fill)).astype(np.float32)


def _predicted_codes(base: np.ndarray, cmap: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray | None,
                     lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The codes (cols × rows, uint8) the fitted prediction gets, in float32 element-wise operations
    only, so encoder and decoder compute the same bytes."""
    pred = base[:, cmap] * a + b
    if s is not None:
        pred *= s[:, None]
    pred -= lo
    pred /= np.where(step > 0, step, np.float32(1))
    np.rint(pred, out=pred)
    np.nan_to_num(pred, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(pred, 0, 255, out=pred)
    return np.ascontiguousarray(pred.T.astype(np.uint8))


# ----------------------------------------------------------------------- MAP
def encode_map(content: bytes, base_id: str, base: bytes, program: StageMap, level: int) -> bytes | None:
    """A `MAP` delta of an 8-bit uniform k-bit chunk against the chunk of its stage's input (same rows, every
    input column): the codes `program` predicts from the base's decoded values, and what differs. None when
    either chunk is another kind or the shapes do not fit the program."""
    new, old = _uniform8(content), _uniform8(base)
    if new is None or old is None or new[0] != old[0] or program.d_in not in (None, old[1]):
        return None
    rows, cols, lo, step, codes = new
    if program.on_codes:
        if old[1] != cols:
            return None
        guessed, near = _quantized_f32(program.apply_f32(old[4], old[2], old[3]), lo, step), np.empty(0, "<u4")
    else:
        predicted = program.apply(old[4], old[2], old[3])
        if predicted.shape != (rows, cols):
            return None
        guessed, near = _quantized(predicted, lo, step)
    resid = codes - guessed  # uint8: modulo 256
    resid.flat[near] = codes.flat[near]  # kept whole where another machine's rounding could guess otherwise
    prefix = bytes(content[: len(content) - rows * cols])
    payload = program.to_bytes() + prefix + resid.tobytes() + _GUARDS.pack(len(near)) + near.tobytes()
    return MAP + bytes.fromhex(base_id) + _digest(content) + _zstd().ZstdCompressor(level=level).compress(payload)


def _decode_map(body: bytes, base: bytes) -> bytes:
    payload = _zstd().ZstdDecompressor().decompress(body)
    program, at = StageMap.from_bytes(payload)
    cols = struct.unpack_from("<I", payload, at + 12)[0] if len(payload) >= at + _HEADER_BYTES else 0
    prefix = payload[at : at + _HEADER_BYTES + 8 * cols]
    old = _uniform8(base)
    if old is None:
        raise CorruptObjectError("Intermediate delta chunk does not fit its base.")
    rows = old[0]
    parsed = _uniform8(prefix + bytes(rows * cols))
    if parsed is None or parsed[:2] != (rows, cols) or program.d_in not in (None, old[1]):
        raise CorruptObjectError("Intermediate delta chunk has a malformed header.")
    if program.on_codes and old[1] != cols:
        raise CorruptObjectError("Intermediate delta chunk does not fit its base.")
    predicted = program.apply_f32(old[4], old[2], old[3]) if program.on_codes else program.apply(old[4], old[2], old[3])
    if not program.on_codes and predicted.shape != (rows, cols):
        raise CorruptObjectError("Intermediate delta chunk does not fit its base.")
    at += len(prefix)
    resid = np.frombuffer(payload, np.uint8, rows * cols, at).reshape(cols, rows)
    at += rows * cols
    (n_near,) = _GUARDS.unpack_from(payload, at)
    near = np.frombuffer(payload, "<u4", n_near, at + _GUARDS.size)
    if at + _GUARDS.size + 4 * n_near != len(payload) or (n_near and int(near.max()) >= rows * cols):
        raise CorruptObjectError("Intermediate delta chunk has a malformed list of kept codes.")
    guessed = _quantized_f32(predicted, parsed[2], parsed[3]) if program.on_codes else _quantized(
        predicted, parsed[2], parsed[3])[0]
    codes = resid + guessed
    codes.flat[near] = resid.flat[near]
    return prefix + codes.tobytes()


_GUARDS = struct.Struct("<I")
# How close (in codes) to a rounding boundary a prediction may fall before its code is kept whole. The
# programs' element-wise functions (cos, exp, tanh) are within a few ulps, not bit-identical, across CPUs and
# numpy builds: ~1e-13 codes here, so a prediction this far from a boundary rounds the same everywhere.
_NEAR = 1e-6


def _quantized_f32(values: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The 8-bit codes (cols × rows) of cols × rows float32 values under a chunk's `lo` and `step`, in place:
    float32 element-wise operations are correctly rounded, so encoder and decoder get the same codes
    everywhere and nothing needs keeping whole. A sixth of `_quantized`'s time on a network's maps."""
    values -= lo[:, None]
    values /= np.where(step > 0, step, np.float32(1))[:, None]
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _quantized(values: np.ndarray, lo: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-bit codes (cols × rows) of rows × cols float64 values under a chunk's `lo` and `step`, by
    element-wise operations only, and the flat positions (uint32, in that layout) of those within `_NEAR` of
    rounding the other way: where the decoder's prediction could differ from the encoder's."""
    z = (values - lo.astype(np.float64)) / np.where(step > 0, step, np.float32(1)).astype(np.float64)
    z = np.ascontiguousarray(z.T)
    near = np.flatnonzero(np.abs(z - np.floor(z) - 0.5) < _NEAR).astype("<u4")
    np.rint(z, out=z)
    np.nan_to_num(z, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(z, 0, 255, out=z)
    return z.astype(np.uint8), near
