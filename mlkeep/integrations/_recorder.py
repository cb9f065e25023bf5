"""The background recorder: autologging's writes, off the training thread.

Storing what a fit produced (pickling and compressing the model, describing the
data, scoring the training set, one child run per search candidate) costs more
than many fits. The training thread only takes a snapshot that later changes to
the estimator or the data cannot reach; a single worker thread writes the
records in submission order (so a Prediction is always written after the Model
it points to).

Durability, as for metrics: everything queued is written when `wait()` returns,
which a run's `flush()` and end, `mlkeep.sklearn.flush()`, the end of an
`autolog()` block and interpreter exit all call. A problem in the worker is never
silent: the job tags the run (`autolog.skipped.<what>`) and leaves a message that
`wait()` hands back to the calling thread, which warns with it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import warnings
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_PENDING = 16  # jobs waiting at most; a caller submitting more waits (each holds a model and data snapshot)

Job = Callable[[], None]


class AutologWarning(UserWarning):
    """Issued when autologging could not record something; training went on unchanged."""


class Recorder:
    """One daemon worker thread running submitted jobs in order."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._max_pending = max_pending
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the worker thread does not survive a fork

    def _reset(self) -> None:
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=self._max_pending)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._done = threading.Condition()
        self._submitted = 0
        self._finished = 0
        self._problems: list[str] = []

    def submit(self, job: Job) -> None:
        """Queue `job`; blocks while `MAX_PENDING` jobs are waiting (the worker sets the pace then)."""
        if self.in_worker():  # a job queueing more: run it now (waiting on a full queue would wait for oneself)
            job()
            return
        self._start()
        with self._done:
            self._submitted += 1
        self._queue.put(job)

    def in_worker(self) -> bool:
        """True in the worker thread (where waiting for the queue would wait for oneself)."""
        return threading.current_thread() is self._thread

    def note(self, problem: str) -> None:
        """Keep a message for the next `wait()` to hand to a caller (called by jobs)."""
        with self._done:
            self._problems.append(problem)

    def wait(self) -> list[str]:
        """Block until every job submitted so far has run; the problems noted since the last wait."""
        if self.in_worker():
            return []
        with self._done:
            target = self._submitted
            self._done.wait_for(lambda: self._finished >= target)
            problems, self._problems = self._problems, []
        return problems

    def settle(self) -> None:
        """`wait()`, then warn (`AutologWarning`) in the calling thread with each problem noted."""
        for problem in self.wait():
            warnings.warn(problem, AutologWarning, stacklevel=3)

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished yet."""
        with self._done:
            return self._submitted - self._finished

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                if self._thread is None:
                    from mlkeep.tracking import pending

                    pending.add_waiter(self.settle)  # a run's flush and end wait for what is queued
                    # registered now, after the tracking modules' own exit handlers: atexit runs them in
                    # reverse order, so queued records are written before buffered metrics are flushed
                    atexit.register(self.settle)
                self._thread = threading.Thread(target=self._loop, name="mlkeep-autolog", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except BaseException as exc:  # jobs guard their parts; this catches what slipped through
                log.debug("autologging job failed", exc_info=exc)
                self.note(f"mlkeep autologging failed to record: {type(exc).__name__}: {exc}")
            finally:
                del job
                with self._done:
                    self._finished += 1
                    self._done.notify_all()


recorder = Recorder()
