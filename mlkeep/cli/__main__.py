"""`python -m mlkeep.cli` runs the `mlkeep` command."""

from mlkeep.cli.main import main

main()
