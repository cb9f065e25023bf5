"""Training provenance: how a commit was made, precisely enough to make it again.

A `Provenance` names a training function by import path (``"pkg.mod:train"``),
its JSON-able keyword arguments, a seed and the datasets it read. Running it
(`Provenance.run`) calls ``fn(parent, **args)`` — `parent` is the parent
commit's checkout (a state_dict, an estimator, or None for a first commit) —
with every random generator seeded, PyTorch's deterministic algorithms on and
its thread count pinned (float sums depend on how work is split between
threads), then restores the caller's generators and flags.

When a re-run at commit time reproduces the weights bit for bit, the planner
may drop them and keep only this recipe; a checkout then re-runs it and checks
the result against the commit's hash tree. A re-run that does not reproduce
raises `RecoveryError`: wrong weights are never returned.

For weights to be reproducible the first run must happen the same way: make
them with `Provenance.run` too (or under the same seeds and flags).
"""

from __future__ import annotations

import importlib
import json
import platform
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError, RecoveryError


@dataclass(frozen=True)
class Provenance:
    """How a version was trained: `fn(parent, **args)` under `seed`, reading `datasets`.

    `environment` is filled in at commit time (library versions, thread count);
    `parent` is the commit the run starts from, also filled in at commit time.
    """

    fn: str
    args: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    datasets: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    parent: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fn, str) or ":" not in self.fn or self.fn.count(":") != 1:
            raise InvalidInputError(f"Provenance fn must be an import path like 'pkg.module:train', not {self.fn!r}.")
        try:
            json.dumps(self.args, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"Provenance args must be JSON values (numbers, strings, lists, dicts): {exc}.") from exc
        if self.seed is not None and not isinstance(self.seed, int):
            raise InvalidInputError("Provenance seed must be an integer or None.")
        object.__setattr__(self, "datasets", tuple(getattr(d, "id", d) for d in self.datasets))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fn": self.fn, "args": self.args, "seed": self.seed, "datasets": list(self.datasets),
            "environment": dict(self.environment), "parent": self.parent,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        return cls(d["fn"], dict(d.get("args") or {}), d.get("seed"), tuple(d.get("datasets") or ()),
                   dict(d.get("environment") or {}), d.get("parent"))  # fmt: skip

    def function(self) -> Callable[..., Any]:
        """The training function; `RecoveryError` when it cannot be imported."""
        module, _, name = self.fn.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise RecoveryError(f"Training function {self.fn!r} cannot be imported: {exc}.") from exc
        if not callable(obj):
            raise RecoveryError(f"{self.fn!r} is not callable.")
        return obj  # type: ignore[no-any-return]

    def run(self, parent: Any) -> Any:
        """Call the training function on `parent` deterministically; returns what it returns."""
        fn = self.function()
        with deterministic(self.seed, _threads(self.environment)):
            return fn(parent, **self.args)

    def timed_run(self, parent: Any) -> tuple[Any, float]:
        """`run`, and how many seconds it took."""
        t0 = time.perf_counter()
        out = self.run(parent)
        return out, time.perf_counter() - t0


def capture(prov: Provenance, parent: str | None) -> Provenance:
    """`prov` with its parent commit and the environment a re-run must match."""
    env = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine()}
    try:
        import torch

        env |= {"torch": torch.__version__, "torch.threads": str(torch.get_num_threads())}
    except ImportError:
        pass
    return Provenance(prov.fn, prov.args, prov.seed, prov.datasets, env | dict(prov.environment), parent)


def environment_differences(prov: Provenance) -> list[str]:
    """Recorded environment entries that differ now (a likely reason a re-run does not reproduce)."""
    now = capture(Provenance(prov.fn), None).environment
    return [f"{k}: {v} then, {now.get(k)} now" for k, v in prov.environment.items() if now.get(k) not in (None, v)]


def _threads(env: dict[str, str]) -> int | None:
    value = env.get("torch.threads")
    return int(value) if value and value.isdigit() else None


@contextmanager
def deterministic(seed: int | None, threads: int | None = None) -> Iterator[None]:
    """Seed Python, numpy and torch, switch torch to deterministic algorithms; restore all afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch: Any = None
    try:
        import torch  # type: ignore[no-redef]
    except ImportError:
        pass
    saved: dict[str, Any] = {}
    if torch is not None:
        saved = {
            "rng": torch.random.get_rng_state(),
            "det": torch.are_deterministic_algorithms_enabled(),
            "warn": torch.is_deterministic_algorithms_warn_only_enabled(),
            "threads": torch.get_num_threads(),
            "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
        }
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2**32)
        if torch is not None:
            if seed is not None:
                torch.manual_seed(seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            if threads:
                torch.set_num_threads(threads)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None:
            torch.random.set_rng_state(saved["rng"])
            torch.use_deterministic_algorithms(saved["det"], warn_only=saved["warn"])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved["cudnn"]
            torch.set_num_threads(saved["threads"])
