"""PyTorch state_dicts in and out of the tensor store; torch is imported only when called.

CPU tensors become numpy views without a copy; bfloat16 and float8 tensors
travel as `RawTensor` bit patterns, since numpy has no such dtypes. On the
way back `torch.from_numpy` shares the decoded buffers, so a checkout
allocates each tensor once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mlkeep.errors import InvalidInputError
from mlkeep.tensors.dtypes import RawTensor, TensorLike

if TYPE_CHECKING:
    from mlkeep.tensors.planner import StoragePolicy
    from mlkeep.tensors.store import TensorStore, TreeId

# torch dtype name -> (RawTensor dtype name, same-width integer torch dtype name)
_RAW = {
    "bfloat16": ("bfloat16", "int16"),
    "float8_e4m3fn": ("float8_e4m3fn", "uint8"),
    "float8_e4m3fnuz": ("float8_e4m3fnuz", "uint8"),
    "float8_e5m2": ("float8_e5m2", "uint8"),
    "float8_e5m2fnuz": ("float8_e5m2fnuz", "uint8"),
}
_UNSIGNED = {"int16": np.uint16, "uint8": np.uint8}


def state_dict_to_arrays(state_dict: Mapping[str, Any]) -> dict[str, TensorLike]:
    """numpy views (or RawTensor bit patterns) of a state_dict's tensors.

    Raises `InvalidInputError` for an entry that is not a tensor.
    """
    import torch

    out: dict[str, TensorLike] = {}
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise InvalidInputError(f"state_dict entry {name!r} is a {type(t).__name__}, not a tensor.")
        t = t.detach().cpu().contiguous()
        kind = str(t.dtype).removeprefix("torch.")
        if kind in _RAW:
            raw_name, int_name = _RAW[kind]
            bits = t.view(getattr(torch, int_name)).numpy().view(_UNSIGNED[int_name])
            out[name] = RawTensor(raw_name, bits)
        else:
            out[name] = t.numpy()
    return out


def arrays_to_state_dict(arrays: Mapping[str, TensorLike]) -> dict[str, Any]:
    """torch tensors sharing memory with decoded arrays (bfloat16/float8 restored from bits)."""
    import torch

    out: dict[str, Any] = {}
    for name, a in arrays.items():
        if isinstance(a, RawTensor):
            int_name = _RAW[a.dtype][1]
            ints = a.bits.view(np.int16 if int_name == "int16" else np.uint8)
            out[name] = torch.from_numpy(ints).view(getattr(torch, a.dtype))
        else:
            out[name] = torch.from_numpy(a)
    return out


def put_state_dict(
    store: TensorStore,
    state_dict: Mapping[str, Any],
    parent_tree: TreeId | None = None,
    policy: StoragePolicy | None = None,
) -> TreeId:
    """Store a PyTorch state_dict as a tree; see `TensorStore.put_tree`."""
    return store.put_tree(state_dict_to_arrays(state_dict), parent_tree, policy)


def get_state_dict(store: TensorStore, tree_id: TreeId) -> dict[str, Any]:
    """A tree as a PyTorch state_dict, verified bit for bit; see `TensorStore.get_tree`."""
    return arrays_to_state_dict(store.get_tree(tree_id))
