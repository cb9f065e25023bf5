"""Every command documents itself, and `mlkeep --help` does not load the heavy modules."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from mlkeep.cli import app

from cli_support import invoke


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        found.append(((*prefix, name), command))
        found.extend(_commands(command, (*prefix, name)))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_the_command_tree_is_complete() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert names >= {
        "init", "experiments", "runs", "runs search", "runs show", "runs compare", "runs history",
        "artifacts", "artifacts list", "artifacts download", "datasets", "datasets show", "models",
        "models show", "lineage", "export", "import",
    }


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_text(path: tuple[str, ...], command: object) -> None:
    assert (getattr(command, "help", None) or "").strip(), f"`mlkeep {' '.join(path)}` has no help text"
    for param in getattr(command, "params", []):
        if param.name != "help" and getattr(param, "param_type_name", "") == "option":
            assert (param.help or "").strip(), f"option {param.opts} of `mlkeep {' '.join(path)}` has no help"
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Usage: mlkeep " + " ".join(path) in " ".join(result.stdout.split())


def test_root_help_lists_the_store_option() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "--store" in result.stdout and "MLKEEP_URI" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("mlkeep ")


def test_help_does_not_import_the_store_or_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from mlkeep.cli import app\n"
        "from typer.testing import CliRunner\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "heavy = [m for m in ('mlkeep.store', 'sqlalchemy', 'pandas', 'numpy', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
