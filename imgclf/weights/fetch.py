"""Rule fetch_weights: every pretrained weights file a run needs, in the cache, checked and recorded."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from imgclf.core.errors import ImgclfError
from imgclf.weights.needs import pretrained_architectures
from imgclf.core.io import sha256_file
from imgclf.training.weight_files import KerasWeightFile, file_hash_matches, keras_weight_file, weights_cache_dir

DOWNLOAD_TIMEOUT_S = 60


def download_url(weight_file: KerasWeightFile, mirror: str | None) -> str:
    """Where the file is fetched from: the mirror's base URL and the file's name, or Keras's URL."""
    return f"{mirror.rstrip('/')}/{weight_file.fname}" if mirror else weight_file.origin


def fetch_keras_weights(weight_file: KerasWeightFile, cache_dir: Path, mirror: str | None = None,
                        opener: Callable[..., Any] = urllib.request.urlopen,
                        log: Any = None) -> dict[str, Any]:
    """Make sure the file is in the cache with Keras's hash, downloading it when absent.

    The download goes to a temporary file in the cache, is checked, then renamed:
    a file in the cache is always whole and right.

    Returns:
        The record: file, URL, path, sha256, and whether it was downloaded now.

    Raises:
        ImgclfError: The download failed (naming the file, the URL and where to put
            it by hand) or gave a file of another hash.
    """
    target = cache_dir / weight_file.fname
    url = download_url(weight_file, mirror)
    downloaded = False
    if not (target.is_file() and file_hash_matches(target, weight_file.file_hash)):
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=f".{weight_file.fname}.", suffix=".part")
        try:
            if log:
                log.info("downloading %s from %s", weight_file.fname, url)
            try:
                with os.fdopen(handle, "wb") as out, opener(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ImgclfError(
                    f"could not download the ImageNet weights of {weight_file.architecture}, "
                    f"{weight_file.fname}, from {url}: {exc}",
                    f"on a machine with internet access, download {url} and put it at {target} "
                    "(then rerun); or set model.weights_mirror to a server that holds it") from None
            if not file_hash_matches(Path(temporary), weight_file.file_hash):
                raise ImgclfError(f"{url} gave a file whose hash is not Keras's {weight_file.file_hash}",
                                  "check the mirror (model.weights_mirror) holds the original file")
            os.replace(temporary, target)
            downloaded = True
        finally:
            Path(temporary).unlink(missing_ok=True)
    return {**asdict(weight_file), "url": url, "path": str(target), "sha256": sha256_file(target),
            "downloaded": downloaded}


def fetch_weights(model: dict[str, Any], explore: dict[str, Any], tune: dict[str, Any],
                  image_size: list[int], log: Any = None,
                  opener: Callable[..., Any] = urllib.request.urlopen) -> dict[str, Any]:
    """What rule fetch_weights does: every pretrained weights file the run needs, in the cache, recorded.

    Args:
        model, explore, tune: The config sections that say which backbones train on ImageNet weights.
        image_size: ``data.image_size`` (a keras.applications builder checks it).
        log: The job's logger.
        opener: Opens a URL (``urllib.request.urlopen``).

    Returns:
        ``{"record": ...}``: the cache, the mirror and, per backbone, the file, its URL, its
        path and sha256 (``results/weights/weights.json``).
    """
    from imgclf.core import runtime

    runtime.configure(0, 1)  # before Keras is imported: one thread, quiet
    from imgclf.training import efficientnet_lite

    cache_dir = weights_cache_dir(model["weights_cache"])
    mirror = model["weights_mirror"]
    files = []
    for architecture in pretrained_architectures({"model": model, "explore": explore, "tune": tune}):
        if architecture == "efficientnet_lite0":
            source = efficientnet_lite.packaged_weights_file()
            converted = efficientnet_lite.converted_weights_file(source, cache_dir)  # checks its sha256
            files.append({"architecture": architecture, "fname": converted.name, "path": str(converted),
                          "sha256": sha256_file(converted), "url": None,
                          "source": f"package {efficientnet_lite.WEIGHTS_PACKAGE}, {source.name}",
                          "source_sha256": efficientnet_lite.WEIGHTS_SHA256, "downloaded": False})
        else:
            input_shape = (*image_size, 3)
            files.append(fetch_keras_weights(keras_weight_file(architecture, input_shape), cache_dir, mirror,
                                             opener, log))
        if log:
            log.info("%s: %s (sha256 %s)", architecture, files[-1]["path"], files[-1]["sha256"])
    if log and not files:
        log.info("no backbone trains on ImageNet weights: nothing to fetch")
    return {"record": {"cache": str(cache_dir), "mirror": mirror, "files": files}}
