"""Model versioning like git: repositories, commits, branches, tags, diff, merge, checkout."""

from mlkeep.versioning.commit import Commit
from mlkeep.versioning.plan import PlanEntry, RecoveryPolicy
from mlkeep.versioning.provenance import Provenance, RecoveryError
from mlkeep.versioning.repository import Repository

__all__ = ["Commit", "PlanEntry", "Provenance", "RecoveryError", "RecoveryPolicy", "Repository"]
