"""`mlkeep.torch.watch(...)` and `mlkeep.torch.autolog()`: PyTorch training tracked (see `mlkeep.integrations.pytorch`).

This module is named like the framework; it imports it absolutely (`import torch` inside
functions resolves to PyTorch, never to this module), and only when used.
"""

from __future__ import annotations

from mlkeep.integrations._common import AutologWarning
from mlkeep.integrations.pytorch import Autolog, Watch, autolog, watch

__all__ = ["watch", "Watch", "autolog", "Autolog", "AutologWarning"]
