"""BLAS threads for a query's products: one when the machine's cores are already busy.

A query's matrix products (XᵀX for CKA, a layer against a row for kNN) are
short. numpy's OpenBLAS runs each on one spinning thread per core; when
every core is already busy (the load average is at or above the core count)
those threads wait on each other, and a product that takes 60 ms on one
thread took 150–200 ms on two (measured on a 2-core machine at load 12).
So while a query computes, BLAS gets one thread on a busy machine and its
own default otherwise. `threadpoolctl` (also scikit-learn's) switches it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any


@contextmanager
def blas_threads() -> Iterator[None]:
    """Within the block, numpy's BLAS uses one thread if the cores are busy, else its default."""
    controller = _controller()
    if controller is None or not _busy():
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def _busy() -> bool:
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return False


@lru_cache(maxsize=1)
def _controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries (found once: a scan of the loaded libraries)."""
    import numpy  # noqa: F401  (its BLAS must be loaded to be found)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")
