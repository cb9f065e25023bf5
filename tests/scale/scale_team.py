"""`Team`: a store on real engines plus the environment that points writer processes at it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlkeep.store import Store

@dataclass
class Team:
    """A store on real engines plus the environment that points a writer process at it."""

    store: Store
    env: dict[str, str]
    kind: str

    def run(self, *args: object, timeout: float = 120) -> list[list[str]]:
        """Run `scale_workers.py ARGS` to the end; its output lines, split."""
        proc = subprocess.run([sys.executable, str(WORKERS), *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return [line.split() for line in proc.stdout.splitlines()]

    def start(self, *args: object) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(WORKERS), *map(str, args)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


WORKERS = Path(__file__).with_name("scale_workers.py")
