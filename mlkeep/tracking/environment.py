"""What a run ran on, and with which code: captured once per process, stored once per store.

The full environment (interpreter, platform, CPU and GPU, every installed
distribution with its version, the git commit, branch and uncommitted diff of
the repository the script runs in, the entry script's source, the command line
and an allow-list of environment variables) is one JSON document, stored as a
content-addressed object: identical environments are one object, however many
runs point to it. A run row keeps only a small summary of string values
(python, platform, git commit, ...) plus `"object": <its id>`.

Capture runs once per process (nothing in it changes while the process lives,
and spawning git and listing distributions costs ~0.2 s); storing it runs once
per process and object store. Creating a run after the first costs nothing here.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlkeep.tracking.entities import Entity

if TYPE_CHECKING:
    from mlkeep.metadata import Database
    from mlkeep.objects import ObjectStore

FORMAT = "mlkeep.environment/1"
PACKAGES = ("mlkeep", "numpy", "pandas", "scikit-learn", "torch", "scipy")
# Only these variables are kept: they change what training computes or where it ran.
# Never credentials (MLKEEP_URI may hold a database password, so it is not here).
ENV_ALLOW = (
    "CUDA_VISIBLE_DEVICES", "CUBLAS_WORKSPACE_CONFIG", "NVIDIA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
    "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "PYTHONHASHSEED", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_DEFAULT_ENV", "CONDA_PREFIX", "LANG", "LC_ALL", "TZ",
    "SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_NODELIST", "TORCH_HOME", "HF_HOME", "TOKENIZERS_PARALLELISM",
)
MAX_TEXT = 1 << 20  # script sources and diffs larger than this are cut (and marked so)
GIT_TIMEOUT = 5

_stored: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_stored_lock = threading.Lock()


# -- capture -----------------------------------------------------------------------------------------


_capture_lock = threading.Lock()


def environment_document() -> dict[str, Any]:
    """The full environment of this process (cached: computed once per process, by one thread)."""
    with _capture_lock:  # a caller arriving during `prefetch()` waits for it rather than capturing twice
        return _capture()


def prefetch() -> None:
    """Capture the environment now in a background thread (autologging calls this when it is turned on).

    Spawning git and listing the installed distributions takes a few hundred
    milliseconds; done ahead, the first run of the process does not wait for it.
    """
    threading.Thread(target=_summary, name="mlkeep-environment", daemon=True).start()


@functools.lru_cache(maxsize=1)
def _capture() -> dict[str, Any]:
    script = _entry_script()
    repo_dir = script.parent if script is not None else Path.cwd()
    return {
        "format": FORMAT,
        "python": {
            "version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(), "release": platform.release(), "platform": platform.platform(),
            "machine": platform.machine(), "hostname": platform.node(),
        },
        "cpu": _cpu(),
        "gpu": _gpus(),
        "packages": _distributions(),
        "git": _git_state(repo_dir),
        "code": {"cwd": os.getcwd(), "argv": list(sys.argv), **_script_source(script)},
        "env": {k: os.environ[k] for k in ENV_ALLOW if k in os.environ},
    }


@functools.lru_cache(maxsize=1)
def _document_bytes() -> bytes:
    return json.dumps(environment_document(), sort_keys=True, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=1)
def _summary() -> dict[str, str]:
    doc = environment_document()
    out = {
        "python": doc["python"]["version"], "implementation": doc["python"]["implementation"],
        "platform": doc["platform"]["platform"], "hostname": doc["platform"]["hostname"],
        "executable": doc["python"]["executable"], "cwd": doc["code"]["cwd"],
    }
    for name in PACKAGES:
        if name in doc["packages"]:
            out[f"package.{name}"] = doc["packages"][name]
    git = doc["git"]
    if git.get("commit"):
        out["git.commit"] = git["commit"]
        out["git.dirty"] = "true" if git.get("dirty") else "false"
        if git.get("branch"):
            out["git.branch"] = git["branch"]
    return out


def capture_environment(objects: ObjectStore | None = None) -> dict[str, str]:
    """A run's environment summary: string values only (python, platform, git commit, ...).

    With `objects`, the full document is stored there (once per process and store)
    and the summary gains `"object"`, its id. Never raises for a store that cannot
    take it: the summary is still returned, without `"object"`.
    """
    summary = dict(_summary())
    if objects is not None:
        oid = store_environment(objects)
        if oid is not None:
            summary["object"] = oid
    return summary


def store_environment(objects: ObjectStore) -> str | None:
    """Store this process's environment document in `objects`; its id (None if the write failed)."""
    with _stored_lock:
        oid = _stored.get(objects)
        if oid is None:
            try:
                oid = objects.put_bytes(_document_bytes())
            except Exception:  # a full disk or an unreachable bucket must not stop a run from starting
                import logging

                logging.getLogger(__name__).warning("could not store the environment document", exc_info=True)
                return None
            _stored[objects] = oid
        return oid


def load_environment(db: Database, objects: ObjectStore, run_id: str) -> dict[str, Any]:
    """The full environment of a run; for runs without a stored document, its summary."""
    from mlkeep.tracking.runs import get_run

    summary = get_run(db, run_id).environment
    oid = summary.get("object")
    if not oid:
        return {"summary": dict(summary)}
    doc: dict[str, Any] = json.loads(objects.get_bytes(oid))
    return doc


# -- diff ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentDiff(Entity):
    """What differs between two runs' environments.

    `changed` maps a dotted key (`packages.numpy`, `git.commit`, `env.OMP_NUM_THREADS`)
    to (value in a, value in b), None where a side lacks it. Long texts (script
    source, git diff) are compared as unified diffs in `text`.
    """

    run_a: str
    run_b: str
    same_object: bool
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return self.same_object or (not self.changed and not self.text)


TEXT_KEYS = ("code.source", "git.diff")


def diff_environments(db: Database, objects: ObjectStore, run_a: str, run_b: str) -> EnvironmentDiff:
    """Compare the environments of two runs key by key; `NotFoundError` for an unknown run."""
    from mlkeep.tracking.runs import get_run

    ids = (get_run(db, run_a).environment.get("object"), get_run(db, run_b).environment.get("object"))
    if ids[0] and ids[0] == ids[1]:
        return EnvironmentDiff(run_a, run_b, same_object=True)
    a = _flatten(load_environment(db, objects, run_a))
    b = _flatten(load_environment(db, objects, run_b))
    changed: dict[str, tuple[Any, Any]] = {}
    text: dict[str, str] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if key in TEXT_KEYS:
            text[key] = "".join(difflib.unified_diff(
                str(va or "").splitlines(keepends=True), str(vb or "").splitlines(keepends=True),
                fromfile=f"{run_a}:{key}", tofile=f"{run_b}:{key}",
            ))
        else:
            changed[key] = (va, vb)
    return EnvironmentDiff(run_a, run_b, same_object=False, changed=changed, text=text)


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


# -- the parts -------------------------------------------------------------------------------------------


def _cpu() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "count": os.cpu_count() or 0, "usable": usable or 0}


def _gpus() -> list[dict[str, str]]:
    """GPUs torch sees, if torch is already imported (importing it here would cost a second), else nvidia-smi's."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return [{"name": torch.cuda.get_device_name(i), "cuda": str(torch.version.cuda)}
                    for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop a run
        pass
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def _distributions() -> dict[str, str]:
    """Installed distributions and versions, read from `*.dist-info` folder names.

    Parsing every METADATA file (importlib.metadata) costs ~0.3 s for a few hundred
    packages; the folder names (`name-version.dist-info`) carry the same two facts.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info") and "-" in folder:
                name, version = folder[: -len(".dist-info")].split("-", 1)
                found.setdefault(name.lower().replace("_", "-"), version)
    return dict(sorted(found.items()))


def _git_state(where: Path) -> dict[str, Any]:
    top = _git(where, "rev-parse", "--show-toplevel")
    if not top:
        return {}
    state: dict[str, Any] = {"root": top, "commit": _git(where, "rev-parse", "HEAD")}
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        state["branch"] = branch
    remote = _git(where, "config", "--get", "remote.origin.url")
    if remote and "@" not in remote.split("//", 1)[-1].split("/", 1)[0]:  # never a URL with credentials
        state["remote"] = remote
    diff = _git(where, "diff", "HEAD", "--no-color", strip=False)
    untracked = _git(where, "ls-files", "--others", "--exclude-standard")
    state["dirty"] = bool(diff or _git(where, "status", "--porcelain", "--untracked-files=no"))
    state["diff"] = _cut(diff)
    state["untracked"] = untracked.splitlines()[:1000]
    return state


def _entry_script() -> Path | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if not path:
        return None
    p = Path(path)
    return p.resolve() if p.is_file() else None


def _script_source(script: Path | None) -> dict[str, Any]:
    if script is None:
        return {}
    try:
        return {"script": str(script), "source": _cut(script.read_text(encoding="utf-8", errors="replace"))}
    except OSError:
        return {"script": str(script)}


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n... [cut: {len(text) - MAX_TEXT} more characters]\n"


def _git(where: Path, *args: str, strip: bool = True) -> str:
    out = _run(["git", "-C", str(where), *args])
    return out.strip() if strip else out


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False,
                             errors="replace")
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout if out.returncode == 0 else ""
