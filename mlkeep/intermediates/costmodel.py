"""The cost model: read a stored intermediate or re-run the model, store it or not.

For one intermediate and a query over n rows:

* `t_rerun = t_model_load + t_data_load + n · t_fwd_row`, where `n · t_fwd_row`
  is DESIGN's `(n/batch) · Σ t_fwd` (the forward time per batch up to this
  layer, and taking its output, measured while capturing, divided by the
  batch size; then the wall time of each recompute) and `t_data_load` is its
  `n·size/ρ` (the dataset is read whole);
* `t_read = read_rate · bytes touched + t_open`: the bytes the query reads
  times the store's measured throughput for this intermediate, decompression
  and decoding included. At capture `read_rate` is an estimate: the median
  of what queries measured on the store's latest intermediates of the same
  codec (else of any codec, else `DEFAULT_READ_RATE`), as timing a read of
  every layer cost a capture more than the estimate is off by. The first
  read a query does replaces it, and every later read updates it.

A query reads when `t_read < t_rerun`, else re-runs. Storage is decided by
`γ = (t_rerun − t_read) · n_queries / GB stored` (seconds saved per GB)
against the user's threshold; every query increments `n_queries`. The count
starts at one: an intermediate is captured to be queried. The GB an
intermediate is charged are its share of the objects it reads (`shares`):
an object that several stored intermediates use (a stage shared by many
pipelines, the base of another stage's delta) is split between them, so
dropping one of them, which frees nothing, is never what makes room.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from mlkeep.tracking.entities import Entity

GB = 1e9
EMA = 0.5  # weight of a new measurement
# A query's measurement is written back only when it moves t_read or t_rerun by more than this share (the
# record then stays within about twice that of what queries measure): rewriting the record for a change
# within the noise cost about half of a small query's time.
RECORD_CHANGE = 0.1
# Seconds per stored byte (and to open a manifest) before anything was measured: reading, verifying and
# decoding 8-bit codes of a CNN's layers measured 2-6 ns per stored byte on two busy cores
DEFAULT_READ_RATE = 4e-9
DEFAULT_OPEN = 1e-3


@dataclass(frozen=True)
class Costs(Entity):
    """Measured figures of one intermediate (seconds; `read_rate` in seconds per stored byte)."""

    t_model_load: float
    t_data_load: float
    t_fwd_row: float
    read_rate: float
    t_open: float
    stored_bytes: int
    n_rows: int
    read_measured: bool = False  # False: read_rate and t_open are still the capture's estimate

    def t_rerun(self, n: int | None = None) -> float:
        n = self.n_rows if n is None else n
        return self.t_model_load + self.t_data_load + n * self.t_fwd_row

    def t_read(self, nbytes: int | None = None) -> float:
        nbytes = self.stored_bytes if nbytes is None else nbytes
        return self.t_open + self.read_rate * nbytes

    def gamma(self, n_queries: int, nbytes: float | None = None) -> float:
        """Seconds saved per GB stored over `n_queries` whole-intermediate queries, charging `nbytes`
        (default: every byte it reads)."""
        charged = self.stored_bytes if nbytes is None else nbytes
        return (self.t_rerun() - self.t_read()) * n_queries / max(charged / GB, 1e-12)

    def measured_read(self, seconds: float, nbytes: int) -> Costs:
        """The figures after a read of `nbytes` stored bytes took `seconds`: the first measurement replaces
        the capture's estimate, later ones are averaged in."""
        if nbytes <= 0:
            return self
        rate = max(seconds - self.t_open, 0.0) / nbytes
        weight = EMA if self.read_measured else 1.0
        return replace(self, read_rate=(1 - weight) * self.read_rate + weight * rate, read_measured=True)

    def measured_rerun(self, t_model_load: float, t_data_load: float, t_fwd: float, n: int) -> Costs:
        def mix(old: float, new: float) -> float:
            return (1 - EMA) * old + EMA * new

        return replace(self, t_model_load=mix(self.t_model_load, t_model_load),
                       t_data_load=mix(self.t_data_load, t_data_load),
                       t_fwd_row=mix(self.t_fwd_row, t_fwd / max(n, 1)))


def moved(old: Costs, new: Costs) -> bool:
    """Whether `new` figures move the whole-intermediate t_read or t_rerun by more than `RECORD_CHANGE`, or
    are the first measured read (which the next capture's estimate may then use)."""
    if new.read_measured != old.read_measured:
        return True
    pairs = ((old.t_read(), new.t_read()), (old.t_rerun(), new.t_rerun()))
    return any(abs(b - a) > RECORD_CHANGE * abs(a) for a, b in pairs)


@dataclass(frozen=True)
class Decision(Entity):
    """How the cost model treats one intermediate: where queries come from and whether to store it."""

    intermediate: str
    name: str
    layer: str
    status: str
    stored_bytes: int
    n_queries: int
    t_rerun: float
    t_read: float
    gamma: float
    query_from: str
    store: bool
    action: str
    charged_bytes: float = 0.0  # its share of the objects it uses, what γ divides by


def read_estimate(measured: Sequence[tuple[str, float, float]], codec: str | None = None) -> tuple[float, float]:
    """(seconds per stored byte, seconds to open) for a new intermediate of `codec`, from (codec, read_rate,
    t_open) that queries measured on other intermediates: the medians over those of the same codec, else
    over all, else the defaults."""
    same = [m for m in measured if m[0] == codec] or list(measured)
    if not same:
        return DEFAULT_READ_RATE, DEFAULT_OPEN
    return float(median(m[1] for m in same)), float(median(m[2] for m in same))


def source(costs: Costs, stored: bool, n: int, nbytes: int) -> str:
    """'read' or 'rerun' for a query over n rows touching `nbytes` of stored chunks."""
    if not stored:
        return "rerun"
    return "read" if costs.t_read(nbytes) < costs.t_rerun(n) else "rerun"


def decide(row: Any, costs: Costs, threshold: float, charged: float | None = None) -> Decision:
    """The decision for an intermediate record (`Intermediate`) under `threshold` seconds per GB, charged
    `charged` bytes (its share from `shares`; default every byte it reads)."""
    stored = row.status == "stored"
    nbytes = float(costs.stored_bytes if charged is None else charged)
    gamma = costs.gamma(row.n_queries + 1, nbytes)
    keep = gamma > threshold and costs.t_read() < costs.t_rerun()
    action = "keep" if keep == stored else ("materialize" if keep else "drop")
    return Decision(row.id, row.name, row.layer, row.status, costs.stored_bytes, row.n_queries, costs.t_rerun(),
                    costs.t_read(), gamma, source(costs, stored, row.n_rows, costs.stored_bytes), keep, action, nbytes)


def shares(used: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Per intermediate, its share of the bytes of the objects it uses ({intermediate: {object: size}}): each
    object's size split evenly between the intermediates that use it."""
    users = Counter(oid for objects in used.values() for oid in objects)
    return {key: sum(size / users[oid] for oid, size in objects.items()) for key, objects in used.items()}
