"""Using the models (issue 19): what the ensemble gains, predict's speed, and where the models look.

Run: make benchmark-use   (or: python benchmarks/use_benchmarks.py [--runs DIR] [--saliency-images 600]
[--recipes NAME ...])

For each recipe of the transfer benchmark below, the final models of its seeds (trained by
benchmarks/transfer_benchmarks.py, which this runs first for any seed whose weights are missing,
on the same manifests: the project's own split of ../shared/data/<set>), on the same test manifest:

- each single model's test accuracy and balanced accuracy: mean ± sd over seeds, 95% t-interval;
- the median model (the median of the recipe's early-stopping metric on validation at its best
  epoch: what evaluation.deploy: median_validation deploys);
- the ensemble (the seeds' probabilities averaged: evaluation.deploy: ensemble), and its gain over
  the median model with a paired bootstrap interval over the test images (2,000 resamples);
- test-time augmentation (evaluation.tta: the image and its two mirrors averaged) of each single
  model and of the ensemble;
- predict's images/s: the predict stage's own function (imgclf.predict) on the test manifest
  (sha256 and statistics of every file, then decode, resize, predict, write), the median model
  and the ensemble, one TensorFlow thread;
- on HAM10000: Grad-CAM saliency maps of the median model on test images (a seeded draw, stratified
  by class), the border share (saliency in the outer 10% of the image; 0.36 for a uniform map) per
  class, and whether the diagnosis flags a class.

Printed as Markdown tables; written to benchmarks/results/use_benchmarks.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
OUT = REPO / "benchmarks" / "results"

#: (data set, transfer-benchmark recipe, the recipe's early-stopping metric, higher is better)
RECIPES = [("malaria", "pretrained_160", "val_loss", False),
           ("malaria", "small_cnn_augmented", "val_loss", False),
           ("ham10000", "pretrained_balanced_160", "val_balanced_accuracy", True),
           # From scratch (issue 16's 20-minute budget): not in the default run, --recipes names them.
           ("ham10000", "small_cnn_balanced_deep64", "val_balanced_accuracy", True),
           ("ham10000", "small_cnn_balanced_deep64_patient", "val_balanced_accuracy", True)]
DEFAULT_RECIPES = ("pretrained_160", "small_cnn_augmented", "pretrained_balanced_160")
SEEDS = (1, 2, 3)
SALIENCY_SET = "ham10000"


def scores(labels, proba, n_classes: int) -> dict:
    import numpy as np

    predicted = proba.argmax(axis=1)
    recalls = [float(np.mean(predicted[labels == c] == c)) for c in range(n_classes) if (labels == c).any()]
    return {"accuracy": float(np.mean(predicted == labels)), "balanced_accuracy": float(np.mean(recalls))}


def paired_bootstrap(labels, first, second, n_classes: int, seed: int = 0, n: int = 2000) -> dict:
    """The gain of ``second`` over ``first`` (accuracy and balanced accuracy) with a 95% paired
    bootstrap interval over the test images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    gains = {"accuracy": [], "balanced_accuracy": []}
    for _ in range(n):
        pick = rng.integers(0, len(labels), len(labels))
        a, b = scores(labels[pick], first[pick], n_classes), scores(labels[pick], second[pick], n_classes)
        for key in gains:
            gains[key].append(b[key] - a[key])
    point_a, point_b = scores(labels, first, n_classes), scores(labels, second, n_classes)
    return {key: {"gain": point_b[key] - point_a[key], "ci95": [float(np.percentile(v, 2.5)),
                                                               float(np.percentile(v, 97.5))]}
            for key, v in gains.items()}


def best_validation(run_dir: Path, metric: str) -> float:
    import pandas as pd

    history = pd.read_csv(run_dir / "history.csv")
    best = json.loads((run_dir / "result.json").read_text())["best_epoch"]
    return float(history.loc[history["epoch"] == best, metric].iloc[0])


def recipe_models(dataset: str, method: str, runs: Path):
    """The recipe's seeds' models (weights loaded), their classes, input and manifests' folder."""
    import transfer_benchmarks as transfer

    from imgclf.core.config import validate_config
    from imgclf.core.io import read_index
    from imgclf.training.models import build_model

    workdir = runs / dataset
    if not (workdir / "prep.json").is_file():
        transfer.prepare(dataset, workdir)
    for seed in SEEDS:
        if not (workdir / f"{method}_seed{seed}" / "best.weights.h5").is_file():
            print(f"   training {dataset} {method} seed {seed} (transfer benchmark)...", flush=True)
            transfer.child(dataset, method, seed, workdir)
    raw = {"seed": 1, **{k: dict(v) for k, v in transfer.METHOD_CONFIGS[method].items()}}
    config = validate_config(raw)
    classes = sorted(read_index(workdir / "index.csv")["label"].unique())
    size, channels = tuple(config["data"]["image_size"]), config["data"]["channels"]
    models = []
    for seed in SEEDS:
        model = build_model({**config["model"], "weights": "none"}, len(classes), (*size, channels))
        model.load_weights(str(workdir / f"{method}_seed{seed}" / "best.weights.h5"))
        models.append(model)
    return models, classes, size, channels, workdir


def predict_speed(model, classes, size, channels, workdir: Path, root: str) -> dict:
    """images/s of the predict stage's own function on the test manifest."""
    from imgclf.core.io import csv_appender
    from imgclf.core.job import JobResources, get_logger
    from imgclf.predict.tf_jobs import predict_batch

    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as folder:
        model_path, card = Path(folder) / "model.keras", Path(folder) / "model.json"
        model.save(model_path)
        card.write_text(json.dumps({"classes": classes, "image_size": list(size), "channels": channels}))
        started = time.perf_counter()
        with csv_appender(Path(folder) / "predictions.csv") as write_rows:
            summary = predict_batch("test", {"path": str(workdir / "test.csv"), "root": root}, model_path, card,
                                    "deployed", {"batch_size": 64, "chunk_images": 1024}, {"on_bad_file": "fail"},
                                    JobResources(1, 1), 0, write_rows, get_logger("bench"))
        whole = time.perf_counter() - started
    return {"images": summary["n_images"], "predict_images_per_second": summary["images_per_second"],
            "whole_images_per_second": round(summary["n_images"] / whole, 1),
            "accuracy": summary.get("labelled", {}).get("accuracy")}


def saliency(model, classes, size, channels, workdir: Path, root: str, n_images: int) -> dict:
    """Grad-CAM border shares per class of the model on a stratified draw of test images."""
    import pandas as pd

    from imgclf.data import stratified_draw
    from imgclf.evaluate import saliency as maps
    from imgclf.export import load_pixels
    from imgclf.training.inputs import read_manifest

    test = read_manifest(workdir / "test.csv", root, classes)
    drawn = stratified_draw(test.table.reset_index(drop=True), n_images, 0)
    keep = test.table.reset_index().merge(drawn[["path"]], on="path")["index"].to_numpy()
    subset = test.subset(keep)
    images = load_pixels(subset, size, channels)
    proba = model.predict(images, batch_size=32, verbose=0)
    started = time.perf_counter()
    heat = maps.grad_cam(model, images, proba.argmax(axis=1))
    seconds = time.perf_counter() - started
    table = pd.DataFrame({"label": subset.table["label"].to_numpy(), "border_share": maps.border_share(heat)})
    per_class = maps.border_summary(table, "label")
    area = maps.area_share(size[0], size[1])
    return {"n": len(keep), "area_share": area, "grad_cam_images_per_second": round(len(keep) / seconds, 1),
            "per_class": per_class.to_dict(orient="records"), "findings": maps.border_findings(per_class, area)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=OUT / "transfer",
                        help="the transfer benchmark's results (default: %(default)s)")
    parser.add_argument("--saliency-images", type=int, default=600)
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES),
                        choices=sorted({method for _, method, _, _ in RECIPES}),
                        help="the transfer benchmark's recipes to measure (default: %(default)s)")
    args = parser.parse_args()
    from imgclf.core import runtime

    runtime.configure(0, 1)
    import numpy as np

    from imgclf.training.ensemble import build_ensemble
    from imgclf.training.inputs import read_manifest
    from imgclf.training.predict import predict_proba, predict_proba_tta
    from transfer_benchmarks import summary

    report: dict = {"seeds": list(SEEDS), "recipes": []}
    for dataset, method, metric, higher in [r for r in RECIPES if r[1] in args.recipes]:
        models, classes, size, channels, workdir = recipe_models(dataset, method, args.runs)
        root = json.loads((workdir / "prep.json").read_text())["root"]
        test = read_manifest(workdir / "test.csv", root, classes)
        probas = [predict_proba(m, test, size, channels, 64) for m in models]
        singles = [scores(test.labels, p, len(classes)) for p in probas]
        validation = [best_validation(workdir / f"{method}_seed{s}", metric) for s in SEEDS]
        order = np.argsort(validation)
        median = int(order[len(order) // 2])
        ensemble_proba = np.mean(probas, axis=0)
        ensemble = scores(test.labels, ensemble_proba, len(classes))
        row = {"dataset": dataset, "method": method, "n_test": len(test.labels),
               "single": {k: summary([s[k] for s in singles]) for k in ("accuracy", "balanced_accuracy")},
               "median_model": {"seed": SEEDS[median], "by": metric, **singles[median]},
               "ensemble": ensemble,
               "gain_over_median": paired_bootstrap(test.labels, probas[median], ensemble_proba, len(classes))}
        tta = [predict_proba_tta(m, test, size, channels, 64, plain=p) for m, p in zip(models, probas)]
        tta_singles = [scores(test.labels, p, len(classes)) for p in tta]
        row["tta"] = {"single": {k: summary([s[k] for s in tta_singles]) for k in ("accuracy", "balanced_accuracy")},
                      "median_model": tta_singles[median],
                      "ensemble": scores(test.labels, np.mean(tta, axis=0), len(classes)),
                      "gain_over_plain_ensemble": paired_bootstrap(test.labels, ensemble_proba, np.mean(tta, axis=0),
                                                                   len(classes))}
        ensemble_model = build_ensemble(models, list(SEEDS))
        row["predict"] = {"median_model": predict_speed(models[median], classes, size, channels, workdir, root),
                          "ensemble": predict_speed(ensemble_model, classes, size, channels, workdir, root)}
        if dataset == SALIENCY_SET:
            row["saliency"] = saliency(models[median], classes, size, channels, workdir, root, args.saliency_images)
        report["recipes"].append(row)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "use_benchmarks.json").write_text(json.dumps(report, indent=2, default=float))
        print(f"== {dataset} {method}: done", flush=True)
    print("\n| data | recipe | single models: accuracy (mean ± sd, 95% interval) | median model | ensemble | "
          "gain over the median model (95% bootstrap) | balanced accuracy: single | median | ensemble | gain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in report["recipes"]:
        a, b, g = r["single"]["accuracy"], r["single"]["balanced_accuracy"], r["gain_over_median"]
        print(f"| {r['dataset']} | {r['method']} | {a['mean']:.3f} ± {a['std']:.3f} ({a['ci95'][0]:.3f}-"
              f"{a['ci95'][1]:.3f}) | {r['median_model']['accuracy']:.3f} | {r['ensemble']['accuracy']:.3f} | "
              f"{g['accuracy']['gain']:+.3f} ({g['accuracy']['ci95'][0]:+.3f} to {g['accuracy']['ci95'][1]:+.3f}) | "
              f"{b['mean']:.3f} ± {b['std']:.3f} | {r['median_model']['balanced_accuracy']:.3f} | "
              f"{r['ensemble']['balanced_accuracy']:.3f} | {g['balanced_accuracy']['gain']:+.3f} "
              f"({g['balanced_accuracy']['ci95'][0]:+.3f} to {g['balanced_accuracy']['ci95'][1]:+.3f}) |")
    print("\nTest-time augmentation (the image and its two mirrors averaged):\n")
    print("| data | recipe | single + TTA: accuracy | balanced accuracy | median model + TTA: balanced | "
          "ensemble + TTA: accuracy | balanced | ensemble + TTA − ensemble: balanced (95% bootstrap) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in report["recipes"]:
        t = r["tta"]
        a, b, g = t["single"]["accuracy"], t["single"]["balanced_accuracy"], t["gain_over_plain_ensemble"]
        print(f"| {r['dataset']} | {r['method']} | {a['mean']:.3f} ± {a['std']:.3f} | {b['mean']:.3f} ± {b['std']:.3f} "
              f"({b['ci95'][0]:.3f}-{b['ci95'][1]:.3f}) | {t['median_model']['balanced_accuracy']:.3f} | "
              f"{t['ensemble']['accuracy']:.3f} | {t['ensemble']['balanced_accuracy']:.3f} | "
              f"{g['balanced_accuracy']['gain']:+.3f} ({g['balanced_accuracy']['ci95'][0]:+.3f} to "
              f"{g['balanced_accuracy']['ci95'][1]:+.3f}) |")
    print("\n| data | recipe | predict: median model (images/s; whole job) | ensemble of 3 (images/s; whole job) |")
    print("|---|---|---|---|")
    for r in report["recipes"]:
        m, e = r["predict"]["median_model"], r["predict"]["ensemble"]
        print(f"| {r['dataset']} | {r['method']} | {m['predict_images_per_second']:.0f}; {m['whole_images_per_second']:.0f} "
              f"| {e['predict_images_per_second']:.0f}; {e['whole_images_per_second']:.0f} |")
    for r in report["recipes"]:
        if "saliency" in r:
            s = r["saliency"]
            print(f"\nGrad-CAM of the median {r['method']} model on {s['n']} {r['dataset']} test images "
                  f"({s['grad_cam_images_per_second']:.0f} images/s); border share (uniform map: {s['area_share']:.2f}):")
            print("\n| class | images | mean | median | share above 0.5 |\n|---|---|---|---|---|")
            for c in s["per_class"]:
                print(f"| {c['label']} | {c['n']} | {c['mean_border_share']:.3f} | {c['median_border_share']:.3f} | "
                      f"{c['share_above_half']:.3f} |")
            print("\nflagged: " + ("; ".join(f["message"] for f in s["findings"]) or "no class"))


if __name__ == "__main__":
    main()
