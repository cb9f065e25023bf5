"""Turning a model into named tensors plus what is not a tensor, and back.

- A PyTorch module or state_dict: its state_dict (kind `torch`); the module's
  class and printed structure are the architecture.
- A safetensors file: its tensors (kind `torch` when torch is installed, else
  `tensors`).
- A mapping of numpy arrays: as is (kind `tensors`).
- A scikit-learn estimator (any picklable model): pickled with every numeric
  array of at least `MIN_ARRAY_BYTES` lifted out into the tensor tree through
  pickle's persistent ids (kind `sklearn`). Arrays are named by their order
  of appearance, which is stable for one architecture, so refitting the same
  pipeline deltas against its parent, and the skeleton that is left is small.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError
from mlkeep.tensors.dtypes import TensorLike, supported_dtypes

MIN_ARRAY_BYTES = 256
_SUPPORTED = set(supported_dtypes())


@dataclass
class Snapshot:
    kind: str
    tensors: dict[str, TensorLike]
    architecture: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    skeleton: bytes | None = None  # the pickled rest of an estimator


def snapshot(model: Any) -> Snapshot:
    """Split `model` into tensors and metadata; `InvalidInputError` for what cannot be versioned."""
    from mlkeep.tracking.describe_model import hyperparameters, is_torch_module

    if isinstance(model, (str, os.PathLike)):
        return _from_safetensors(Path(model))
    if is_torch_module(model):
        from mlkeep.tensors.pytorch import state_dict_to_arrays

        cls = type(model)
        return Snapshot("torch", state_dict_to_arrays(model.state_dict()), f"{cls.__module__}.{cls.__qualname__}\n{model!r}")
    if isinstance(model, Mapping):
        return _from_mapping(model)
    skeleton, tensors = _lift_arrays(model)
    cls = type(model)
    return Snapshot(
        "sklearn", tensors, f"{cls.__module__}.{cls.__qualname__}\n{model!r}",
        {h.name: h.value for h in hyperparameters(model)}, skeleton,
    )


def restore(kind: str, tensors: dict[str, TensorLike], skeleton: bytes | None) -> Any:
    """The model a snapshot was made from: a state_dict, a mapping of arrays, or the estimator."""
    if kind == "torch":
        from mlkeep.tensors.pytorch import arrays_to_state_dict

        return arrays_to_state_dict(tensors)
    if kind == "sklearn":
        if skeleton is None:
            raise InvalidInputError("This commit has no estimator skeleton to restore.")
        return _Unlifter(io.BytesIO(skeleton), tensors).load()
    return dict(tensors)


def write_file(kind: str, model: Any, path: Path) -> Path:
    """Save a checked-out model: safetensors for tensors, pickle for estimators (by suffix)."""
    tmp = path.with_name(f".{path.name}.tmp")
    if kind == "sklearn":
        if path.suffix != ".pkl":
            raise InvalidInputError(f"A {kind} commit checks out as an estimator: give a .pkl path, not {path.name}.")
        tmp.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    elif path.suffix != ".safetensors":
        raise InvalidInputError(f"Weights check out as safetensors: give a .safetensors path, not {path.name}.")
    elif kind == "torch":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.items()}, str(tmp))
    else:
        from safetensors.numpy import save_file as save_numpy

        save_numpy(dict(model), str(tmp))
    os.replace(tmp, path)
    return path


def _from_mapping(model: Mapping[str, Any]) -> Snapshot:
    values = list(model.values())
    if values and all(isinstance(v, np.ndarray) for v in values):
        return Snapshot("tensors", {str(k): v for k, v in model.items()})
    from mlkeep.tensors.pytorch import state_dict_to_arrays

    return Snapshot("torch", state_dict_to_arrays(model))


def _from_safetensors(path: Path) -> Snapshot:
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file; give a model object, a state_dict or a .safetensors file.")
    try:
        import torch  # noqa: F401
        from safetensors.torch import load_file

        from mlkeep.tensors.pytorch import state_dict_to_arrays

        return Snapshot("torch", state_dict_to_arrays(load_file(str(path))))
    except ImportError:
        from safetensors.numpy import load_file as load_numpy

        return Snapshot("tensors", dict(load_numpy(str(path))))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InvalidInputError(f"{path} is not a readable safetensors file: {exc}") from exc


def _liftable(obj: Any) -> bool:
    return (
        type(obj) is np.ndarray
        and obj.dtype.name in _SUPPORTED
        and obj.nbytes >= MIN_ARRAY_BYTES
        and obj.dtype.byteorder in "=<|"
    )


class _Lifter(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.tensors: dict[str, np.ndarray] = {}
        self._seen: dict[int, str] = {}

    def persistent_id(self, obj: Any) -> str | None:
        if not _liftable(obj):
            return None
        name = self._seen.get(id(obj))
        if name is None:
            name = f"array/{len(self.tensors):05d}"
            self._seen[id(obj)] = name
            self.tensors[name] = obj
        return name


class _Unlifter(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, tensors: Mapping[str, TensorLike]) -> None:
        super().__init__(file)
        self.tensors = tensors

    def persistent_load(self, pid: Any) -> Any:
        # decoded tensors are read-only views; estimators may write to their arrays
        return np.array(self.tensors[pid], copy=True)


def _lift_arrays(model: Any) -> tuple[bytes, dict[str, TensorLike]]:
    buf = io.BytesIO()
    lifter = _Lifter(buf)
    try:
        lifter.dump(model)
    except Exception as exc:
        raise InvalidInputError(
            f"Cannot version a {type(model).__name__}: it is neither a torch module, a state_dict, "
            f"a safetensors file, nor picklable ({exc})."
        ) from exc
    return buf.getvalue(), dict(lifter.tensors)
