"""Object store layer: content-addressed, compressed, verified blobs."""

from mlkeep.objects.store import ObjectStore

__all__ = ["ObjectStore"]
