"""Integrations: automatic tracking for scikit-learn and PyTorch.

Each framework is imported only when its integration is used, so `import mlkeep`
stays fast. The user-facing names are `mlkeep.sklearn.autolog()` and
`mlkeep.torch.autolog()` / `mlkeep.torch.watch(...)`.
"""

from mlkeep.integrations._common import AutologWarning

__all__ = ["AutologWarning"]
