"""Helpers of the CLI tests: what the iris store holds, and running `mlkeep` in process."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mlkeep.cli import app


@dataclass
class IrisStore:
    """What the fixture logged, so tests can name it on the command line."""

    path: Path
    runs: dict[str, str] = field(default_factory=dict)  # run name -> id
    failed_run: str = ""
    dataset: str | None = None
    models: dict[str, str] = field(default_factory=dict)  # run name -> model id
    evaluations: dict[str, str] = field(default_factory=dict)  # run name -> evaluation id


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `mlkeep ARGS...` in process and capture stdout and stderr apart."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)
