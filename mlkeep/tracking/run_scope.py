"""`RunScope`: what a run does as a context manager, shared by local and remote runs.

Entering pushes the run on a per-thread stack (so runs started inside it become
its children); leaving ends it FINISHED, KILLED on Ctrl-C, or FAILED with the
traceback kept. Each subclass keeps its own stack, so a local run never
becomes the parent of a run on another store.
"""

from __future__ import annotations

import threading
import traceback
from types import TracebackType
from typing import TypeVar

from mlkeep.errors import RunStateError
from mlkeep.tracking.entities import RunStatus

S = TypeVar("S", bound="RunScope")


class RunScope:
    """Context-manager behaviour of a run; subclasses set `_threads` and implement `end`."""

    _threads: threading.local
    id: str
    _ended: bool

    @classmethod
    def current(cls: type[S]) -> S | None:
        """The innermost run of this kind entered in this thread and not yet ended."""
        stack: list[S] = getattr(cls._threads, "stack", [])
        return stack[-1] if stack else None

    def end(self, status: str = RunStatus.FINISHED, failure: str | None = None) -> None:
        raise NotImplementedError

    def _leave(self) -> None:
        stack: list[RunScope] = getattr(self._threads, "stack", [])
        if self in stack:
            stack.remove(self)

    def __enter__(self: S) -> S:
        if not hasattr(self._threads, "stack"):
            self._threads.stack = []
        self._threads.stack.append(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
            return
        status = RunStatus.KILLED if issubclass(exc_type, KeyboardInterrupt) else RunStatus.FAILED
        self.end(status, "".join(traceback.format_exception(exc_type, exc, tb)))

    def _check_open(self) -> None:
        if self._ended:
            raise RunStateError(f"Run {self.id} has ended; start a new run to log more.")
