"""Train once in a fresh process (used by tests for cross-process determinism).

Usage: python tests/training/train_once.py CONFIG_JSON INDEX TRAIN VAL DATA_ROOT OUT_DIR
"""

import json
import sys
from pathlib import Path

from imgclf.core import runtime

config = json.loads(sys.argv[1])
runtime.configure(config["seed"], 1)

from imgclf.training.loop import RunFiles  # noqa: E402
from imgclf.training.run import TrainingInputs, run_training  # noqa: E402

out = Path(sys.argv[6])
out.mkdir(parents=True, exist_ok=True)
files = RunFiles(out / "history.csv", out / "best.weights.h5", out / "samples.npz", out / "resume")
metrics = run_training(config, TrainingInputs(*map(Path, sys.argv[2:6])), files, 16)
(out / "metrics.json").write_text(json.dumps(metrics))
