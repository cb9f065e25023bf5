"""`mlkeep.sklearn.autolog()`: record every scikit-learn fit (see `mlkeep.integrations.sklearn`)."""

from __future__ import annotations

from mlkeep.integrations._common import AutologWarning
from mlkeep.integrations.sklearn import Autolog, TrackedModel, autolog, flush, tracked_model

__all__ = ["autolog", "Autolog", "AutologWarning", "flush", "TrackedModel", "tracked_model"]
