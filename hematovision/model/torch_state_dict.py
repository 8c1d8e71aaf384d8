"""Read a legacy-format PyTorch state dict into numpy arrays, without importing torch.

PyTorch's legacy serialisation (before the zip format of torch 1.6) is a sequence of
pickles followed by the raw tensor storages. Unpickling arbitrary data executes code, so
this reader admits only the handful of globals a state dict needs and maps each to a
numpy stand-in; anything else raises :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from pathlib import Path

import numpy as np

from hematovision.io.files import sha256_of_file

__all__ = ["UnsafeCheckpointError", "load_legacy_state_dict",
           "conv_kernel", "depthwise_kernel", "batchnorm_weights"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The checkpoint asks for something a plain state dict never contains."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes arrive after the main pickle; filled in later."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        base = self.storage.data
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"checkpoint refers to {module}.{name}, which a state dict never needs"
        )

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view = saved_id
        if kind != "storage" or not isinstance(storage_type, _StorageType) or view is not None:
            raise UnsafeCheckpointError(f"unsupported storage record {saved_id!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return self._storages[key]


class _PlainUnpickler(pickle.Unpickler):
    """For the small header pickles, which hold only numbers, strings and dicts."""

    def find_class(self, module: str, name: str):
        raise UnsafeCheckpointError(f"checkpoint header refers to {module}.{name}")


def load_legacy_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict:
    """Load a legacy PyTorch ``.pth`` state dict as ``{name: np.ndarray}``.

    Args:
        path: the checkpoint file.
        expected_sha256: when given, the file's SHA-256 must equal it.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the checksum differs or the file is not a legacy state dict.
        UnsafeCheckpointError: the pickle refers to anything beyond tensors and dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if expected_sha256 is not None:
        actual = sha256_of_file(path)
        if actual != expected_sha256:
            raise ValueError(
                f"checkpoint {path} has sha256 {actual}, expected {expected_sha256}"
            )
    with open(path, "rb") as raw:
        handle = io.BufferedReader(raw)
        if _PlainUnpickler(handle).load() != _MAGIC_NUMBER:
            raise ValueError(f"{path} is not a legacy PyTorch checkpoint (bad magic number)")
        if _PlainUnpickler(handle).load() != _PROTOCOL_VERSION:
            raise ValueError(f"{path} uses an unsupported PyTorch protocol version")
        _PlainUnpickler(handle).load()  # system info: endianness and type sizes
        storages: dict = {}
        result = _RestrictedUnpickler(handle, storages).load()
        storage_keys = _PlainUnpickler(handle).load()
        for key in storage_keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", handle.read(8))
            if numel != storage.numel:
                raise ValueError(
                    f"{path}: storage {key} holds {numel} items, expected {storage.numel}")
            nbytes = numel * storage.dtype.itemsize
            buffer = handle.read(nbytes)
            if len(buffer) != nbytes:
                raise ValueError(f"{path} is truncated in storage {key}")
            storage.data = np.frombuffer(buffer, dtype=storage.dtype.newbyteorder("<"))
    if not isinstance(result, dict):
        raise ValueError(f"{path} holds a {type(result).__name__}, not a state dict")
    return {
        name: value.to_numpy() if isinstance(value, _TensorRef) else value
        for name, value in result.items()
    }


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """A PyTorch convolution's weight as a Keras kernel."""
    return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    """A PyTorch depthwise convolution's weight as a Keras depthwise kernel."""
    return weight.transpose(2, 3, 0, 1)  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def batchnorm_weights(state: dict, prefix: str) -> list[np.ndarray]:
    """A PyTorch BatchNorm's tensors in Keras' order (gamma, beta, mean, variance)."""
    return [state[prefix + part] for part in ("weight", "bias", "running_mean", "running_var")]
