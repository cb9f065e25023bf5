"""Which element types the tensor store accepts, and how their bits are viewed.

The store never interprets values: it moves bit patterns. Each supported dtype
has a *plane width* (the unsigned integer the codecs see: 1, 2, 4 or 8 bytes)
and an element size (complex numbers are two planes-width components).

numpy has no bfloat16 or float8; such tensors travel as `RawTensor`: the dtype
name plus the bit patterns as an unsigned array of the same shape. The PyTorch
adapter builds them (`tensors.pytorch`), so nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from mlkeep.errors import InvalidInputError

# dtype name -> (plane width in bytes, element size in bytes)
_NUMPY: dict[str, tuple[int, int]] = {
    "bool": (1, 1),
    "uint8": (1, 1),
    "int8": (1, 1),
    "int16": (2, 2),
    "uint16": (2, 2),
    "float16": (2, 2),
    "int32": (4, 4),
    "uint32": (4, 4),
    "float32": (4, 4),
    "int64": (8, 8),
    "uint64": (8, 8),
    "float64": (8, 8),
    "complex64": (4, 8),
    "complex128": (8, 16),
}
# Types numpy lacks: carried as unsigned bit patterns of this width.
_RAW: dict[str, int] = {
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2": 1,
    "float8_e5m2fnuz": 1,
}
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass(frozen=True)
class RawTensor:
    """A tensor whose dtype numpy cannot express (bfloat16, float8): name plus bit patterns.

    `bits` has the tensor's shape and the unsigned dtype of the same width
    (uint16 for bfloat16).
    """

    dtype: str
    bits: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.bits.shape)


TensorLike = Union[np.ndarray, RawTensor]  # numpy scalars are accepted as 0-d arrays


def supported_dtypes() -> list[str]:
    """Every dtype name the store accepts."""
    return sorted([*_NUMPY, *_RAW])


def plane_width(dtype: str) -> int:
    """Bytes per byte-plane group: the unsigned integer width the codecs work on."""
    if dtype in _NUMPY:
        return _NUMPY[dtype][0]
    if dtype in _RAW:
        return _RAW[dtype]
    raise InvalidInputError(f"dtype {dtype!r} is not supported; use one of {', '.join(supported_dtypes())}.")


def item_size(dtype: str) -> int:
    """Bytes per element (chunks are cut on element boundaries)."""
    if dtype in _NUMPY:
        return _NUMPY[dtype][1]
    return plane_width(dtype)


def as_bytes(tensor: TensorLike) -> tuple[str, tuple[int, ...], np.ndarray]:
    """(dtype name, shape, flat little-endian uint8 view) of a tensor; copies only if it must.

    Raises `InvalidInputError` for an unsupported dtype or a non-array value.
    """
    if isinstance(tensor, RawTensor):
        width = plane_width(tensor.dtype)
        if tensor.dtype not in _RAW or tensor.bits.dtype.itemsize != width or tensor.bits.dtype.kind not in "ui":
            raise InvalidInputError(
                f"RawTensor {tensor.dtype!r} needs bits as a {width}-byte integer array, got {tensor.bits.dtype}."
            )
        name, array = tensor.dtype, tensor.bits
    elif isinstance(tensor, (np.ndarray, np.generic)):  # a numpy scalar is a 0-d tensor
        array = np.asarray(tensor)
        name = array.dtype.name
        if name not in _NUMPY:
            raise InvalidInputError(f"dtype {name!r} is not supported; use one of {', '.join(supported_dtypes())}.")
    else:
        raise InvalidInputError(f"Expected a numpy array or RawTensor, got {type(tensor).__name__}.")
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and np.little_endian is False):
        array = array.astype(array.dtype.newbyteorder("<"))  # stored bits are always little-endian
    shape = tuple(int(n) for n in array.shape)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # not np.ascontiguousarray: it turns a 0-d array into 1-d
    return name, shape, array.reshape(-1).view(np.uint8)


def from_bytes(dtype: str, shape: tuple[int, ...], data: np.ndarray) -> TensorLike:
    """The tensor a flat uint8 buffer holds: an ndarray, or a `RawTensor` for dtypes numpy lacks."""
    if dtype in _RAW:
        return RawTensor(dtype, data.view(_UINT[_RAW[dtype]]).reshape(shape))
    return data.view(np.dtype(dtype).newbyteorder("<")).reshape(shape)


def uint_dtype(width: int) -> type[np.unsignedinteger]:
    """The unsigned numpy type of `width` bytes."""
    return _UINT[width]  # type: ignore[return-value]
