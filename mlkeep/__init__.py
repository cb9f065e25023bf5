"""mlkeep: model management for Python machine learning.

The public API is `__all__`. Heavy modules (SQLAlchemy, numpy, pandas) load on
first use, so `import mlkeep` stays fast enough for a CLI and for scripts that
only sometimes log.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from mlkeep import errors

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.tracking.active_run import ActiveRun

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "errors",
    "open",
    "init",
    "start_run",
    "active_run",
    "load_model",
    "Store",
    "ActiveRun",
]

_default: Store | None = None
_default_lock = threading.Lock()


def open(  # noqa: A001
    uri: str | os.PathLike[str] | None = None, *, objects: str | None = None, token: str | None = None
) -> Store:
    """Open a store: `uri`, else `MLKEEP_URI`, else the nearest `.mlkeep/` above the working directory.

    `uri` may be a folder, `memory://`, a database URL with `objects=` an fsspec URL, or the
    `http(s)://` address of an `mlkeep server` (then a `RemoteStore`, with `token=` if it needs one).
    Raises `StoreNotFoundError` when there is none.
    """
    target = os.fspath(uri) if uri is not None else os.environ.get("MLKEEP_URI", "")
    if target.startswith(("http://", "https://")):
        from mlkeep.client import RemoteStore

        return RemoteStore(target, token=token or os.environ.get("MLKEEP_TOKEN"))  # type: ignore[return-value]
    from mlkeep.store import open_store

    return open_store(uri, objects=objects)


def init(path: str | os.PathLike[str] = ".") -> Store:
    """Create a store in `PATH/.mlkeep/`; raises `StoreExistsError` if one is there."""
    from mlkeep.store import init_store

    return init_store(path)


def _default_store() -> Store:
    """The store module-level calls use: found as `open()` finds it, made in the cwd if none."""
    global _default
    with _default_lock:
        if _default is None:
            try:
                _default = open()
            except errors.StoreNotFoundError:
                _default = init(".")
        return _default


def start_run(experiment: str = "Default", name: str | None = None, **kwargs: Any) -> ActiveRun:
    """Start a run in the default store (see `open`); inside another active run it becomes a child."""
    return _default_store().start_run(experiment, name, **kwargs)


def active_run() -> ActiveRun | None:
    """The innermost run started in this thread and not yet ended, if any."""
    from mlkeep.tracking.active_run import active_run as current

    return current()


def load_model(model_id: str, store: Store | None = None) -> Any:
    """The fitted model logged as `model_id`, or the registered version `models:/NAME@ALIAS` / `models:/NAME/N`."""
    return (store or _default_store()).load_model(model_id)


def __getattr__(name: str) -> Any:
    if name == "Store":
        from mlkeep.store import Store

        return Store
    if name == "ActiveRun":
        from mlkeep.tracking.active_run import ActiveRun

        return ActiveRun
    raise AttributeError(f"module 'mlkeep' has no attribute {name!r}")
