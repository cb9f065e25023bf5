"""A stored layer's 8-bit uniform codes, kept as codes: a query that needs products, not values, skips decoding.

An 8-bit uniform chunk holds, per column, `lo` and `step` and one byte per
value; `decode_chunk` turns code c into float32(float32(c)·step) + lo. The
decoding is affine per column, so CKA's cross term XᵀY of a wide layer X
against a narrow layer Y is, per chunk, step·(CᵀY) plus rank-one terms: the
product runs on the codes as they come out of the object store, with no float
copy of X and no centring pass over it (`queries._cross_on_codes`).
`Codes.decode()` gives the values `storage.read` would, for everything else.

Per-class statistics were tried on the codes too (a 256-bin histogram per
column and class, each code weighed by its decoded value): on the benchmark's
CNN layers, 2,000–10,000 rows of 32–1,024 columns and 10 classes, building
and counting the histograms' keys took 1.3–3× as long as the float passes
over the decoded values, so `stats` decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlkeep.errors import CorruptObjectError
from mlkeep.intermediates.codecs import HEADER_BYTES, Codec, is_uniform8


def applies(codec: Codec) -> bool:
    """Whether a layer stored under `codec` holds 8-bit uniform codes (pooled or not)."""
    return codec.value == "kbit" and codec.bits == 8 and codec.bins == "uniform"


@dataclass(frozen=True)
class CodeChunk:
    """One stored chunk's codes: rows [r0, r1) of the selection, its columns at positions `cols` of it."""

    r0: int
    r1: int
    cols: np.ndarray  # positions in the selection's columns, one per row of `codes`
    lo: np.ndarray  # float32 per column
    step: np.ndarray  # float32 per column
    codes: np.ndarray  # columns × rows uint8

    def rounds_off(self) -> bool:
        """Whether decoding rounds some column's values by more than 2⁻¹⁶ of the column's range: a large
        offset against a small range (1000 ± 0.01), where float32(c·step) + lo keeps few bits of c·step and
        the values are not lo + c·step to float32 precision."""
        span = 255 * self.step.astype(np.float64)
        top = np.maximum(np.abs(self.lo), np.abs(self.lo + 255 * self.step)).astype(np.float32)
        return bool(np.any((span > 0) & (np.spacing(top) > span * 2.0**-16)))

    def values(self) -> np.ndarray:
        """columns × rows float32, the decoded values (the same operations as `decode_chunk`)."""
        out = self.codes.astype(np.float32)
        out *= self.step[:, None]
        out += self.lo[:, None]
        return out


def parse(content: bytes, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, step, columns × rows codes) of an 8-bit uniform chunk of `rows` × `cols` values, views of
    `content`; `CorruptObjectError` when it is not one."""
    if not is_uniform8(content) or len(content) != HEADER_BYTES + 8 * cols + rows * cols:
        raise CorruptObjectError("An intermediate chunk does not hold the 8-bit codes its manifest promises.")
    params = np.frombuffer(content, np.float32, 2 * cols, HEADER_BYTES)
    codes = np.frombuffer(content, np.uint8, rows * cols, HEADER_BYTES + 8 * cols).reshape(cols, rows)
    return params[:cols], params[cols:], codes


@dataclass(frozen=True)
class Codes:
    """A selection of whole rows (every row) by columns of a stored layer, as its chunks' codes."""

    n_rows: int
    n_cols: int
    chunks: list[CodeChunk]

    def __len__(self) -> int:
        return self.n_rows

    def decode(self) -> np.ndarray:
        """The rows × columns float32 values (column-major, as CKA's products want them)."""
        out = np.empty((self.n_rows, self.n_cols), dtype=np.float32, order="F")
        for chunk in self.chunks:
            out[chunk.r0 : chunk.r1, chunk.cols] = chunk.values().T
        return out

    def column_groups(self) -> list[list[CodeChunk]]:
        """The chunks grouped by the columns they hold (one group per column chunk, its row blocks in order)."""
        groups: dict[bytes, list[CodeChunk]] = {}
        for chunk in self.chunks:
            groups.setdefault(chunk.cols.tobytes(), []).append(chunk)
        return [sorted(g, key=lambda c: c.r0) for g in groups.values()]
