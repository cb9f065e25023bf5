"""`make demo` stays true: the demo runs end to end on a fresh embedded store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_runs_and_reports(tmp_path: Path) -> None:
    env = {**os.environ, "MLKEEP_DEMO_DIR": str(tmp_path / "demo-store")}
    out = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, env=env, timeout=600, check=True)
    assert "predictions identical to the logged ones: True" in out.stdout
    assert "equals epoch 1 bit for bit: True" in out.stdout
    assert "3 models, 3 evaluations" in out.stdout
    fsck = subprocess.run([sys.executable, "-m", "mlkeep.cli", "--store", str(tmp_path / "demo-store"), "fsck"],
                          capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
