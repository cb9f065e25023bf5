"""Stage maps: a pipeline stage's output written as a small program over its input's values.

A stage that projects (PCA, TruncatedSVD), draws random Fourier features
(RBFSampler), applies a known element-wise function (FunctionTransformer of
`np.tanh`) or scores classes (a linear classifier's decision function, a
multinomial logistic regression's probabilities) gives codes that no
per-column prediction gets right: every output column mixes every input
column. Its fitted parameters, though, predict the output from the input
stage's decoded codes to within a code or two, so `delta`'s `MAP` kind keeps
the program (its parameters embedded, so the stored chunk decodes from stored
objects alone, without the model) and the difference between the codes and
the predicted codes.

A program is a few operations applied in order, in float64:

* `affine(A, b)`: x @ A + b. Encoder and decoder must predict the same codes,
  and a floating-point product's rounding depends on the machine and the
  thread count, so the product is taken on the input's integer codes with
  A (times the input's code step) rounded to fixed point: every partial sum
  is an integer below 2**53, exact in any order, and BLAS is free to use;
* `func(name)`: an element-wise function from a short list (numpy's, and
  `relu`);
* `scale(c)`: times a constant;
* `softmax`: per row;
* `rownorm(l1|l2|max)`: each row divided by its norm (a zero row left as is).

`for_layer` builds the program of a scikit-learn Pipeline's stage (None for
a stage it does not know, which is then kept by the other deltas);
`for_network` finds the layers of a network that are an element-wise
function of the layer run just before them (a ReLU after its convolution),
from their outputs on a few rows. A wrong or
poor program only costs bytes: the difference restores the codes exactly and
the decoded content is checked against its digest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlkeep.errors import CorruptObjectError
from mlkeep.intermediates.compute import blas_threads

FUNCS = ("cos", "sin", "tanh", "exp", "log1p", "expm1", "sqrt", "abs", "arctan", "negative", "relu")  # stored by index


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


_FUNCTIONS = {name: _relu if name == "relu" else getattr(np, name) for name in FUNCS}
NORMS = ("l1", "l2", "max")
_AFFINE, _FUNC, _SCALE, _SOFTMAX, _ROWNORM = range(1, 6)
_DIMS = struct.Struct("<II")
_MAX_PARAMS = 1 << 24  # an affine map larger than this is not worth predicting from (nor a plausible one)


@dataclass(frozen=True)
class Op:
    """One step of a program; `a`/`b` hold an affine map's matrix (d_in × d_out) and offset, float32."""

    kind: int
    name: str = ""
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    c: float = 1.0


@dataclass(frozen=True)
class StageMap:
    """A stage's output as a function of its input's values (rows × d_in → rows × d_out)."""

    ops: tuple[Op, ...]

    @property
    def d_in(self) -> int | None:
        """Input columns the program needs (None: any, when it has no affine step)."""
        first = next((op for op in self.ops if op.kind == _AFFINE), None)
        return None if first is None or first.a is None else int(first.a.shape[0])

    @property
    def elementwise(self) -> bool:
        """Whether each output value depends on the input value in the same place only: the program then
        maps any chunk of columns of its input to the same chunk of its output."""
        return all(op.kind in (_FUNC, _SCALE) for op in self.ops)

    @property
    def on_codes(self) -> bool:
        """Whether the program is ReLUs alone: exact in float32, so `apply_f32` computes it in the layout
        codes are stored in, the same bytes on every machine (a network's largest layers take this path)."""
        return bool(self.ops) and all(op.kind == _FUNC and op.name == "relu" for op in self.ops)

    def apply_f32(self, codes: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
        """For an `on_codes` program: the output (cols × rows, float32) of an input given as in `apply`,
        its values computed as `codecs.decode_chunk` does."""
        z = codes.astype(np.float32)
        z *= step[:, None]
        z += lo[:, None]
        return np.maximum(z, np.float32(0), out=z)

    def apply(self, codes: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
        """The predicted output (rows × d_out, float64) of an input given as 8-bit `codes` (cols × rows) with
        per-column `lo` and `step` (values = lo + codes · step), the same bytes on every machine."""
        z: np.ndarray | None = None
        for op in self.ops:
            if z is None and op.kind == _AFFINE:
                assert op.a is not None and op.b is not None
                z = _affine_codes(codes, lo, step, op.a, op.b)
                continue
            if z is None:  # the input's values, as `codecs.decode_chunk` computes them
                z = (codes.astype(np.float32) * step[:, None] + lo[:, None]).T.astype(np.float64)
            if op.kind == _AFFINE:
                assert op.a is not None and op.b is not None
                z = _affine(z, op.a, op.b)
            elif op.kind == _FUNC:
                z = _FUNCTIONS[op.name](z)
            elif op.kind == _SCALE:
                z = z * op.c
            elif op.kind == _ROWNORM:
                z = _rownorm(z, op.name)
            else:
                z = _softmax(z)
        if z is None:
            z = (codes.astype(np.float32) * step[:, None] + lo[:, None]).T.astype(np.float64)
        return z

    def to_bytes(self) -> bytes:
        out = [bytes([len(self.ops)])]
        for op in self.ops:
            out.append(bytes([op.kind]))
            if op.kind == _AFFINE:
                assert op.a is not None and op.b is not None
                out += [_DIMS.pack(*op.a.shape), op.a.astype("<f4").tobytes(), op.b.astype("<f4").tobytes()]
            elif op.kind == _FUNC:
                out.append(bytes([FUNCS.index(op.name)]))
            elif op.kind == _ROWNORM:
                out.append(bytes([NORMS.index(op.name)]))
            elif op.kind == _SCALE:
                out.append(struct.pack("<d", op.c))
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview, at: int = 0) -> tuple[StageMap, int]:
        """(the program, the offset just past it); `CorruptObjectError` for bytes that are not one."""
        try:
            ops = []
            n = data[at]
            at += 1
            for _ in range(n):
                kind = data[at]
                at += 1
                if kind == _AFFINE:
                    d_in, d_out = _DIMS.unpack_from(data, at)
                    if d_in * d_out > _MAX_PARAMS:
                        raise ValueError("affine map too large")
                    at += _DIMS.size
                    a = np.frombuffer(data, "<f4", d_in * d_out, at).reshape(d_in, d_out)
                    at += 4 * d_in * d_out
                    b = np.frombuffer(data, "<f4", d_out, at)
                    at += 4 * d_out
                    ops.append(Op(_AFFINE, a=a, b=b))
                elif kind == _FUNC:
                    ops.append(Op(_FUNC, name=FUNCS[data[at]]))
                    at += 1
                elif kind == _SCALE:
                    ops.append(Op(_SCALE, c=struct.unpack_from("<d", data, at)[0]))
                    at += 8
                elif kind == _SOFTMAX:
                    ops.append(Op(_SOFTMAX))
                elif kind == _ROWNORM:
                    ops.append(Op(_ROWNORM, name=NORMS[data[at]]))
                    at += 1
                else:
                    raise ValueError(f"unknown operation {kind}")
            return cls(tuple(ops)), at
        except (ValueError, IndexError, struct.error) as exc:
            raise CorruptObjectError(f"Intermediate delta chunk has a malformed stage map: {exc}.") from exc


_FIXED_BITS = 22  # |A·step| per output column scaled below 2**22: 255 · 2**22 · d_in < 2**53 for d_in < 2**23


def _affine_codes(codes: np.ndarray, lo: np.ndarray, step: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(lo + codes · step) @ a + b, exactly reproducible: codes @ round(step · a · 2**e) is a product of
    integers (exact in float64 whatever the order of summation), scaled back by 2**-e per output column; the
    constant lo @ a + b is summed in a fixed order."""
    m = step.astype(np.float64)[:, None] * a.astype(np.float64)
    top = np.abs(m).max(axis=0, initial=0.0)
    exp = np.where(top > 0, _FIXED_BITS - np.ceil(np.log2(np.where(top > 0, top, 1.0))), 0.0)
    scale = np.ldexp(1.0, exp.astype(np.int64))
    fixed = np.rint(m * scale)
    const = _affine(lo.astype(np.float64)[None, :], a, b)[0]
    with blas_threads():  # a short product: spinning threads on a busy machine cost more than they give
        product = codes.T.astype(np.float64) @ fixed
    return product / scale + const


def _affine(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x @ a + b, one input column at a time in a fixed order (element-wise operations are correctly rounded
    everywhere; a BLAS product is not the same bytes on every machine)."""
    out = np.broadcast_to(b.astype(np.float64), (len(x), len(b))).copy()
    a64 = a.astype(np.float64)
    term = np.empty_like(out)
    for k in range(a.shape[0]):
        np.multiply(x[:, k : k + 1], a64[k], out=term)
        out += term
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    total = np.zeros(len(z))
    for j in range(z.shape[1]):  # a fixed order of additions, as in `_affine`
        total += z[:, j]
    return z / total[:, None]


def _rownorm(z: np.ndarray, norm: str) -> np.ndarray:
    total = np.zeros(len(z))
    for j in range(z.shape[1]):  # a fixed order of additions
        col = np.abs(z[:, j])
        if norm == "max":
            np.maximum(total, col, out=total)
        else:
            total += col * col if norm == "l2" else col
    if norm == "l2":
        total = np.sqrt(total)
    return z / np.where(total > 0, total, 1.0)[:, None]


def affine(a: np.ndarray, b: np.ndarray | None = None) -> Op:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return Op(_AFFINE, a=a, b=np.zeros(a.shape[1], np.float32) if b is None else np.asarray(b, np.float32).ravel())


# ----------------------------------------------------------------------- networks
_NETWORK_FUNCS = ("relu", "tanh", "abs")  # activations a network's layers compute that FUNCS knows


def for_network(outputs: dict[str, np.ndarray]) -> dict[str, tuple[str, StageMap]]:
    """{layer: (the layer run just before it, the element-wise program computing it from that layer's
    values)} for the layers of a network that are one, judged on their outputs on a few rows (`outputs`:
    rows × values per layer, in the order the layers ran). A layer is taken when the program reproduces
    its values (to float32 rounding: torch and numpy need not agree to the last bit); a wrong guess would
    only cost bytes, as a `MAP` delta restores the codes exactly."""
    found: dict[str, tuple[str, StageMap]] = {}
    names = list(outputs)
    for before, layer in zip(names, names[1:]):
        x, y = outputs[before], outputs[layer]
        if x.shape != y.shape or not x.size:
            continue
        for name in _NETWORK_FUNCS:
            predicted = _FUNCTIONS[name](x.astype(np.float64))
            if np.allclose(predicted, y, rtol=1e-6, atol=1e-7) and not np.allclose(x, y, rtol=1e-6, atol=1e-7):
                found[layer] = (before, StageMap((Op(_FUNC, name=name),)))
                break
    return found


# ----------------------------------------------------------------------- scikit-learn
def for_layer(model: Any, layer: str) -> StageMap | None:
    """The program of stage `layer` of a scikit-learn Pipeline as capture takes its output (the last step's
    `predict_proba`, else `decision_function`; `transform` otherwise); None for a stage it does not know."""
    if type(model).__name__ != "Pipeline" or "/" in layer:
        return None
    steps = [(n, s) for n, s in model.steps if s not in (None, "passthrough")]
    names = [n for n, _ in steps]
    if layer not in names:
        return None
    est = steps[names.index(layer)][1]
    last = layer == names[-1]
    try:
        if last and any(hasattr(est, m) for m in ("predict_proba", "decision_function", "predict")):
            return _scorer(est)
        return _transformer(est)
    except (AttributeError, TypeError, ValueError):  # an estimator that only looks like a known one
        return None


def _transformer(est: Any) -> StageMap | None:
    kind = type(est).__name__
    if kind == "PCA":
        a = np.asarray(est.components_, np.float64).T
        if est.whiten:
            a = a / np.sqrt(np.asarray(est.explained_variance_, np.float64))
        return StageMap((affine(a, -np.asarray(est.mean_, np.float64) @ a),))
    if kind == "TruncatedSVD":
        return StageMap((affine(np.asarray(est.components_).T),))
    if kind == "RBFSampler":
        return StageMap((affine(est.random_weights_, est.random_offset_), Op(_FUNC, name="cos"),
                         Op(_SCALE, c=(2.0 / est.n_components) ** 0.5)))
    if kind == "Normalizer" and est.norm in NORMS:
        return StageMap((Op(_ROWNORM, name=est.norm),))
    if kind == "FunctionTransformer":
        name = getattr(est.func, "__name__", None)
        if isinstance(est.func, np.ufunc) and name in FUNCS and not est.kw_args:
            return StageMap((Op(_FUNC, name=name),))
    return None


def _scorer(est: Any) -> StageMap | None:
    """A linear classifier's output as capture takes it: multinomial probabilities or decision values."""
    coef = getattr(est, "coef_", None)
    if coef is None or getattr(est, "intercept_", None) is None:
        return None
    coef = np.atleast_2d(np.asarray(coef, np.float64))
    score = affine(coef.T, np.broadcast_to(np.asarray(est.intercept_, np.float64), (coef.shape[0],)))
    if hasattr(est, "predict_proba"):
        if type(est).__name__ != "LogisticRegression" or len(est.classes_) <= 2:
            return None  # binary and one-vs-rest probabilities are another function
        return StageMap((score, Op(_SOFTMAX)))
    if hasattr(est, "decision_function"):
        return StageMap((score,))
    return None
