"""Identifiers and clocks shared by every layer."""

from __future__ import annotations

import time
import uuid


def new_id() -> str:
    """A fresh entity id: 32 lowercase hex digits (a random UUID, as MLflow's run ids)."""
    return uuid.uuid4().hex


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of every time in the schema."""
    return time.time_ns() // 1_000_000
