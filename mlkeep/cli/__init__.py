"""The `mlkeep` command-line interface: a thin layer over the Python API (see `mlkeep.cli.main`)."""

from mlkeep.cli.main import app, main

__all__ = ["app", "main"]
