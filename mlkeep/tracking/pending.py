"""Work that a layer above queued for runs, which a run's `flush()` and end wait for.

Autologging writes what a fit produced in a background thread, so that
training does not wait for it. A run's durability promise (on disk when
`flush()` returns and when the run ends) must cover that work too, yet the
tracking layer cannot import the integrations above it: they register a waiter
here instead, and `ActiveRun` calls `settle()`.
"""

from __future__ import annotations

from collections.abc import Callable

_waiters: list[Callable[[], None]] = []


def add_waiter(wait: Callable[[], None]) -> None:
    """Have `settle()` call `wait` (once per distinct function)."""
    if wait not in _waiters:
        _waiters.append(wait)


def settle() -> None:
    """Return when every registered waiter has returned: the queued work is written."""
    for wait in list(_waiters):
        wait()
