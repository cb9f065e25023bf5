"""`RemoteRepository`: a model repository on a server — refs, log, diff, checkout, and commit."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlkeep.versioning.commit import Commit

if TYPE_CHECKING:
    from mlkeep.client._store import RemoteStore
    from mlkeep.versioning.diff import CommitDiff


class RemoteRepository:
    """The versions of one model on a server, addressed by branch, tag, `main~2` or a hash prefix."""

    def __init__(self, store: RemoteStore, name: str) -> None:
        self.store, self.name = store, name

    def _path(self, rest: str) -> str:
        return f"/repositories/{self.name}/{rest}"

    def branches(self) -> dict[str, str]:
        return self.store.http.get(self._path("refs"))["branches"]  # type: ignore[no-any-return]

    def tags(self) -> dict[str, str]:
        return self.store.http.get(self._path("refs"))["tags"]  # type: ignore[no-any-return]

    def get(self, ref: str) -> Commit:
        return _commit(self.store.http.get(self._path(f"commits/{ref}")))

    def resolve(self, ref: str) -> str:
        return self.get(ref).id

    def log(self, ref: str = "main", limit: int | None = None) -> list[Commit]:
        """Commits reachable from `ref`, newest first."""
        return [_commit(c) for c in self.store.http.get(self._path("log"), ref=ref, limit=limit)]

    def diff(self, a: str, b: str) -> CommitDiff:
        from mlkeep.versioning.diff import CommitDiff, TensorChange

        d = self.store.http.get(self._path("diff"), a=a, b=b)
        d["tensors"] = [TensorChange(**{**t, "shape_a": _shape(t["shape_a"]), "shape_b": _shape(t["shape_b"])})
                        for t in d["tensors"]]
        d["hyperparameters"] = {k: tuple(v) for k, v in d["hyperparameters"].items()}
        d["code"] = {k: tuple(v) for k, v in d["code"].items()}
        return CommitDiff(**d)

    def commit(self, model: Any, message: str = "", *, branch: str = "main", run: Any = None,
               datasets: Sequence[Any] = (), code: dict[str, str] | None = None) -> Commit:
        """Commit weights (a torch module or state_dict, a dict of arrays, or a `.safetensors` file) onto `branch`.

        Sent as a safetensors file (streamed). The branch head moves by compare-and-swap on the server, so a
        concurrent commit raises `ConflictError` rather than being lost. `code` defaults to this machine's git
        reference. Estimators are not sent: pickles do not cross to a server (commit them to a local store).
        """
        from mlkeep.tracking.environment import capture_environment

        if code is None:
            code = {k[4:]: v for k, v in capture_environment().items() if k.startswith("git.")}
        params = {"message": message, "branch": branch, "run_id": getattr(run, "id", run),
                  "datasets": [getattr(d, "id", d) for d in datasets], "code": [f"{k}={v}" for k, v in code.items()]}
        with tempfile.TemporaryDirectory(prefix="mlkeep-commit-") as tmp:
            file = _safetensors(model, Path(tmp) / "model.safetensors")
            return _commit(self.store.http.upload(self._path("commits"), file, params=params))

    def checkout_file(self, ref: str, path: str | os.PathLike[str]) -> Path:
        """Download version `ref` to `path` (`.safetensors`, or `.pkl` for an estimator), streamed."""
        return self.store.http.download(self._path("checkout"), path, ref=ref)[0]

    def checkout(self, ref: str = "main", into: Any = None) -> Any:
        """The model as committed: a state_dict for torch, the estimator for scikit-learn, else arrays."""
        commit = self.get(ref)
        with tempfile.TemporaryDirectory(prefix="mlkeep-checkout-") as tmp:
            if commit.kind == "sklearn":
                import pickle

                file = self.checkout_file(commit.id, Path(tmp) / "model.pkl")
                return pickle.loads(file.read_bytes())  # noqa: S301 - from the server the user chose to trust
            file = self.checkout_file(commit.id, Path(tmp) / "model.safetensors")
            if commit.kind == "torch":
                from safetensors.torch import load_file

                state = load_file(str(file))
                state = {k: state[k] for k in commit.order if k in state} | state
                if into is not None:
                    into.load_state_dict(state)
                    return into
                return state
            from safetensors.numpy import load_file as load_numpy

            return load_numpy(str(file))


def _safetensors(model: Any, path: Path) -> Path:
    """`model` as a safetensors file: a path as given, else its tensors written to `path`."""
    import numpy as np

    from mlkeep.errors import InvalidInputError

    if isinstance(model, (str, os.PathLike)):
        return Path(model)
    state = model.state_dict() if hasattr(model, "state_dict") else model
    if isinstance(state, dict) and state and all(isinstance(v, np.ndarray) for v in state.values()):
        from safetensors.numpy import save_file as save_numpy

        save_numpy({str(k): np.ascontiguousarray(v) for k, v in state.items()}, str(path))
        return path
    if isinstance(state, dict) and state and all(hasattr(v, "detach") for v in state.values()):
        from safetensors.torch import save_file

        save_file({str(k): v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
        return path
    raise InvalidInputError(
        f"A remote commit takes a torch module or state_dict, a dict of arrays or a .safetensors file, "
        f"not {type(model).__name__}.")


def _shape(s: Any) -> tuple[int, ...] | None:
    return tuple(s) if s is not None else None


def _commit(d: dict[str, Any]) -> Commit:
    d = dict(d)
    for k in ("parents", "datasets", "order"):
        d[k] = tuple(d.get(k, ()))
    return Commit(**d)
