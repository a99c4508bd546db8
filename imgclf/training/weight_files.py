"""Pretrained weight files on disk: the cache, the files Keras would download, offline loading.

Training jobs never download: :func:`offline_keras_weights` makes every
keras.applications builder read its file from the weights cache (filled by the
weights stage, :mod:`imgclf.weights`) or fail with what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

from imgclf.core.errors import ImgclfError
from imgclf.core.io import sha256_file


@dataclass(frozen=True)
class KerasWeightFile:
    """A weights file a keras.applications builder loads: its name, URL and Keras's pinned hash."""

    architecture: str
    fname: str
    origin: str
    file_hash: str | None
    cache_subdir: str


class _Captured(Exception):
    def __init__(self, arguments: dict[str, Any]):
        super().__init__("captured")
        self.arguments = arguments


def _get_file_arguments(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
                        cache_subdir="datasets", **_ignored) -> dict[str, Any]:
    return {"fname": fname, "origin": origin, "file_hash": file_hash or md5_hash, "cache_subdir": cache_subdir}


def keras_weight_file(architecture: str, input_shape: tuple[int, int, int]) -> KerasWeightFile:
    """The file Keras would download for ``architecture``'s ImageNet weights (no network used).

    Raises:
        ImgclfError: ``architecture`` is not a keras.applications backbone.
    """
    from keras.src.utils import file_utils

    from imgclf.training.models import BACKBONES

    spec = BACKBONES[architecture]

    def capture(*args, **kwargs):
        names = ["fname", "origin", "untar", "md5_hash", "file_hash", "cache_subdir"]
        raise _Captured(_get_file_arguments(**dict(zip(names, args)), **kwargs))

    with mock.patch.object(file_utils, "get_file", capture), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "weights for 224x224 will be loaded": the file is the same
        try:
            spec.builder(input_shape=(*input_shape[:2], 3), include_top=False, weights="imagenet", **spec.kwargs)
        except _Captured as captured:
            return KerasWeightFile(architecture, **captured.arguments)
    raise ImgclfError(f"model.architecture {architecture} downloads no weights file",
                      "a bug: report it with the config")


def file_hash_matches(path: Path, expected: str | None) -> bool:
    """Whether ``path`` has Keras's pinned hash (sha256 when 64 hex digits, else md5)."""
    if not expected:
        return True
    if len(expected) == 64:
        return sha256_file(path) == expected
    digest = hashlib.md5()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == expected


def weights_cache_dir(setting: str | None) -> Path:
    """``model.weights_cache``, or Keras's own cache ``$KERAS_HOME/models`` (``~/.keras/models``)."""
    if setting:
        return Path(setting).expanduser()
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


@contextlib.contextmanager
def offline_keras_weights(cache_dir: Path) -> Iterator[None]:
    """Within the block, Keras reads pretrained weights from ``cache_dir`` and never downloads.

    Raises:
        ImgclfError: (when a builder asks for a file) the file is absent or has
            another hash, naming it, its URL and where to put it.
    """
    from keras.src.utils import file_utils

    def local_file(*args, **kwargs):
        names = ["fname", "origin", "untar", "md5_hash", "file_hash", "cache_subdir"]
        wanted = _get_file_arguments(**dict(zip(names, args)), **kwargs)
        target = cache_dir / wanted["fname"]
        if not target.is_file():
            raise ImgclfError(
                f"the ImageNet weights file {wanted['fname']} is not in the weights cache {cache_dir}",
                f"run the fetch_weights job first (snakemake weights) where the network is, or download "
                f"{wanted['origin']} and put it at {target}")
        if not file_hash_matches(target, wanted["file_hash"]):
            raise ImgclfError(f"{target} does not have the hash Keras pins ({wanted['file_hash']})",
                              f"delete it and rerun the fetch_weights job (or download {wanted['origin']} again)")
        return str(target)

    with mock.patch.object(file_utils, "get_file", local_file):
        yield
