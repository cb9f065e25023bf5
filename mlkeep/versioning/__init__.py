"""Model versioning like git: repositories, commits, branches, tags, diff, merge, checkout."""

from mlkeep.versioning.commit import Commit
from mlkeep.versioning.repository import Repository

__all__ = ["Commit", "Repository"]
