"""What both integrations share: skipping safely, weak maps by identity, dataset caching, scores.

Tracking must never break training: every piece of tracking runs inside
`skipping(...)`, which turns a failure into a warning plus a run tag
`autolog.skipped.<what>` naming what was not recorded and why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mlkeep.integrations._recorder import AutologWarning, recorder

if TYPE_CHECKING:
    from mlkeep.objects import ObjectStore
    from mlkeep.tracking.active_run import ActiveRun
    from mlkeep.tracking.entities import Dataset

log = logging.getLogger(__name__)
V = TypeVar("V")
SKIPPED_TAG = "autolog.skipped"
MAX_REASON = 300


def skipped(run: ActiveRun | None, what: str, exc: BaseException) -> None:
    """Warn that `what` was not recorded, and say so in the run's tag `autolog.skipped.<what>`.

    In the background recorder the warning waits for the next `recorder.settle()`,
    so it reaches the training thread instead of vanishing in the worker.
    """
    reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON]
    message = f"mlkeep autologging skipped {what}: {reason}"
    if recorder.in_worker():
        recorder.note(message)
    else:
        warnings.warn(message, AutologWarning, stacklevel=3)
    log.debug("autologging skipped %s", what, exc_info=exc)
    if run is not None:
        try:
            from mlkeep.tracking import runs

            runs.set_tags(run.db, run.id, {f"{SKIPPED_TAG}.{what}": reason})
        except Exception:  # the store itself is failing: the warning is all we can give
            log.debug("could not tag run %s", run.id, exc_info=True)


@contextmanager
def skipping(run: ActiveRun | None, what: str) -> Iterator[None]:
    """Run a piece of tracking; an exception in it becomes `skipped(run, what, exc)`."""
    try:
        yield
    except Exception as exc:
        skipped(run, what, exc)


class IdentityMap(Generic[V]):
    """A map keyed by object identity that forgets an entry when its key is collected.

    numpy arrays and estimators are not (reliably) hashable, so a WeakKeyDictionary
    cannot hold them; this one keys by `id()` and holds a weak reference to check it.
    Objects that refuse weak references are simply not remembered.
    """

    def __init__(self) -> None:
        self._items: dict[int, tuple[weakref.ref[Any], V]] = {}
        self._lock = threading.Lock()

    def put(self, key: Any, value: V) -> bool:
        ident = id(key)

        def forget(_: Any, ident: int = ident) -> None:
            with self._lock:
                entry = self._items.get(ident)
                if entry is not None and entry[0]() is None:
                    del self._items[ident]

        try:
            ref = weakref.ref(key, forget)
        except TypeError:
            return False
        with self._lock:
            self._items[ident] = (ref, value)
        return True

    def get(self, key: Any) -> V | None:
        entry = self._items.get(id(key))
        if entry is None or entry[0]() is not key:
            return None
        return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# -- datasets ---------------------------------------------------------------------------------------------

# Per object store: content key -> Dataset. Describing data (statistics, histograms, the stored
# copy) is most of what autologging costs; hashing it is cheap (~1 ms per MB), so the same
# content seen again is one hash and one link, never a second description.
_datasets: weakref.WeakKeyDictionary[Any, dict[str, Dataset]] = weakref.WeakKeyDictionary()
_datasets_lock = threading.Lock()


def content_key(data: Any, targets: Any = None) -> str | None:
    """A hash of numpy content (dtype, shape, bytes) of `data` and `targets`; None for other types."""
    import numpy as np

    digest = hashlib.sha256()
    for label, value in (("data", data), ("targets", targets)):
        if value is None:
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind in "OV":
            return None
        array = np.ascontiguousarray(value)
        digest.update(f"{label}:{array.dtype.str}:{array.shape};".encode())
        digest.update(memoryview(array).cast("B") if array.dtype.kind not in "US" else array.tobytes())  # type: ignore[arg-type]
    return digest.hexdigest()


def log_dataset(
    db: Any, objects: ObjectStore, data: Any, targets: Any = None, *, run_id: str | None, context: str = "input"
) -> Dataset:
    """The Dataset of `data` (with `targets`), described once per content and process; linked to `run_id`."""
    from mlkeep.tracking import datasets
    from mlkeep.tracking.lineage import add_links

    key = content_key(data, targets)
    with _datasets_lock:
        known = _datasets.setdefault(objects, {}).get(key) if key is not None else None
    if known is not None:
        if run_id is not None:
            with db.begin() as conn:
                add_links(conn, [(known.id, "dataset", run_id, "run", context)])
        return known
    found = datasets.log_dataset(db, objects, data, targets=targets, run_id=run_id, context=context)
    if key is not None:
        with _datasets_lock:
            _datasets.setdefault(objects, {})[key] = found
    return found


# -- scores ------------------------------------------------------------------------------------------------


def classification_scores(y_true: Any, y_pred: Any) -> tuple[dict[str, float], Any, list[str]]:
    """accuracy; precision, recall, F1 per class, macro and weighted; the confusion matrix and its labels.

    Computed from one confusion matrix in numpy (sklearn.metrics' validation costs
    milliseconds per call); the numbers are sklearn's, with 0 where it warns of 0/0.
    """
    import numpy as np

    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if len(t) != len(p):
        raise ValueError(f"{len(t)} true labels for {len(p)} predictions")
    labels = np.unique(np.concatenate([t, p]))
    k = len(labels)
    cm = np.bincount(np.searchsorted(labels, t) * k + np.searchsorted(labels, p), minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1).astype(float), cm.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    weights = support / support.sum() if support.sum() else np.zeros(k)
    scores = {"accuracy": float(tp.sum() / max(len(t), 1))}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        scores[f"{name}_macro"] = float(per_class.mean()) if k else 0.0
        scores[f"{name}_weighted"] = float((per_class * weights).sum())
        for label, value in zip(labels, per_class):
            scores[f"{name}_class_{label}"] = float(value)
    return scores, cm, [str(label) for label in labels]


def regression_scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MAE, MSE and R² (averaged uniformly over outputs, as sklearn does by default)."""
    import numpy as np

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    t, p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    if t.shape != p.shape:
        raise ValueError(f"targets of shape {t.shape} for predictions of shape {p.shape}")
    err = t - p
    ss_res = (err**2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
    return {"mae": float(np.abs(err).mean()), "mse": float((err**2).mean()), "r2": float(r2.mean())}


def call_quietly(fn: Callable[[], V]) -> V | None:
    """`fn()`, or None when it raises (used for optional facts such as a version string)."""
    try:
        return fn()
    except Exception:
        return None
