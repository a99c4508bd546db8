"""GPU benchmark (issue 18): the project's training loop and input pipeline against a bare
``model.fit`` on in-memory tensors, for MobileNetV3 and EfficientNet at 224x224, in float32 and
mixed precision, with the GPU's utilisation.

Run where a GPU is: make benchmark-gpu   (or: python benchmarks/gpu_benchmarks.py
[--images 2048] [--epochs 3] [--batch-size 64] [--models mobilenet_v3_large efficientnet_b0]);
``--smoke`` runs a tiny version (64 px, 96 images) that checks the script works on a CPU.

Data: ``--images`` synthetic JPEG files (256x256, written once under benchmarks/results/gpu/),
so that the project's side decodes and resizes real files as a training job does. For each
model and precision, each in a process of its own:

- bare: the images decoded once into a NumPy array, ``model.fit(x, y, validation_data=...)``;
- imgclf: :func:`imgclf.training.run.run_training` on manifests of the same files (the input
  pipeline with train.cache: auto, the validation metrics, early stopping, the learning-rate
  schedule, the best checkpoint, the per-epoch resume state, weight samples).

Both train from random initialisation for ``--epochs`` epochs; the figure is images per second
over the epochs after the first (compilation and the first decode excluded), and the GPU's mean
utilisation over them (nvidia-smi, sampled every 0.5 s). Target: imgclf at least 0.9 of bare.
Where no GPU is visible the script says so and measures on the CPU. Written to
benchmarks/results/gpu_benchmarks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "results"
CLASSES = 5


def make_images(root: Path, n_images: int, side: int = 256) -> None:
    """``n_images`` distinct JPEG files in one folder per class, and train/val/index CSVs."""
    import hashlib

    import numpy as np
    from PIL import Image

    marker = root / "complete.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"images": n_images, "side": side}:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_images):
        label = f"c{i % CLASSES}"
        (root / "images" / label).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(side // 8, side // 8, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((side, side))
        relpath = f"{label}/img_{i:05d}.jpg"
        image.save(root / "images" / relpath, quality=90)
        digest = hashlib.sha256((root / "images" / relpath).read_bytes()).hexdigest()
        rows.append(f"{relpath},{label},{digest},{side},{side},RGB")
    header = "path,label,sha256,width,height,mode"
    n_val = max(CLASSES, n_images // 5)
    (root / "index.csv").write_text("\n".join([header, *rows]) + "\n")
    (root / "val.csv").write_text("\n".join([header, *rows[:n_val]]) + "\n")
    (root / "train.csv").write_text("\n".join([header, *rows[n_val:]]) + "\n")
    marker.write_text(json.dumps({"images": n_images, "side": side}))


class Utilisation:
    """The GPU's utilisation, sampled by nvidia-smi every 0.5 s while ``active``."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.active = False
        self.available = shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.available:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            if not self.active:
                continue
            try:
                done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                      capture_output=True, text=True, timeout=5)
                self.samples.append(float(done.stdout.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                pass

    def mean(self) -> float | None:
        self._stop.set()
        return statistics.mean(self.samples) if self.samples else None


def child(mode: str, model_name: str, mixed: bool, root: Path, side: int, epochs: int, batch: int) -> dict:
    from imgclf.core import runtime

    settings = runtime.configure(0, 1, os.cpu_count() or 1)
    import keras
    import numpy as np

    from imgclf.core.config import validate_config
    from imgclf.training.files import RunFiles, TrainingInputs

    config = validate_config({
        "seed": 0, "data": {"image_size": [side, side], "channels": 3},
        "model": {"architecture": model_name, "weights": "none"},
        "train": {"batch_size": batch, "epochs": epochs, "mixed_precision": mixed, "tensorboard_histogram_freq": 0,
                  "early_stopping": {"enabled": False}, "reduce_lr": {"enabled": False}}})
    usage = Utilisation()
    epoch_seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            usage.active = epoch > 0
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    n_train = sum(1 for _ in open(root / "train.csv")) - 1
    if mode == "bare":
        from imgclf.core.io import read_index
        from imgclf.training.inputs import make_dataset, read_manifest
        from imgclf.training.loop import compile_model
        from imgclf.training.models import build_model

        classes = sorted(read_index(root / "index.csv")["label"].unique())

        def tensors(name: str) -> tuple:
            manifest = read_manifest(root / name, root / "images", classes, verify=False)
            data = make_dataset(manifest, (side, side), 3, 256, False, 0, cache=False)
            return (np.concatenate([x.numpy() for x, _ in data]), np.concatenate([y.numpy() for _, y in data]))

        (x, y), (xv, yv) = tensors("train.csv"), tensors("val.csv")
        runtime.set_precision(mixed, settings["gpus"])
        model = build_model(config["model"], len(classes), (side, side, 3))
        compile_model(model, config["train"], 0.001)
        model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=(xv, yv), callbacks=[Timer()], verbose=0)
    else:
        from imgclf.training.run import run_training

        class EpochLog:
            def info(self, message: str, *args) -> None:
                if message.startswith("epoch %d/%d"):
                    epoch_seconds.append(float(args[-1]))
                    usage.active = True

            def warning(self, message: str, *args) -> None:
                pass

        work = root / f"run_{model_name}_{int(mixed)}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        files = RunFiles(work / "history.csv", work / "best.weights.h5", work / "samples.npz", work / "resume")
        run_training(config, TrainingInputs(root / "index.csv", root / "train.csv", root / "val.csv",
                                            root / "images"), files, batch, EpochLog())
    timed = epoch_seconds[1:] or epoch_seconds
    return {"mode": mode, "model": model_name, "mixed_precision": mixed, "gpus": settings["gpus"],
            "images_per_s": n_train * len(timed) / sum(timed), "epoch_seconds": epoch_seconds,
            "gpu_utilisation": usage.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v3_large", "efficientnet_b0"])
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the script on a CPU")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, model, mixed, root, side, epochs, batch = args.child
        print(json.dumps(child(mode, model, mixed == "1", Path(root), int(side), int(epochs), int(batch))))
        return
    if args.smoke:
        args.images, args.epochs, args.batch_size, args.size, args.models = 96, 2, 16, 64, ["mobilenet_v3_small"]
    root = OUT / "gpu" / f"images_{args.images}"
    make_images(root, args.images)
    rows = []
    for model in args.models:
        for mixed in (False, True):
            pair = {}
            for mode in ("bare", "imgclf"):
                done = subprocess.run([sys.executable, __file__, "--child", mode, model, str(int(mixed)), str(root),
                                       str(args.size), str(args.epochs), str(args.batch_size)],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"{model} {mode} failed:\n{done.stderr[-3000:]}")
                pair[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            ratio = pair["imgclf"]["images_per_s"] / pair["bare"]["images_per_s"]
            rows.append({"model": model, "mixed_precision": mixed, "ratio": ratio, **pair})
            if not pair["bare"]["gpus"] and mixed:
                print("   (no GPU visible: mixed precision falls back to float32)")
            util = [pair[m]["gpu_utilisation"] for m in ("bare", "imgclf")]
            print(f"{model:<20} {'mixed' if mixed else 'float32':<8} bare {pair['bare']['images_per_s']:8.1f} img/s, "
                  f"imgclf {pair['imgclf']['images_per_s']:8.1f} img/s: {ratio:.2f} (target >= 0.9); GPU "
                  + (" / ".join("?" if u is None else f"{u:.0f}%" for u in util)), flush=True)
    gpus = rows[0]["bare"]["gpus"] if rows else []
    if not gpus:
        print("no GPU visible: these are CPU figures; run this script on a GPU node for the GPU ones")
    (OUT / "gpu_benchmarks.json").write_text(json.dumps({"gpus": gpus, "images": args.images, "size": args.size,
                                                         "epochs": args.epochs, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
