"""The remote store: mlkeep's Python API over HTTP (httpx), for a team's `mlkeep server`.

`mlkeep.open("http://host:5000", token=...)` returns a `RemoteStore`; a
training script logs through it exactly as through a local `Store`, and errors
arrive as the same `mlkeep.errors` classes.
"""

from mlkeep.client._intermediates import RemoteIntermediates
from mlkeep.client._registry import RemoteRegistry
from mlkeep.client._repo import RemoteRepository
from mlkeep.client._run import RemoteRun
from mlkeep.client._store import RemoteStore

__all__ = ["RemoteIntermediates", "RemoteRegistry", "RemoteRepository", "RemoteRun", "RemoteStore"]
