"""Pipeline benchmarks (issue 4): the real Snakefile end to end.

Run: make benchmark-pipeline   (or: python benchmarks/pipeline_benchmarks.py [--skip-default] [--skip-malaria])

1. The default pipeline (config/config.yaml, the embedded digits) from an
   empty working directory: wall time and the time of each stage (target:
   at most 10 minutes on 2 cores).
2. ../shared/data/malaria with the default model family (small_cnn), split by
   slide: Bayesian tuning (wall time, trials run, resident memory at the end of
   each trial, which should stay flat), five final trainings (wall time per
   seed), and the test accuracy over seeds (mean, std, 95% interval).

Each run goes through ``snakemake --cores 2`` in a fresh folder under
benchmarks/results/. Figures are printed and written to
benchmarks/results/pipeline_benchmarks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MALARIA = REPO.parent / "shared" / "data" / "malaria"
OUT = REPO / "benchmarks" / "results"

MALARIA_CONFIG = {
    "seed": 42,
    "data": {"source": "folder", "root": str(MALARIA), "metadata": str(MALARIA / "metadata.csv"),
             "image_size": [64, 64]},
    "validation": {"on_bad_file": "drop"},
    "split": {"test_fraction": 0.2, "n_folds": 5, "group_column": "slide_id"},
    "model": {"architecture": "small_cnn"},
    "train": {"batch_size": 32, "epochs": 20, "augmentation": {"flip": "horizontal_and_vertical"},
              "tensorboard_histogram_freq": 0},
    "explore": {"studies": []},
    "tune": {"enabled": True, "algorithm": "bayesian", "max_trials": 8, "epochs": 8, "data_fraction": 0.5,
             "objective": "val_accuracy",
             "search_space": [{"name": "train.learning_rate", "type": "float", "min": 0.0003, "max": 0.01,
                               "sampling": "log"},
                              {"name": "model.dropout", "type": "float", "min": 0.0, "max": 0.5}]},
    "final": {"n_seeds": 5, "folds": "one"},
    "targets": [{"metric": "accuracy", "min": 0.9},
                {"metric": "recall", "class": "Parasitized", "min": 0.9}],
}


def snakemake(workdir: Path, config: Path) -> tuple[float, str]:
    """Run the real workflow; return its wall time and log."""
    command = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--configfile", str(config)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"))
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{result.stderr[-4000:]}")
    return seconds, result.stderr


def fresh(name: str) -> Path:
    workdir = OUT / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir


def default_pipeline() -> dict:
    from imgclf.core.timing import stage_times, stage_times_table

    workdir = fresh("pipeline_default")
    seconds, _ = snakemake(workdir, REPO / "config" / "config.yaml")
    stages = stage_times(workdir / "logs" / "benchmarks")
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    print(f"\n1. default pipeline (embedded digits, 2 cores): {seconds:.0f} s wall (target <= 600 s)")
    print(stage_times_table(stages))
    accuracy = summary["aggregate"]["accuracy"]
    print(f"   test accuracy over {len(summary['seeds'])} seeds: {accuracy['mean']:.4f} +- {accuracy['std']:.4f}; "
          f"targets met: {summary['all_targets_met']}")
    return {"wall_seconds": round(seconds, 1), "stages": stages, "test_accuracy": accuracy,
            "all_targets_met": summary["all_targets_met"]}


def malaria_pipeline() -> dict:
    import pandas as pd

    workdir = fresh("pipeline_malaria")
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(MALARIA_CONFIG, sort_keys=False))
    seconds, _ = snakemake(workdir, config)
    bench = workdir / "logs" / "benchmarks"
    tune_bench = pd.read_csv(bench / "tune.tsv", sep="\t").iloc[-1]
    trials = pd.read_csv(workdir / "results/tune/trials.csv")
    finals = {path.stem: pd.read_csv(path, sep="\t").iloc[-1] for path in sorted((bench / "final").glob("*.tsv"))}
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    accuracy = summary["aggregate"]["accuracy"]
    best = json.loads((workdir / "results/tune/best_hyperparameters.json").read_text())
    final_metrics = {p.parent.name: json.loads(p.read_text()) for p in sorted((workdir / "results/final").glob("*/metrics.json"))}
    rss = trials["rss_mb"].astype(float).tolist()
    trial_peaks = trials["trial_peak_rss_mb"].astype(float).tolist()
    first_final = next(iter(final_metrics.values()))
    result = {
        "wall_seconds": round(seconds, 1),
        "n_train": first_final["n_train"], "n_val": first_final["n_val"], "n_test": summary["n_test"],
        "tuning": {"seconds": float(tune_bench["s"]), "trials": int(len(trials)), "n_train": best["n_train"],
                   "completed": int((trials["status"] == "COMPLETED").sum()),
                   "tuner_rss_mb_after_each_trial": rss, "trial_process_peak_rss_mb": trial_peaks,
                   "rss_growth_first_to_last_mb": round(rss[-1] - rss[0], 1),
                   "peak_rss_mb": float(tune_bench["max_rss"]), "best": best["hyperparameters"],
                   "best_val_accuracy": best["best_value"]},
        "final_seconds_per_seed": {k: float(v["s"]) for k, v in finals.items()},
        "final_epochs_per_seed": {k: m["epochs_run"] for k, m in final_metrics.items()},
        "test_accuracy": accuracy,
        "targets": [{k: t.get(k) for k in ("metric_name", "min", "mean", "low", "high", "met", "met_with_confidence")}
                    for t in summary["targets"]],
    }
    t = result["tuning"]
    print(f"\n2. malaria ({result['n_train']} train / {result['n_val']} val / {result['n_test']} test images, "
          f"64x64, small_cnn, 2 cores): {seconds:.0f} s wall")
    print(f"   tuning: {t['trials']} trials ({t['completed']} completed, {t['n_train']} training images each) "
          f"in {t['seconds']:.0f} s; best val_accuracy {t['best_val_accuracy']:.4f} with {t['best']}")
    print("   tuner's resident memory after each trial (MB): " + ", ".join(f"{v:.0f}" for v in rss)
          + f"  (first to last: {t['rss_growth_first_to_last_mb']:+.0f} MB)")
    print("   peak memory of each trial's process (MB): " + ", ".join(f"{v:.0f}" for v in trial_peaks)
          + f"  (tune job peak {t['peak_rss_mb']:.0f} MB)")
    per_seed = result["final_seconds_per_seed"]
    print("   final trainings (s per seed, epochs run): " + ", ".join(
        f"{k} {v:.0f} s/{result['final_epochs_per_seed'][k]} ep" for k, v in per_seed.items()))
    print(f"   test accuracy over {len(per_seed)} seeds: mean {accuracy['mean']:.4f}, std {accuracy['std']:.4f}, "
          f"95% interval [{accuracy['low']:.4f}, {accuracy['high']:.4f}]")
    for target in result["targets"]:
        print(f"   target {target['metric_name']} >= {target['min']}: mean {target['mean']:.4f} -> "
              f"met {target['met']}, with confidence {target['met_with_confidence']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-default", action="store_true", help="do not run the default pipeline")
    parser.add_argument("--skip-malaria", action="store_true", help="do not run the malaria pipeline")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    if not args.skip_default:
        figures["default_pipeline"] = default_pipeline()
    if not args.skip_malaria:
        if MALARIA.is_dir():
            figures["malaria"] = malaria_pipeline()
        else:
            print(f"\n2. skipped: {MALARIA} is absent (the shared data sets sit beside the repository in CI)")
    (OUT / "pipeline_benchmarks.json").write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nwritten: {OUT / 'pipeline_benchmarks.json'}")


if __name__ == "__main__":
    main()
