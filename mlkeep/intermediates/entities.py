"""What the intermediates layer hands out: frozen records, never database rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlkeep.tracking.entities import Entity

STORED = "stored"
VIRTUAL = "virtual"  # not stored: recomputed from its model version and dataset when queried


@dataclass(frozen=True)
class Intermediate(Entity):
    """The output of one layer or stage of one model version over one dataset.

    `row_shape` is the shape of one row as stored (after pooling); `n_cols`
    its size. `stored_bytes` counts every chunk it uses (shared ones too),
    `new_bytes` only those it added to the store.
    """

    id: str
    capture_id: str
    name: str
    layer: str
    repository: str
    commit_id: str
    dataset_id: str
    codec: str
    status: str
    n_rows: int
    n_cols: int
    row_shape: tuple[int, ...]
    raw_bytes: int
    stored_bytes: int
    new_bytes: int
    manifest: str | None
    n_queries: int
    t_rerun: float
    t_read: float
    creation_time: int
    framework: str = ""
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        return self.status == STORED

    @property
    def ratio(self) -> float:
        """Raw float32 bytes per stored byte."""
        return self.raw_bytes / max(self.stored_bytes, 1)
