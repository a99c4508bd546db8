"""Where a training job keeps its decoded images: ``train.cache`` resolved for one job.

Decoding and resizing every image once per epoch costs more than a small model's step; keeping
the decoded images (uint8, after resizing) costs images x height x width x channels bytes. That
fits a laptop's demo easily, but 100,000 images at 224x224 are 15 GB in every job. So a job
picks, from that estimate, its own memory (the rule's ``mem_mb``) and the machine's:

- ``memory``: tf.data's in-memory cache;
- ``disk``: tf.data's file cache in a directory of this job's own under ``train.cache_dir``
  (``$TMPDIR`` by default: node-local scratch on clusters), removed when the job ends, so a
  cache left half-written by a killed job is never read by another;
- ``none``: decode every epoch (data larger than memory and disk).

The cache never changes the numbers (the same images in the same order), only the speed.
Nothing here imports TensorFlow: the rules size their memory request with it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgclf.core.errors import ImgclfError

#: What a training job needs besides its cache (TensorFlow, the model, batches in flight), in MB:
#: what every training rule asked for before the cache was sized (16 GB) stays the floor.
BASE_TRAINING_MB = 16000
#: What TensorFlow and a model take of the job's memory before any image is cached, in MB.
MODEL_OVERHEAD_MB = 4000
#: A memory cache above this goes to disk under ``auto`` rather than asking the cluster for more.
MAX_MEMORY_CACHE_MB = 32000
#: Room a disk cache needs, as a multiple of the estimate (tf.data's file cache adds framing).
DISK_MARGIN = 1.2
#: The train keys that never change a model (where decoded images are kept): left out of what
#: defines a training (its resume fingerprint, a final model's sealed decisions).
NEUTRAL_TRAIN_KEYS = ("cache", "cache_dir")
#: The prefix of every job's own cache directory.
CACHE_DIR_PREFIX = "imgclf-cache-"


@dataclass(frozen=True)
class CachePlan:
    """How one job caches its decoded images.

    Attributes:
        setting: ``train.cache`` as configured.
        mode: ``memory``, ``disk`` or ``none``.
        estimate_mb: The decoded images' size (training and validation), in MB.
        directory: Where a disk cache goes (the parent of this job's own directory), else None.
        reason: Why this mode, in words (logged and recorded).
    """

    setting: str
    mode: str
    estimate_mb: float
    directory: str | None
    reason: str

    def record(self) -> dict[str, Any]:
        """The plan for a run's metrics (JSON-ready)."""
        return asdict(self)


def without_neutral_keys(train_config: dict[str, Any]) -> dict[str, Any]:
    """``train_config`` without the keys that never change a model (:data:`NEUTRAL_TRAIN_KEYS`)."""
    return {key: value for key, value in train_config.items() if key not in NEUTRAL_TRAIN_KEYS}


def cache_estimate_mb(n_images: int, image_size: tuple[int, int] | list[int], channels: int) -> float:
    """The size of ``n_images`` decoded images (uint8) at ``image_size`` with ``channels``, in MB."""
    height, width = image_size
    return n_images * height * width * channels / 1024**2


def manifest_rows(path: str | Path | None) -> int:
    """The images a manifest lists (its lines after the header); 0 while it does not exist yet."""
    if path is None or not Path(path).is_file():
        return 0
    with open(path, "rb") as handle:
        return max(0, sum(1 for line in handle if line.strip()) - 1)


def training_memory_mb(setting: str, estimate_mb: float) -> int:
    """The memory a training rule asks the cluster for: the floor, plus room for a memory cache
    (twice the estimate, so that ``auto`` finds it comfortable) when one will be used."""
    if setting == "memory" or (setting == "auto" and estimate_mb <= MAX_MEMORY_CACHE_MB):
        return int(max(BASE_TRAINING_MB, MODEL_OVERHEAD_MB + 2 * estimate_mb + 1))
    return BASE_TRAINING_MB


def cache_root(cache_dir: str) -> Path:
    """The disk cache's directory: ``train.cache_dir``, else ``$TMPDIR``, else the system's."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir())


def writable_problem(directory: Path) -> str | None:
    """Why a cache cannot be written in ``directory`` (None when it can)."""
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def plan_cache(setting: str, estimate_mb: float, job_memory_mb: float | None, machine_memory_mb: float | None,
               directory: Path, free_mb: float | None, directory_problem: str | None) -> CachePlan:
    """Resolve ``train.cache`` (pure: every measurement is an argument).

    Args:
        setting: ``auto``, ``memory``, ``disk`` or ``none``.
        estimate_mb: :func:`cache_estimate_mb` of the job's training and validation images.
        job_memory_mb: The memory the job was given (the rule's ``mem_mb``), or None if unknown.
        machine_memory_mb: The machine's physical memory, or None if unknown.
        directory: Where a disk cache would go (:func:`cache_root`).
        free_mb: Free space there, or None if it cannot be read.
        directory_problem: :func:`writable_problem` of ``directory``.

    Raises:
        ImgclfError: ``disk`` asked for where the directory is unusable or too small.
    """
    def plan(mode: str, reason: str) -> CachePlan:
        return CachePlan(setting, mode, round(estimate_mb, 1), str(directory) if mode == "disk" else None, reason)

    size = f"{estimate_mb:,.0f} MB of decoded images"
    room = DISK_MARGIN * estimate_mb
    if setting == "none":
        return plan("none", "train.cache is none")
    if setting == "memory":
        return plan("memory", f"train.cache is memory ({size})")
    if setting == "disk":
        if directory_problem:
            raise ImgclfError(f"train.cache is disk, but the cache directory {directory} {directory_problem}",
                              "set train.cache_dir to a writable directory (node-local scratch), "
                              "or train.cache: none")
        if free_mb is not None and free_mb < room:
            raise ImgclfError(f"train.cache is disk, but {directory} has {free_mb:,.0f} MB free for {size} "
                              f"(needs {room:,.0f} MB)",
                              "set train.cache_dir to a larger disk, or train.cache: none (or memory)")
        return plan("disk", f"train.cache is disk ({size} in {directory})")
    budgets = []
    if job_memory_mb is not None:
        budgets.append(("half of the job's memory left after the model",
                        (job_memory_mb - MODEL_OVERHEAD_MB) / 2))
    if machine_memory_mb is not None:
        budgets.append(("half of the machine's memory", machine_memory_mb / 2))
    budgets.append(("the limit of a memory cache", MAX_MEMORY_CACHE_MB))
    name, budget = min(budgets, key=lambda item: item[1])
    if estimate_mb <= budget:
        return plan("memory", f"auto: {size} fit in memory ({name}: {budget:,.0f} MB)")
    if directory_problem is None and (free_mb is None or free_mb >= room):
        return plan("disk", f"auto: {size} exceed {name} ({budget:,.0f} MB); a file cache in {directory}")
    why = (f"{directory} {directory_problem}" if directory_problem
           else f"{directory} has {free_mb:,.0f} MB free (needs {room:,.0f} MB)")
    return plan("none", f"auto: {size} exceed {name} ({budget:,.0f} MB) and {why}: "
                        "images are decoded every epoch")


def machine_memory_mb() -> float | None:
    """Physical memory of this machine, in MB (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**2
    except (ValueError, OSError, AttributeError):
        return None


def resolve_cache(train_config: dict[str, Any], n_images: int, image_size: tuple[int, int], channels: int,
                  job_memory_mb: float | None, log: Any = None) -> CachePlan:
    """:func:`plan_cache` for this job, measured here (free space, memory), and logged."""
    directory = cache_root(train_config["cache_dir"])
    problem = writable_problem(directory)
    free = None
    if problem is None:
        try:
            free = shutil.disk_usage(directory).free / 1024**2
        except OSError:
            free = None
    chosen = plan_cache(train_config["cache"], cache_estimate_mb(n_images, image_size, channels), job_memory_mb,
                        machine_memory_mb(), directory, free, problem)
    if log is not None:
        log.info("input cache: %s (%s)", chosen.mode, chosen.reason)
    return chosen


@contextmanager
def job_cache(plan: CachePlan) -> Iterator[str | bool]:
    """What :func:`imgclf.training.inputs.make_dataset` takes as ``cache`` for this plan.

    For a disk cache, a directory of this job's own is made under the plan's directory and
    removed when the body ends, however it ends: a half-written cache is never reused.
    """
    if plan.mode != "disk":
        yield plan.mode == "memory"
        return
    try:
        own = tempfile.mkdtemp(prefix=CACHE_DIR_PREFIX, dir=plan.directory)
    except OSError as error:
        raise ImgclfError(f"train.cache: cannot make a cache directory in {plan.directory}: {error.strerror}",
                          "set train.cache_dir to a writable directory, or train.cache: none") from error
    try:
        yield str(Path(own) / "images")
    finally:
        shutil.rmtree(own, ignore_errors=True)
