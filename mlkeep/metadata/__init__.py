"""Metadata database layer: tables, engine, migrations."""

from mlkeep.metadata.database import Database

__all__ = ["Database"]
