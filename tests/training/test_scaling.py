"""Training sized to the job (issue 18): the input cache chosen from the job's memory, the input
pipeline on the job's CPUs, several devices in one job; none of them changes the numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgclf.core.errors import ImgclfError
from imgclf.training.cache import (CACHE_DIR_PREFIX, BASE_TRAINING_MB, cache_estimate_mb, job_cache,
                                   manifest_rows, plan_cache, training_memory_mb, without_neutral_keys)

TRAIN_ONCE = Path(__file__).with_name("train_once.py")


def plan(setting, estimate=1000.0, job=16000.0, machine=64000.0, free=100000.0, problem=None, tmp=Path("/scratch")):
    return plan_cache(setting, estimate, job, machine, tmp, free, problem)


def test_the_estimate_is_images_times_pixels_times_channels():
    # 100,000 images at 224x224 in RGB: the 15 GB of the issue.
    assert cache_estimate_mb(100_000, (224, 224), 3) == pytest.approx(14355.5, rel=1e-4)
    assert cache_estimate_mb(10, [8, 4], 1) == pytest.approx(320 / 1024**2)


def test_auto_keeps_images_in_memory_when_they_fit_else_on_disk_else_decodes_every_epoch():
    assert plan("auto", 1000).mode == "memory"
    # Above half of what the job has left after the model: a file cache in the directory.
    to_disk = plan("auto", 7000, job=16000)
    assert to_disk.mode == "disk" and to_disk.directory == "/scratch" and "half of the job's memory" in to_disk.reason
    # The machine's memory bounds it too (a laptop with 8 GB, mem_mb not enforced).
    assert plan("auto", 5000, job=64000, machine=8000).mode == "disk"
    # No room or no writable directory: decode every epoch, and say why.
    full = plan("auto", 7000, job=16000, free=5000)
    assert full.mode == "none" and "5,000 MB free" in full.reason
    locked = plan("auto", 7000, job=16000, problem="is not writable")
    assert locked.mode == "none" and "/scratch is not writable" in locked.reason
    # The settings that name a mode are obeyed.
    assert plan("memory", 50000).mode == "memory" and plan("none", 1).mode == "none"
    assert plan("disk", 1).mode == "disk"


def test_a_disk_cache_without_a_writable_directory_or_room_stops_naming_the_setting():
    with pytest.raises(ImgclfError, match=r"train.cache is disk, but the cache directory /scratch is not writable"):
        plan("disk", problem="is not writable")
    with pytest.raises(ImgclfError, match=r"train.cache is disk, but /scratch has 1,000 MB free .*needs 1,200 MB"):
        plan("disk", 1000, free=1000)


def test_the_rules_memory_request_follows_the_estimate():
    assert training_memory_mb("auto", 100) == BASE_TRAINING_MB  # the demo: the floor
    assert training_memory_mb("auto", 15000) == 4000 + 30000 + 1  # room for a memory cache, twice over
    assert training_memory_mb("auto", 40000) == BASE_TRAINING_MB  # too big for memory: a disk cache
    assert training_memory_mb("disk", 15000) == BASE_TRAINING_MB
    assert training_memory_mb("memory", 40000) == 4000 + 80000 + 1


def test_manifest_rows_count_images_and_zero_before_the_manifest_exists(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\na.png,x\nb.png,y\n")
    assert manifest_rows(tmp_path / "m.csv") == 2 and manifest_rows(tmp_path / "absent.csv") == 0


def test_the_cache_is_no_decision_of_a_model():
    train = {"epochs": 3, "cache": "disk", "cache_dir": "/scratch"}
    assert without_neutral_keys(train) == {"epochs": 3}


def test_a_jobs_disk_cache_is_its_own_and_is_removed_however_the_job_ends(tmp_path):
    disk = plan_cache("disk", 1.0, None, None, tmp_path, None, None)
    with pytest.raises(RuntimeError):
        with job_cache(disk) as prefix:
            assert Path(prefix).parent.name.startswith(CACHE_DIR_PREFIX)
            Path(prefix + "-0.data").write_bytes(b"half written")
            raise RuntimeError("killed mid-epoch")
    assert list(tmp_path.iterdir()) == []
    with job_cache(plan_cache("memory", 1.0, None, None, tmp_path, None, None)) as memory:
        assert memory is True


def test_the_batches_are_the_same_in_memory_on_disk_uncached_and_on_more_threads(fold, tmp_path, monkeypatch):
    from imgclf.core import runtime

    runtime.configure(0, 1)
    from imgclf.core.io import read_index
    from imgclf.training.inputs import make_dataset, read_manifest

    classes = sorted(read_index(fold.index)["label"].unique())
    manifest = read_manifest(fold.train_manifest, fold.data_root, classes)

    def epochs(cache, threads=1):
        monkeypatch.setattr(runtime, "_input_threads", threads)
        data = make_dataset(manifest, (24, 24), 3, 8, True, 5, cache=cache, balanced=True)
        return [np.concatenate([x.numpy().ravel() for x, _ in data]) for _ in range(2)]

    reference = epochs(True)
    assert not np.array_equal(reference[0], reference[1])  # reshuffled each epoch
    for variant in (epochs(False), epochs(str(tmp_path / "cache")), epochs(True, threads=3)):
        for a, b in zip(reference, variant):
            np.testing.assert_array_equal(a, b)
    assert any(tmp_path.iterdir())  # the file cache was written


def train_once(fold, out: Path, config: dict, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(TRAIN_ONCE), json.dumps(config),
         *map(str, (fold.index, fold.train_manifest, fold.val_manifest, fold.data_root)), str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_more_cpus_and_a_disk_cache_train_the_same_weights(fold, tmp_path):
    from imgclf.core.config import validate_config

    base = {"seed": 4, "data": {"image_size": [32, 32]},
            "train": {"batch_size": 16, "epochs": 2, "tensorboard_histogram_freq": 0,
                      "augmentation": {"flip": "horizontal", "rotation": 0.1}, "sampling": "balanced"}}
    one = train_once(fold, tmp_path / "one", validate_config(base))
    disk = validate_config({**base, "train": {**base["train"], "cache": "disk", "cache_dir": str(tmp_path)}})
    three = train_once(fold, tmp_path / "three", disk, TRAIN_ONCE_CPUS="3")  # 2 input threads
    assert one["cache"]["mode"] == "memory" and three["cache"]["mode"] == "disk"
    assert one["runtime"]["input_threads"] == 1 and three["runtime"]["input_threads"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(CACHE_DIR_PREFIX)]  # removed at the end
    assert (tmp_path / "one/history.csv").read_text() == (tmp_path / "three/history.csv").read_text()
    import h5py

    with h5py.File(tmp_path / "one/best.weights.h5") as a, h5py.File(tmp_path / "three/best.weights.h5") as b:
        names = []
        a.visit(lambda name: names.append(name) if isinstance(a[name], h5py.Dataset) else None)
        assert names
        for name in names:
            np.testing.assert_array_equal(a[name][()], b[name][()])


@pytest.mark.slow
def test_data_parallel_training_over_two_logical_devices_completes_and_records_its_metrics(fold, tmp_path):
    from imgclf.core.config import validate_config

    config = validate_config({"seed": 4, "data": {"image_size": [32, 32]},
                              "train": {"batch_size": 16, "epochs": 2, "tensorboard_histogram_freq": 0,
                                        "gpus_per_job": 2}})
    metrics = train_once(fold, tmp_path / "mirrored", config, TRAIN_ONCE_LOGICAL_CPUS="2")
    assert metrics["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert metrics["epochs_run"] == 2 and metrics["status"] in ("completed", "early_stopped")
    history = (tmp_path / "mirrored/history.csv").read_text().splitlines()
    assert len(history) == 3 and "val_balanced_accuracy" in history[0]
    assert 0.0 <= metrics["at_best_epoch"]["val_accuracy"] <= 1.0


def test_more_gpus_per_job_than_the_job_sees_stops_naming_the_setting():
    from imgclf.core import runtime

    runtime.configure(0, 1)
    from imgclf.training.devices import training_devices

    assert training_devices(1, []) == []
    assert training_devices(2, ["/gpu:0", "/gpu:1", "/gpu:2"]) == ["/gpu:0", "/gpu:1"]
    with pytest.raises(ImgclfError, match=r"train.gpus_per_job is 2, but this job sees 1 GPU\(s\)"):
        training_devices(2, ["/gpu:0"])
    with pytest.raises(ImgclfError, match=r"train.gpus_per_job is 4, but this job sees 0 GPU"):
        training_devices(4)


@pytest.mark.slow
def test_a_disk_cache_that_cannot_be_written_stops_the_job_naming_the_setting_and_leaves_nothing(fold, tmp_path):
    """A file-size limit stands in for a full disk: the cache's first write past it fails."""
    import resource
    import signal

    from imgclf.core.config import validate_config

    cache_dir = tmp_path / "scratch"
    cache_dir.mkdir()
    config = validate_config({"seed": 4, "data": {"image_size": [64, 64]},
                              "train": {"batch_size": 16, "epochs": 1, "tensorboard_histogram_freq": 0,
                                        "cache": "disk", "cache_dir": str(cache_dir)}})

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the cache: 24 x 12 KB

    result = subprocess.run(
        [sys.executable, str(TRAIN_ONCE), json.dumps(config),
         *map(str, (fold.index, fold.train_manifest, fold.val_manifest, fold.data_root)), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert result.returncode != 0
    assert f"train.cache: the disk cache in {cache_dir} could not be written" in result.stderr, result.stderr[-2000:]
    assert "train.cache_dir to a larger disk" in result.stderr
    assert list(cache_dir.iterdir()) == []  # the half-written cache went with the job
