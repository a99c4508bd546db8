"""``python -m imgclf.verify``: a reviewer checks that the results in ``results/`` are what
the data, the config and the code give.

After ``git clone`` and ``dvc pull``, run in the project folder::

    python -m imgclf.verify                 # manifests and test metrics
    python -m imgclf.verify --retrain 42    # and retrain final seed 42 on the CPU

It re-derives the index and every manifest from the data (byte for byte), re-evaluates
every final model on the test set (metric for metric), optionally retrains one final
model (weight for weight: identical on CPU with the same seed and thread count), and
prints, for each artifact, whether it matches and why not. It writes nothing under
``results/``; the re-evaluation is a check, not a decision, and is not recorded as an
evaluation of the sealed test set. Exit status: 0 when everything matches, 1 otherwise,
2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.core.errors import ImgclfError
from imgclf.layout import RunLayout

MATCH, DIFFER, MISSING, NOTE = "MATCH", "DIFFER", "MISSING", "NOTE"


@dataclass
class Check:
    """One artifact's verdict."""

    status: str
    artifact: str
    detail: str


def describe_table_difference(recorded: pd.DataFrame, derived: pd.DataFrame, limit: int = 8) -> str:
    """Which images differ between two manifests (by path): added, removed, changed content."""
    old = recorded.set_index("path") if "path" in recorded else recorded
    new = derived.set_index("path") if "path" in derived else derived
    added = sorted(set(new.index) - set(old.index))
    removed = sorted(set(old.index) - set(new.index))
    common = sorted(set(old.index) & set(new.index))
    changed = []
    for path in common:
        a, b = old.loc[path], new.loc[path]
        columns = [c for c in old.columns if c in new.columns and str(a[c]) != str(b[c])]
        if columns:
            if "sha256" in columns:
                changed.append(f"image {path!r} changed: sha256 {str(a['sha256'])[:12]}... recorded, "
                               f"{str(b['sha256'])[:12]}... now")
            else:
                changed.append(f"{path!r}: {', '.join(f'{c} {a[c]!r} -> {b[c]!r}' for c in columns[:3])}")
    parts = ([f"image {p!r} is new" for p in added] + [f"image {p!r} is gone" for p in removed] + changed)
    if not parts:
        extra = sorted(set(new.columns) ^ set(old.columns))
        return f"same rows, other columns or order ({', '.join(extra) or 'row order or formatting'})"
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def compare_text(artifact: str, recorded_path: Path, derived_text: str, read: Any) -> Check:
    """A file against the text re-derived for it."""
    from io import StringIO

    if not recorded_path.is_file():
        return Check(MISSING, artifact, f"{recorded_path} is absent (dvc pull?)")
    recorded = recorded_path.read_text(encoding="utf-8")
    if recorded == derived_text:
        return Check(MATCH, artifact, f"byte-identical ({max(recorded.count(chr(10)) - 1, 0)} rows)")
    return Check(DIFFER, artifact, describe_table_difference(read(recorded_path), read(StringIO(derived_text))))


def derive_manifests(config: dict[str, Any], workdir: Path, scratch: Path) -> tuple[pd.DataFrame, Any]:
    """The index and the split, re-derived from the data as the rules derive them."""
    from imgclf.data import validate_source
    from imgclf.core.io import read_index
    from imgclf.split import SplitOptions, make_split
    from imgclf.data import raise_on_errors

    data = config["data"]
    if data["source"] == "digits":
        from imgclf.data import write_digit_folder

        root = scratch / "digits"
        write_digit_folder(root, data["digits"]["size"])
    else:
        root = _data_root(config, workdir)
    manifest = workdir / data["manifest"] if data["source"] == "manifest" else None
    metadata = workdir / data["metadata"] if data["metadata"] else None
    result = validate_source(config, root, manifest, metadata, workers=2)
    raise_on_errors(result)
    sealed = config["split"]["sealed_test"]
    # A retraining's split keeps an earlier test set (split.sealed_test): derive it the same way.
    return result.index, make_split(result.index, SplitOptions.from_config(config),
                                    read_index(workdir / sealed) if sealed else None)


def check_manifests(config: dict[str, Any], workdir: Path, scratch: Path) -> list[Check]:
    """The index and every manifest, against their re-derivation."""
    from imgclf.core.io import csv_text, read_index

    run = RunLayout(workdir)
    try:
        index, split = derive_manifests(config, workdir, scratch)
    except ImgclfError as error:
        return [Check(DIFFER, "data", f"the data no longer validates: {error}")]
    checks = [compare_text("index", run.index, csv_text(index), read_index),
              compare_text("test manifest", run.test_manifest, csv_text(split.test), read_index)]
    for k, (train, val) in enumerate(split.folds):
        checks.append(compare_text(f"fold {k} train manifest", run.fold_manifest(k, "train"), csv_text(train),
                                   read_index))
        checks.append(compare_text(f"fold {k} val manifest", run.fold_manifest(k, "val"), csv_text(val),
                                   read_index))
    return checks


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    from imgclf.evaluate import flatten_metrics

    return {k: float(v) for k, v in flatten_metrics(metrics).items() if v is not None}


def check_models(config: dict[str, Any], workdir: Path, seeds: list[int]) -> list[Check]:
    """Every final model re-evaluated on the test set, against its recorded test metrics."""
    from imgclf.core.metrics import classification_metrics
    from imgclf.evaluate import thresholded_predictions
    from imgclf.training.inputs import read_manifest
    from imgclf.training.predict import load_model, predict_proba

    run = RunLayout(workdir)
    root = _data_root(config, workdir)
    checks = []
    tests: dict[tuple[str, ...], Any] = {}  # the test manifest, its images hashed once for every seed
    for seed in seeds:
        artifact = f"final model seed {seed} on the test set"
        model_path, recorded_path, training_path = run.final_model(seed), run.test_metrics(seed), \
            run.final_metrics(seed)
        if not all(p.is_file() for p in (model_path, recorded_path, training_path)):
            checks.append(Check(MISSING, artifact, f"{model_path} or its metrics are absent (dvc pull?)"))
            continue
        training = json.loads(training_path.read_text())
        recorded = json.loads(recorded_path.read_text())["metrics"]
        try:
            classes = tuple(training["classes"])
            if classes not in tests:
                tests[classes] = read_manifest(run.test_manifest, root, list(classes))
            test = tests[classes]
            proba = predict_proba(load_model(model_path), test, tuple(training["image_size"]), training["channels"],
                                  training["batch_size"])
        except ImgclfError as error:
            checks.append(Check(DIFFER, artifact, f"cannot be re-evaluated: {error}"))
            continue
        # Operating thresholds the evaluation applied (chosen on validation) are applied again.
        thresholds = recorded.get("thresholds") or {}
        predicted = (thresholded_predictions(proba, training["classes"], thresholds["classes"])
                     if thresholds.get("applied") else None)
        derived = classification_metrics(test.labels, proba, training["classes"],
                                         n_bins=config["evaluation"]["ece_bins"], predicted=predicted)
        old, new = _flat(recorded), _flat(derived)
        def differ(a: float | None, b: float | None) -> bool:
            if a is None or b is None:
                return True
            if math.isnan(a) or math.isnan(b):
                return not (math.isnan(a) and math.isnan(b))
            return abs(a - b) > 1e-9

        differences = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
                       if differ(old.get(k), new.get(k))}
        if not differences:
            checks.append(Check(MATCH, artifact, f"all {len(new)} metrics equal (accuracy {new['accuracy']:.4f})"))
        else:
            shown = "; ".join(f"{k}: {a} recorded, {b} now" for k, (a, b) in list(differences.items())[:4])
            checks.append(Check(DIFFER, artifact, f"{len(differences)} metrics differ: {shown}"))
    return checks


def _data_root(config: dict[str, Any], workdir: Path) -> Path:
    from imgclf.data import data_root

    return workdir / data_root(config["data"], str(RunLayout(workdir).digits))


def retrain_worker(workdir: Path, seed: int, output: Path) -> None:
    """Retrain final seed ``seed`` from its recorded decisions, as its job did (a fresh process,
    one thread), saving the model to ``output``."""
    from imgclf.core import runtime

    run = RunLayout(workdir)
    training = json.loads(run.final_metrics(seed).read_text())
    runtime.configure(seed, int(training.get("runtime", {}).get("intra_op_threads", 1)))
    from imgclf.core.config import validate_config
    from imgclf.training.files import RunFiles, TrainingInputs
    from imgclf.training.run import run_training

    config = validate_config(training["decisions"]["config"], source=str(run.final_metrics(seed)))
    fold = training["fold"]
    inputs = TrainingInputs(run.index, run.fold_manifest(fold, "train"), run.fold_manifest(fold, "val"),
                            _data_root(config, workdir))
    work = output.parent
    files = RunFiles(history=work / "history.csv", best_weights=work / "best.weights.h5",
                     weight_samples=work / "weight_samples.npz", resume_dir=work / "resume", model=output)
    run_training(config, inputs, files, int(training["batch_size"]))


def check_retrain(workdir: Path, seed: int, scratch: Path) -> Check:
    """A final model retrained in a fresh process, weight for weight against the pulled one."""
    import numpy as np

    artifact = f"final model seed {seed} retrained"
    run = RunLayout(workdir)
    pulled = run.final_model(seed)
    if not pulled.is_file():
        known = sorted(p.parent.name.removeprefix("seed_") for p in run.final.glob("seed_*/model.keras"))
        hint = f"the final seeds here are {', '.join(known)}" if known else "dvc pull?"
        return Check(MISSING, artifact, f"{pulled} is absent ({hint})")
    output = scratch / f"retrain_{seed}" / "model.keras"
    output.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "imgclf.verify", "--retrain-worker", str(seed), str(output),
                             "--directory", str(workdir)], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not output.is_file():
        return Check(DIFFER, artifact, f"the retraining failed: {(result.stderr or result.stdout)[-800:]}")
    from imgclf.training.predict import load_model

    old, new = load_model(pulled).get_weights(), load_model(output).get_weights()
    if len(old) != len(new) or any(a.shape != b.shape for a, b in zip(old, new)):
        return Check(DIFFER, artifact, "the retrained model has another architecture")
    largest = max((float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0) for a, b in zip(old, new))
    if all(np.array_equal(a, b) for a, b in zip(old, new)):
        return Check(MATCH, artifact, f"weights identical ({len(old)} arrays, "
                                      f"{sum(a.size for a in old):,} values)")
    training = json.loads(run.final_metrics(seed).read_text())
    return Check(DIFFER, artifact, f"weights differ (largest difference {largest:.3g}); cause: "
                                   + "; ".join(retrain_difference_causes(training)))


def retrain_difference_causes(training: dict[str, Any]) -> list[str]:
    """Why a retraining's weights can differ from the pulled model's, from what the training's
    record supports: a resumed training, another package version, CPU, GPU or thread count
    than the job that trained it. ``["unknown ..."]`` when the record shows none of them."""
    from imgclf.core.environment import cpu_model, package_versions

    causes = []
    resumed = training.get("resumed") or (training.get("decisions") or {}).get("resumed")
    if resumed:
        causes.append(f"the recorded training resumed after an interruption ({_describe_resume(resumed)}); "
                      "a resumed run continues from saved state, an uninterrupted retraining does not")
    recorded = training.get("runtime") or {}
    installed = package_versions()
    here = {"tensorflow": installed.get("tensorflow") or installed.get("tensorflow-cpu"),
            "keras": installed.get("keras"), "numpy": installed.get("numpy")}
    for package in ("tensorflow", "keras", "numpy"):
        if recorded.get(package) and here.get(package) and recorded[package] != here[package]:
            causes.append(f"{package} {recorded[package]} trained it, {here[package]} here")
    if recorded.get("cpu") and recorded["cpu"] != cpu_model():
        causes.append(f"it was trained on CPU {recorded['cpu']!r}, this is {cpu_model()!r}")
    if recorded.get("gpus"):
        causes.append(f"it was trained on GPU ({', '.join(recorded['gpus'])}), retrained here on the CPU")
    return causes or ["unknown: the record shows the same packages, CPU and thread count, and no resume"]


def _describe_resume(resumed: Any) -> str:
    if isinstance(resumed, dict):
        return ", ".join(f"{k} {v}" for k, v in resumed.items())
    return str(resumed)


def environment_notes(workdir: Path) -> list[Check]:
    """Differences between this machine and the one recorded in the run's reproducibility record."""
    from imgclf.core.environment import hardware, package_versions
    from imgclf.core.io import read_json

    path = RunLayout(workdir).reproducibility
    record = read_json(path)
    if record is None:
        return [Check(NOTE, "environment", f"{path} is absent: nothing to compare")]
    now = package_versions()
    changed = [f"{k} {record['packages'].get(k)} recorded, {v} here" for k, v in now.items()
               if record["packages"].get(k) not in (None, v)]
    machine = hardware()
    # The machine that trained (a cluster node), else the one that made the record.
    trained = next(iter((record.get("training") or {}).values()), {}) or {}
    cpu = trained.get("cpu") or record["hardware"].get("cpu")
    if cpu != machine["cpu"]:
        changed.append(f"CPU {cpu!r} recorded, {machine['cpu']!r} here")
    if trained.get("gpus"):
        changed.append(f"the final models were trained on GPU ({', '.join(trained['gpus'])}): a retraining on this "
                       "machine's " + ("GPU" if machine["gpus"] else "CPU") + " can differ")
    resumed = {seed: how for seed, how in ((record.get("determinism") or {}).get("resumed") or {}).items() if how}
    if resumed:
        changed.append("the final trainings of seeds " + ", ".join(resumed) + " resumed after an interruption "
                       "(a retraining of them differs slightly)")
    commit = (record.get("git") or {}).get("commit")
    detail = "; ".join(changed) if changed else "same package versions and CPU model as recorded"
    return [Check(NOTE, "environment", detail + (f"; results made at commit {commit[:12]}" if commit else ""))]


def run_config(workdir: Path, config_path: Path | None) -> tuple[dict[str, Any], str]:
    """The config the results were made with, and where it was read: the config as run, kept in
    the run's reproducibility record, unless ``config_path`` names another on purpose.

    Raises:
        ImgclfError: Neither the record nor the named config exists.
    """
    from imgclf.core.config import load_config, validate_config
    from imgclf.core.io import read_json

    if config_path is not None:
        return load_config(config_path), f"{config_path} (--config)"
    path = RunLayout(workdir).reproducibility
    record = read_json(path)
    if record is None or "config" not in record:
        raise ImgclfError(f"{path} is absent: it holds the config the results were made with",
                          "run `dvc pull` (or the pipeline's report stage), or name the config the run "
                          "used with --config")
    return validate_config(record["config"], source=str(path)), f"{path} (the config as run)"


def verify(workdir: Path, config_path: Path | None = None, retrain: list[int] | None = None) -> list[Check]:
    """Every check, in pipeline order, against the config the run was made with (:func:`run_config`)."""
    from imgclf.final import final_seeds

    config, source = run_config(workdir, config_path)
    checks: list[Check] = [Check(NOTE, "config", f"read from {source}")]
    with tempfile.TemporaryDirectory(prefix="imgclf-verify-") as scratch:
        scratch_path = Path(scratch)
        checks += check_manifests(config, workdir, scratch_path)
        from imgclf.core import runtime

        runtime.configure(config["seed"], 1)  # before TensorFlow is imported
        for seed in retrain or []:
            checks.append(check_retrain(workdir, seed, scratch_path))
        checks += check_models(config, workdir, final_seeds(config))
    return checks + environment_notes(workdir)


def format_checks(checks: list[Check]) -> str:
    verdicts = [c for c in checks if c.status != NOTE]
    bad = [c for c in verdicts if c.status != MATCH]
    head = (f"imgclf verify: {len(verdicts)} artifacts checked, "
            + ("all match" if not bad else f"{len(bad)} do NOT match"))
    return "\n".join([head] + [f"  {c.status:<8}{c.artifact}: {c.detail}" for c in checks])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", default=".", help="the project folder (default: the current one)")
    parser.add_argument("--config", help="check against this config instead of the one the run was made with "
                                          "(default: the config as run, from results/report/reproducibility.json)")
    parser.add_argument("--retrain", type=int, action="append", metavar="SEED",
                        help="also retrain this final seed and compare its weights (repeatable)")
    parser.add_argument("--json", help="also write the checks to this JSON file")
    parser.add_argument("--retrain-worker", nargs=2, metavar=("SEED", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir = Path(args.directory).resolve()
    if args.retrain_worker:
        retrain_worker(workdir, int(args.retrain_worker[0]), Path(args.retrain_worker[1]))
        return 0
    config_path = workdir / args.config if args.config else None
    if not RunLayout(workdir).results.is_dir():
        print(f"imgclf verify: {RunLayout(workdir).results} is absent: run `dvc pull` (or the pipeline) first",
              file=sys.stderr)
        return 2
    try:
        checks = verify(workdir, config_path, args.retrain)
    except ImgclfError as error:
        print(f"imgclf verify: {error}", file=sys.stderr)
        return 2
    print(format_checks(checks))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(c) for c in checks], indent=2) + "\n", encoding="utf-8")
    return 0 if all(c.status in (MATCH, NOTE) for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
