"""Drift calibration benchmark (issue 8): how often each signal flags a batch.

Run: make benchmark-drift   (or: python benchmarks/drift_benchmarks.py [--draws 200] [--batch-size 100])

A model is trained on the default data (the embedded digits at 32 px; exploration and tuning
off, one final seed) by the real Snakefile in benchmarks/results/drift/, and its monitoring
reference is built by the monitor_reference rule. Batches are then drawn from held-out images,
the test set, which neither the model nor the reference has seen:

- unshifted batches: how often each signal flags them is its false-positive rate, expected at
  about monitor.alpha (or under: Bonferroni within a signal is conservative);
- shifted batches (brightness, blur, Gaussian noise, a new class mix), each at three
  intensities: how often each signal flags them is its detection rate.

The drift statistics are those of the monitor_batch rule (imgclf.monitor.batches.drift_report), run
in-process on precomputed image statistics and model outputs of each shifted pool of images.
A last row measures, for comparison, the embeddings test against the training images'
embeddings instead of the validation images' (the reference the pipeline uses).

Figures are printed as a table and written to benchmarks/results/drift_benchmarks.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results"
WORKDIR = OUT / "drift"
sys.path.insert(0, str(REPO))

CONFIG = {
    "explore": {"studies": []},
    "tune": {"enabled": False},
    "final": {"n_seeds": 1},
    "train": {"epochs": 10},
    "export": {"enabled": False},
}

#: Shift name -> (intensities, what an intensity means).
SHIFTS = {
    "brightness": ((15, 30, 60), "gray levels added"),
    "blur": ((0.5, 0.8, 1.2), "Gaussian blur sigma, pixels"),
    "noise": ((4, 8, 16), "Gaussian noise std, gray levels"),
    "class mix": ((2, 4, 8), "weight of digits 0-4 against 5-9"),
}


def train_and_reference(workdir: Path) -> None:
    """The deployed model and its monitoring reference, by the real Snakefile."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
               "results/monitor/_reference/predictions.csv", "--configfile", str(workdir / "config.yaml")]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"the pipeline failed:\n{result.stderr[-4000:]}")


def shifted(image: Image.Image, shift: str, intensity: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    if shift == "brightness":
        return Image.fromarray(np.clip(pixels + intensity, 0, 255).astype(np.uint8), image.mode)
    if shift == "blur":
        return image.filter(ImageFilter.GaussianBlur(intensity))
    if shift == "noise":
        return Image.fromarray(np.clip(np.round(pixels + rng.normal(0, intensity, pixels.shape)), 0, 255)
                               .astype(np.uint8), image.mode)
    return image


def pool_outputs(images: list[Image.Image], model, card: dict) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Image statistics, embeddings and predictions of a pool of images (saved to a temporary
    folder and read back exactly as a monitored batch is)."""
    import tempfile

    from imgclf.monitor.batches import inspect_batch, list_batch
    from imgclf.training.inputs import Manifest
    from imgclf.training.predict import predict_with_embeddings
    from imgclf.data.validation import ValidationOptions

    with tempfile.TemporaryDirectory() as folder:
        for i, image in enumerate(images):
            image.save(Path(folder) / f"{i:04d}.png")
        batch = list_batch("pool", {"path": folder})
        table, _ = inspect_batch(batch, ValidationOptions())
        manifest = Manifest([str(Path(folder) / p) for p in table["path"]], np.zeros(len(table), np.int32), table)
        embeddings, proba = predict_with_embeddings(model, manifest, tuple(card["image_size"]), card["channels"], 64)
    classes = card["classes"]
    predictions = pd.DataFrame({"predicted": [classes[i] for i in proba.argmax(1)],
                                "confidence": proba.max(1), "label": pd.NA})
    return table, embeddings, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200, help="unshifted batches drawn (default: %(default)s)")
    parser.add_argument("--shifted-draws", type=int, default=40, help="batches per shift and intensity")
    parser.add_argument("--batch-size", type=int, default=100, help="images per batch (default: %(default)s)")
    args = parser.parse_args()
    started = time.monotonic()
    print("training the model and building the reference (about a minute)...", flush=True)
    train_and_reference(WORKDIR)
    os.chdir(WORKDIR)

    from imgclf.core.config import load_config
    from imgclf.core.io import read_index
    from imgclf.monitor.batches import drift_report
    from imgclf.data.sources import DIGITS_FOLDER
    from imgclf.core import runtime

    runtime.configure(0, 2)
    from imgclf.training.inputs import read_manifest
    from imgclf.training.predict import load_model, predict_with_embeddings

    config = load_config(WORKDIR / "config.yaml")
    settings = {k: v for k, v in config["monitor"].items() if k != "batches"}
    card = json.loads(Path("results/model/model.json").read_text())
    model = load_model("results/model/model.keras")
    reference_images = read_index("results/monitor/_reference/image_statistics.csv")
    reference_embeddings = np.load("results/monitor/_reference/embeddings.npz")["embeddings"]
    reference_predictions = pd.read_csv("results/monitor/_reference/predictions.csv", dtype={"predicted": str},
                                        keep_default_na=False, na_values=[""])
    baseline = {"correct": round(card["test"]["accuracy"] * card["test"]["n"]), "n": card["test"]["n"]}
    # The held-out pool: the test images (a benchmark, not a decision: nothing here is chosen on them).
    held_out = read_index("results/splits/test.csv")
    originals = [Image.open(Path(DIGITS_FOLDER) / p).copy() for p in held_out["path"]]
    labels = held_out["label"].to_numpy()
    rng = np.random.default_rng(0)

    pools = {("none", 0): pool_outputs(originals, model, card)}
    for shift, (intensities, _) in SHIFTS.items():
        for intensity in intensities:
            if shift != "class mix":
                pools[(shift, intensity)] = pool_outputs([shifted(im, shift, intensity, rng) for im in originals],
                                                         model, card)
    train = read_manifest(f"results/splits/fold_{card['fold']}/train.csv", DIGITS_FOLDER, card["classes"])
    pick = np.sort(rng.choice(len(train.paths), min(len(reference_embeddings), len(train.paths)), replace=False))
    train_embeddings, _ = predict_with_embeddings(
        model, train.subset(pick),
        tuple(card["image_size"]), card["channels"], 64)

    def draw(pool_key: tuple[str, float], n_draws: int, weights: np.ndarray | None = None,
             embeddings_reference: np.ndarray = reference_embeddings) -> dict[str, float]:
        table, embeddings, predictions = pools[pool_key]
        flags = {"images": 0, "embeddings": 0, "predictions": 0, "any": 0}
        for _ in range(n_draws):
            idx = np.sort(rng.choice(len(table), args.batch_size, replace=False,
                                     p=None if weights is None else weights / weights.sum()))
            report = drift_report(reference_images, table.iloc[idx].reset_index(drop=True), embeddings_reference,
                                  embeddings[idx], reference_predictions, predictions.iloc[idx].reset_index(drop=True),
                                  card["classes"], baseline, settings, seed=int(rng.integers(1 << 31)))
            for signal in ("images", "embeddings", "predictions"):
                flags[signal] += bool(report["signals"][signal]["drift"])
            flags["any"] += bool(report["drifting"])
        return {k: v / n_draws for k, v in flags.items()}

    rows = [{"shift": "none (false positives)", "intensity": "-", "draws": args.draws, **draw(("none", 0), args.draws)}]
    print(f"unshifted: {rows[0]}", flush=True)
    for shift, (intensities, meaning) in SHIFTS.items():
        for intensity in intensities:
            if shift == "class mix":
                weights = np.where(np.isin(labels, [str(d) for d in range(5)]), float(intensity), 1.0)
                rates = draw(("none", 0), args.shifted_draws, weights)
            else:
                rates = draw((shift, intensity), args.shifted_draws)
            rows.append({"shift": shift, "intensity": f"{intensity} ({meaning})", "draws": args.shifted_draws,
                         **rates})
            print(f"{shift} {intensity}: {rates}", flush=True)
    against_train = draw(("none", 0), args.draws, embeddings_reference=train_embeddings)
    rows.append({"shift": "none, embeddings against TRAINING images (not used)", "intensity": "-",
                 "draws": args.draws, **against_train})

    header = "| shift | intensity | draws | images | embeddings | predictions | any signal |\n|---|---|---|---|---|---|---|"
    lines = [f"| {r['shift']} | {r['intensity']} | {r['draws']} | {r['images']:.2f} | {r['embeddings']:.2f} | "
             f"{r['predictions']:.2f} | {r['any']:.2f} |" for r in rows]
    table_md = "\n".join([header, *lines])
    summary = {"alpha": settings["alpha"], "batch_size": args.batch_size, "held_out_images": len(originals),
               "reference": {"training_images": len(reference_images), "validation_images": len(reference_embeddings)},
               "test_accuracy": card["test"]["accuracy"], "permutations": settings["permutations"], "rows": rows,
               "seconds": round(time.monotonic() - started, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "drift_benchmarks.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = (f"Flag rates at alpha = {settings['alpha']} per signal; batches of {args.batch_size} images drawn from "
            f"the {len(originals)} held-out test images; reference: {len(reference_images)} training images "
            f"(statistics) and {len(reference_embeddings)} validation images (model outputs); deployed model's "
            f"test accuracy {card['test']['accuracy']:.3f}.\n\n{table_md}\n")
    (OUT / "drift_benchmarks.md").write_text(text)
    print("\n" + text + f"\n{summary['seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
