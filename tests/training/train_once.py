"""Train once in a fresh process (used by tests for cross-process determinism).

Usage: python tests/training/train_once.py CONFIG_JSON INDEX TRAIN VAL DATA_ROOT OUT_DIR

Environment: TRAIN_ONCE_CPUS, the job's CPUs (its input pipeline's threads; default 1);
TRAIN_ONCE_LOGICAL_CPUS=N splits the CPU into N logical devices and trains on all of them
(MirroredStrategy, as train.gpus_per_job does on N GPUs).
"""

import json
import os
import sys
from pathlib import Path

from imgclf.core import runtime

config = json.loads(sys.argv[1])
settings = runtime.configure(config["seed"], 1, int(os.environ.get("TRAIN_ONCE_CPUS", "1")))
devices = None
logical = int(os.environ.get("TRAIN_ONCE_LOGICAL_CPUS", "0"))
if logical:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical)
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]

from imgclf.training.loop import RunFiles  # noqa: E402
from imgclf.training.run import TrainingInputs, run_training  # noqa: E402

out = Path(sys.argv[6])
out.mkdir(parents=True, exist_ok=True)
files = RunFiles(out / "history.csv", out / "best.weights.h5", out / "samples.npz", out / "resume")
metrics = run_training(config, TrainingInputs(*map(Path, sys.argv[2:6])), files, 16, devices=devices)
(out / "metrics.json").write_text(json.dumps({**metrics, "runtime": settings}))
