"""Codecs: what a column chunk of an intermediate becomes before compression.

A codec is written as a short spec, an optional layer transform then a value
codec joined by `+`:

* `exact`: float32, byte planes (sign/exponent bytes together), bit-exact;
* `float16`: half precision, byte planes;
* `kbit(k[,uniform|quantile])`: k-bit codes (8 by default). `uniform` bins
  are equal-width between each column's min and max in the chunk, so a
  neuron's largest values stay apart (top-k and distances survive);
  `quantile` bins are equal-mass over the whole chunk, so where values pile up
  (a ReLU layer's zeros, a neuron's tail) many values share one code;
* `threshold(t)`: 1 where the value exceeds `t`, else 0 (one bit each);
* `pool(σ[,avg|max])+...`: average or max pooling of each convolutional map
  over σ×σ windows (`pool(full)`: one value per map) before the value codec.

The encoded chunk is self-describing (a 16-byte header, the codec's
parameters, then the codes), so identical chunks are identical bytes and
de-duplicate by hash, and a chunk decodes without its manifest.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

from mlkeep.errors import CodecMismatchError, CorruptObjectError, InvalidInputError
from mlkeep.tensors.codecs import from_planes, to_planes

VALUE_CODECS = ("exact", "float16", "kbit", "threshold")
BINS = ("uniform", "quantile")
POOL_OPS = ("avg", "max")

MAGIC = b"MKI2"  # 2: codes of fewer than 8 bits are packed k bits each
_NOT_FINITE = "This layer has NaN or infinite values; codec {codec} cannot encode them. Use exact."
_HEADER = struct.Struct("<4sBBHII")  # magic, kind, bits, n_params(quantile centres), rows, cols
_EXACT, _F16, _UNIFORM, _QUANTILE, _THRESHOLD = range(5)
HEADER_BYTES = _HEADER.size


def is_uniform8(content: bytes | memoryview) -> bool:
    """Whether `content` is a chunk of 8-bit uniform codes (the kind `delta`'s FIT predicts)."""
    if len(content) < _HEADER.size:
        return False
    magic, kind, bits, _n, _rows, _cols = _HEADER.unpack_from(content)
    return bool(magic == MAGIC and kind == _UNIFORM and bits == 8)


@dataclass(frozen=True)
class Pool:
    """Pooling of (channels, height, width) maps over `size`×`size` windows (None: the whole map)."""

    size: int | None = 2
    op: str = "avg"

    def out_shape(self, row_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The row shape after pooling; `CodecMismatchError` for a layer without spatial maps."""
        if len(row_shape) != 3:
            raise CodecMismatchError(
                f"pool needs convolutional maps (channels, height, width); this layer's rows have shape "
                f"{tuple(row_shape)}. Use exact, float16, kbit or threshold for it."
            )
        c, h, w = row_shape
        if self.size is None:
            return (c, 1, 1)
        if self.size > min(h, w):
            raise CodecMismatchError(f"pool({self.size}) is larger than this layer's {h}×{w} maps.")
        return (c, h // self.size, w // self.size)

    def apply(self, x: np.ndarray, row_shape: tuple[int, ...]) -> np.ndarray:
        """Pool rows `x` (n × prod(row_shape)); returns n × prod(out_shape) float32."""
        c, h, w = row_shape
        oc, oh, ow = self.out_shape(row_shape)
        maps = x.reshape(len(x), c, h, w)
        if self.size is None:
            pooled = maps.mean(axis=(2, 3)) if self.op == "avg" else maps.max(axis=(2, 3))
        else:
            s = self.size
            win = maps[:, :, : oh * s, : ow * s].reshape(len(x), c, oh, s, ow, s)
            pooled = win.mean(axis=(3, 5)) if self.op == "avg" else win.max(axis=(3, 5))
        return np.ascontiguousarray(pooled.reshape(len(x), oc * oh * ow), dtype=np.float32)

    def __str__(self) -> str:
        size = "full" if self.size is None else str(self.size)
        return f"pool({size})" if self.op == "avg" else f"pool({size},{self.op})"


@dataclass(frozen=True)
class Codec:
    """A parsed codec spec: an optional `Pool` then one value codec."""

    value: str = "exact"
    bits: int = 8
    bins: str = "uniform"
    threshold: float = 0.0
    pool: Pool | None = None

    @property
    def lossless(self) -> bool:
        return self.value == "exact" and self.pool is None

    def out_shape(self, row_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The row shape stored for a layer whose rows have `row_shape`."""
        return self.pool.out_shape(row_shape) if self.pool else tuple(row_shape)

    def transform(self, x: np.ndarray, row_shape: tuple[int, ...]) -> np.ndarray:
        """The layer-level part of the codec (pooling) applied to rows `x`; float32."""
        x = np.asarray(x, dtype=np.float32)
        return self.pool.apply(x, row_shape) if self.pool else x

    def __str__(self) -> str:
        if self.value == "kbit":
            value = f"kbit({self.bits})" if self.bins == "uniform" else f"kbit({self.bits},{self.bins})"
        elif self.value == "threshold":
            value = f"threshold({self.threshold:g})"
        else:
            value = self.value
        return f"{self.pool}+{value}" if self.pool else value


_PART = re.compile(r"^\s*([a-z0-9]+)\s*(?:\((.*)\))?\s*$")


def parse_codec(spec: str | Codec) -> Codec:
    """A `Codec` from a spec such as `kbit`, `kbit(4,quantile)`, `pool(2)+float16`.

    Raises `InvalidInputError` naming what is wrong.
    """
    if isinstance(spec, Codec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInputError(f"A codec is a spec such as 'kbit(8)' or 'pool(2)+float16', not {spec!r}.")
    pool: Pool | None = None
    parts = spec.split("+")
    if len(parts) > 2:
        raise InvalidInputError(f"Codec {spec!r}: at most one pool then one value codec.")
    if len(parts) == 2 or _name(parts[0]) == "pool":
        pool = _parse_pool(parts[0], spec)
        parts = parts[1:] or ["exact"]
    name, args = _split(parts[0], spec)
    if name not in VALUE_CODECS:
        raise InvalidInputError(f"Unknown codec {name!r} in {spec!r}; codecs are {', '.join(VALUE_CODECS)} and pool.")
    if name in ("exact", "float16"):
        if args:
            raise InvalidInputError(f"Codec {name} takes no arguments ({spec!r}).")
        return Codec(name, pool=pool)
    if name == "threshold":
        if len(args) > 1:
            raise InvalidInputError(f"threshold takes one value ({spec!r}).")
        return Codec("threshold", threshold=_float(args[0], spec) if args else 0.0, pool=pool)
    bits = _int(args[0], spec) if args else 8
    bins = args[1] if len(args) > 1 else "uniform"
    if not 1 <= bits <= 16 or bins not in BINS or len(args) > 2:
        raise InvalidInputError(f"kbit takes bits in 1..16 and bins 'uniform' or 'quantile' ({spec!r}).")
    return Codec("kbit", bits=bits, bins=bins, pool=pool)


def _name(part: str) -> str:
    m = _PART.match(part)
    return m.group(1) if m else ""


def _split(part: str, spec: str) -> tuple[str, list[str]]:
    m = _PART.match(part)
    if not m:
        raise InvalidInputError(f"Cannot read codec {spec!r}; write e.g. 'kbit(8)' or 'pool(2)+float16'.")
    args = [a.strip() for a in m.group(2).split(",")] if m.group(2) else []
    return m.group(1), args


def _parse_pool(part: str, spec: str) -> Pool:
    name, args = _split(part, spec)
    if name != "pool" or len(args) > 2:
        raise InvalidInputError(f"Codec {spec!r}: only pool(σ[,avg|max]) may come before '+'.")
    size = None if args and args[0] == "full" else (_int(args[0], spec) if args else 2)
    op = args[1] if len(args) > 1 else "avg"
    if (size is not None and size < 1) or op not in POOL_OPS:
        raise InvalidInputError(f"pool takes a window size ≥ 1 (or 'full') and 'avg' or 'max' ({spec!r}).")
    return Pool(size, op)


def _int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is not a whole number in codec {spec!r}.") from None


def _float(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is not a number in codec {spec!r}.") from None


# ----------------------------------------------------------------------- chunks
def encode_chunk(codec: Codec, block: np.ndarray) -> bytes:
    """The encoded bytes of a chunk (rows × cols float32, already pooled) under `codec`'s value codec."""
    rows, cols = block.shape
    cm = np.ascontiguousarray(block.T, dtype=np.float32)  # one column after another
    uniform = codec.value == "kbit" and codec.bins == "uniform"
    # min and max carry any NaN or infinity, so the uniform codec checks its columns' ranges instead
    if codec.value != "exact" and not uniform and not np.isfinite(cm).all():
        raise CodecMismatchError(_NOT_FINITE.format(codec=codec))
    if codec.value == "exact":
        return _pack(_EXACT, 0, 0, rows, cols, b"", to_planes(cm.view(np.uint8).ravel(), 4))
    if codec.value == "float16":
        return _pack(_F16, 0, 0, rows, cols, b"", to_planes(cm.astype(np.float16).view(np.uint8).ravel(), 2))
    if codec.value == "threshold":
        return _pack(_THRESHOLD, 1, 0, rows, cols, struct.pack("<f", codec.threshold),
                     np.packbits(cm > codec.threshold, axis=None))
    if uniform:
        params, codes = _uniform(cm, codec.bits, codec)
        return _pack(_UNIFORM, codec.bits, 0, rows, cols, params, _code_bytes(codes, codec.bits))
    centres, codes = _quantile(cm, codec.bits)
    return _pack(_QUANTILE, codec.bits, len(centres), rows, cols, centres.tobytes(), _code_bytes(codes, codec.bits))


def decode_chunk(data: bytes | memoryview) -> np.ndarray:
    """The rows × cols float32 values of an encoded chunk; `CorruptObjectError` if it is not one."""
    if len(data) < _HEADER.size:
        raise CorruptObjectError("Intermediate chunk is shorter than its header.")
    magic, kind, bits, n_params, rows, cols = _HEADER.unpack_from(data)
    if magic != MAGIC or kind > _THRESHOLD:
        raise CorruptObjectError("Intermediate chunk has a malformed header.")
    body = memoryview(data)[_HEADER.size :]
    n = rows * cols
    if kind == _EXACT:
        cm = _unplane(body, n, 4).view(np.float32)
    elif kind == _F16:
        cm = _unplane(body, n, 2).view(np.float16).astype(np.float32)
    elif kind == _THRESHOLD:
        cm = np.unpackbits(np.frombuffer(body[4:], np.uint8), count=n).astype(np.float32)
    elif kind == _UNIFORM:
        lo = np.frombuffer(body[: 4 * cols], np.float32)
        step = np.frombuffer(body[4 * cols : 8 * cols], np.float32)
        cm = _read_codes(body[8 * cols :], n, bits).reshape(cols, rows).astype(np.float32)
        cm *= step[:, None]
        cm += lo[:, None]
    else:
        centres = np.frombuffer(body[: 4 * n_params], np.float32)
        cm = centres[_read_codes(body[4 * n_params :], n, bits)]
    return cm.reshape(cols, rows).T  # a view: the reader copies it into place once


def error_bound(codec: Codec, block: np.ndarray) -> np.ndarray:
    """Per-column bound on |decoded − value| for a chunk under a lossy kbit/float16 codec (tests, docs)."""
    lo, hi = block.min(axis=0), block.max(axis=0)
    if codec.value == "kbit" and codec.bins == "uniform":
        return (hi - lo) / (2 * (2**codec.bits - 1)) + 1e-6 * np.maximum(np.abs(lo), np.abs(hi))
    if codec.value == "kbit":
        return np.full(block.shape[1], float(block.max() - block.min()))
    if codec.value == "float16":
        return np.maximum(np.abs(lo), np.abs(hi)) * 2.0**-11 + 6e-8
    return np.zeros(block.shape[1])


def _uniform(cm: np.ndarray, bits: int, codec: Codec) -> tuple[bytes, np.ndarray]:
    levels = 2**bits - 1
    lo, hi = cm.min(axis=1), cm.max(axis=1)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise CodecMismatchError(_NOT_FINITE.format(codec=codec))
    step = ((hi - lo) / levels).astype(np.float32)
    safe = np.where(step > 0, step, 1).astype(np.float32)
    codes = np.subtract(cm, lo[:, None])  # in place from here: one temporary for a whole chunk
    np.divide(codes, safe[:, None], out=codes)
    # no clip needed: rounding is monotonic, so 0 ≤ x − lo ≤ hi − lo, and (hi − lo) / step is `levels` within
    # a few ulps, which rint brings back to `levels`
    np.rint(codes, out=codes)
    return lo.astype(np.float32).tobytes() + step.tobytes(), codes


def _quantile(cm: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    flat = cm.ravel()
    sample = flat if len(flat) <= 1 << 18 else flat[:: len(flat) // (1 << 18) + 1]
    edges = np.unique(np.quantile(sample, np.linspace(0, 1, 2**bits + 1)).astype(np.float32))
    codes = np.searchsorted(edges[1:-1], flat, side="right") if len(edges) > 2 else np.zeros(len(flat), np.int64)
    k = max(len(edges) - 1, 1)
    counts = np.bincount(codes, minlength=k)
    sums = np.bincount(codes, weights=flat, minlength=k)
    mids = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else edges
    centres = np.where(counts > 0, sums / np.maximum(counts, 1), mids[:k]).astype(np.float32)
    return centres, codes


def _code_bytes(codes: np.ndarray, bits: int) -> np.ndarray:
    if bits < 8:  # k bits per code, not a byte: the low k bits of each, packed end to end
        return np.packbits(np.unpackbits(codes.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - bits :])
    if bits == 8:
        return codes.astype(np.uint8).ravel()
    return to_planes(codes.astype(np.uint16).view(np.uint8).ravel(), 2)


def _read_codes(body: memoryview, n: int, bits: int) -> np.ndarray:
    if bits < 8:
        if len(body) != -(-n * bits // 8):
            raise CorruptObjectError("Intermediate chunk's payload does not match its header.")
        planes = np.unpackbits(np.frombuffer(body, np.uint8), count=n * bits).reshape(n, bits)
        return np.packbits(np.pad(planes, ((0, 0), (8 - bits, 0))), axis=1).ravel()
    if bits == 8:
        return np.frombuffer(body[:n], np.uint8)
    return _unplane(body, n, 2).view(np.uint16)


def _unplane(body: memoryview, n: int, width: int) -> np.ndarray:
    if len(body) != n * width:
        raise CorruptObjectError("Intermediate chunk's payload does not match its header.")
    out = np.empty(n * width, dtype=np.uint8)
    from_planes(np.frombuffer(body, np.uint8), width, out)
    return out


def _pack(kind: int, bits: int, n_params: int, rows: int, cols: int, params: bytes, body: np.ndarray) -> bytes:
    return _HEADER.pack(MAGIC, kind, bits, n_params, rows, cols) + params + body.tobytes()
