"""Layout: an intermediate as rows × columns cut into column chunks per block of rows.

Rows are examples in the dataset's order (row id = position); columns are
features or neurons (a convolutional map flattened channel by channel). A
chunk holds `block_rows` rows of `chunk_cols` columns, so a query for a few
neurons over every example reads one chunk per block, and a query for a few
examples reads one block. For maps, a chunk holds whole channels when it can,
so one channel's neurons are read together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlkeep.errors import RowsOutOfRangeError

BLOCK_ROWS = 2048
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Layout:
    """The chunk grid of one intermediate."""

    n_rows: int
    row_shape: tuple[int, ...]
    block_rows: int
    chunk_cols: int

    @property
    def n_cols(self) -> int:
        return math.prod(self.row_shape)

    @property
    def n_blocks(self) -> int:
        return max(1, -(-self.n_rows // self.block_rows))

    @property
    def n_chunks(self) -> int:
        return max(1, -(-self.n_cols // self.chunk_cols))

    def block(self, b: int) -> tuple[int, int]:
        """Row range [start, stop) of block `b`."""
        return b * self.block_rows, min((b + 1) * self.block_rows, self.n_rows)

    def chunk(self, c: int) -> tuple[int, int]:
        """Column range [start, stop) of column chunk `c`."""
        return c * self.chunk_cols, min((c + 1) * self.chunk_cols, self.n_cols)

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "row_shape": list(self.row_shape), "block_rows": self.block_rows,
                "chunk_cols": self.chunk_cols}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        return cls(int(d["n_rows"]), tuple(int(x) for x in d["row_shape"]), int(d["block_rows"]), int(d["chunk_cols"]))


def plan_layout(n_rows: int, row_shape: tuple[int, ...], *, block_rows: int = BLOCK_ROWS,
                chunk_bytes: int = CHUNK_BYTES) -> Layout:
    """A grid whose chunks hold about `chunk_bytes` of float32, whole channels of maps where possible.

    The chunk width is a power of two (rounded down), so it depends on the number of rows alone, not on
    the row shape: a layer that only reshapes another (a network's `Flatten` after a pooled map) is cut
    into the same column chunks, which then de-duplicate exactly."""
    n_cols = max(1, math.prod(row_shape))
    rows = max(1, min(block_rows, n_rows))
    cols = 1 << (max(1, chunk_bytes // (4 * rows)).bit_length() - 1)
    if len(row_shape) == 3:
        plane = row_shape[1] * row_shape[2]
        if cols >= plane:
            cols -= cols % plane
    return Layout(n_rows, tuple(row_shape), max(1, block_rows), min(cols, n_cols))


def select_rows(layout: Layout, rows: Any) -> np.ndarray | None:
    """Row ids as an int64 array (None: all); `RowsOutOfRangeError` for ids outside the dataset."""
    return _select(rows, layout.n_rows, "row")


def select_cols(layout: Layout, columns: Any) -> np.ndarray | None:
    """Column indices as an int64 array (None: all); `RowsOutOfRangeError` outside the layer."""
    return _select(columns, layout.n_cols, "column")


def _select(idx: Any, n: int, what: str) -> np.ndarray | None:
    if idx is None:
        return None
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    arr = np.atleast_1d(np.asarray(idx))
    if arr.dtype.kind == "b":
        if len(arr) != n:
            raise RowsOutOfRangeError(f"A boolean {what} mask must have {n} entries, not {len(arr)}.")
        return np.flatnonzero(arr)
    if arr.dtype.kind not in "iu":
        raise RowsOutOfRangeError(f"{what.capitalize()} ids must be integers, not {arr.dtype}.")
    arr = arr.astype(np.int64).ravel()
    bad = arr[(arr < 0) | (arr >= n)]
    if len(bad):
        raise RowsOutOfRangeError(f"{what.capitalize()} {int(bad[0])} is out of range: this intermediate has {n} {what}s (0..{n - 1}).")
    return arr


def touched(layout: Layout, rows: np.ndarray | None, cols: np.ndarray | None) -> list[tuple[int, int]]:
    """The (block, chunk) pairs a selection reads."""
    blocks = range(layout.n_blocks) if rows is None else np.unique(rows // layout.block_rows).tolist()
    chunks = range(layout.n_chunks) if cols is None else np.unique(cols // layout.chunk_cols).tolist()
    return [(b, c) for b in blocks for c in chunks]
