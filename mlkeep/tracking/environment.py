"""What a run ran on: interpreter, platform, packages that matter, code version.

Captured once per process (it does not change while the process lives) so
creating a run stays cheap.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata

PACKAGES = ("mlkeep", "numpy", "pandas", "scikit-learn", "torch", "scipy")


@functools.lru_cache(maxsize=1)
def capture_environment() -> dict[str, str]:
    """Python, platform, host, key package versions and the git commit of the working directory."""
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "executable": sys.executable,
        "cwd": os.getcwd(),
    }
    for name in PACKAGES:
        try:
            env[f"package.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    commit = _git("rev-parse", "HEAD")
    if commit:
        env["git.commit"] = commit
        env["git.dirty"] = "true" if _git("status", "--porcelain", "--untracked-files=no") else "false"
    return env


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
