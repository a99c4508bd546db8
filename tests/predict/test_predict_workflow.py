"""The predict stage after the pipeline run: new images classified by the deployed model, a TFLite
file or the ensemble, through Snakemake, make's target and python -m imgclf.predict."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from conftest import REPO, jobs_run, run_snakemake, save, write_bad_file

import pytest

pytestmark = pytest.mark.workflow


def copy_run(pipeline_run, tmp_path: Path) -> Path:
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    return workdir


def test_predictions_of_the_test_images_equal_the_evaluation_and_tflite_agrees(pipeline_run, tmp_path):
    workdir = copy_run(pipeline_run, tmp_path)
    predict = workdir / "predict.yaml"
    # The sealed test manifest as a batch: its paths are relative to the data folder.
    batch = {"path": str(workdir / "results/split/test.csv"), "root": str(workdir / "results/data/digits")}
    predict.write_text(yaml.safe_dump({"predict": {"chunk_images": 50, "batches": {"test": batch}}}))
    result = run_snakemake(workdir, "predict", "--configfile", str(pipeline_run[1]), str(predict))
    assert result.returncode == 0, result.stderr[-4000:]
    assert jobs_run(result.stderr) == {"predict_batch", "predict_summary", "predict"}  # no model trained again
    predictions = pd.read_csv(workdir / "results/predict/test/predictions.csv", dtype={"label": str, "predicted": str})
    evaluation = pd.read_csv(workdir / "results/evaluate/deployed/predictions.csv",
                             dtype={"label": str, "predicted": str})
    merged = predictions.merge(evaluation, on="path", suffixes=("", "_evaluation"))
    assert len(merged) == len(evaluation) == len(predictions)
    assert (merged["predicted"] == merged["predicted_evaluation"]).all()
    columns = [c for c in predictions if c.startswith("p_")]
    assert len(columns) == 10
    assert np.abs(merged[columns].to_numpy() - merged[[c + "_evaluation" for c in columns]].to_numpy()).max() <= 2e-6
    assert list(predictions["path"]) == sorted(predictions["path"])
    summary = json.loads((workdir / "results/predict/test/predict.json").read_text())
    card = json.loads((workdir / "results/evaluate/deployed/model.json").read_text())
    assert summary["model"]["kind"] == "deployed" and summary["model"]["sha256"] == card["sha256"]
    assert summary["labelled"]["accuracy"] == pytest.approx(card["test"]["accuracy"], abs=1e-6)
    assert summary["n_images"] == len(evaluation) and summary["images_per_second"] > 0
    assert "images predicted: 50/" in result.stderr  # progress after each chunk
    assert "| test | " in (workdir / "results/predict/summary.md").read_text()
    # The TFLite float32 file answers as the Keras model does; the evaluation is not touched.
    predict.write_text(yaml.safe_dump({"predict": {"model": "float32", "batches": {"test": batch}}}))
    result = run_snakemake(workdir, "predict", "--configfile", str(pipeline_run[1]), str(predict))
    assert result.returncode == 0, result.stderr[-4000:]
    assert jobs_run(result.stderr) == {"predict_batch", "predict_summary", "predict"}
    lite = pd.read_csv(workdir / "results/predict/test/predictions.csv", dtype={"label": str, "predicted": str})
    assert (lite["predicted"] == predictions["predicted"]).mean() >= 0.99
    assert np.abs(lite[columns].to_numpy() - predictions[columns].to_numpy()).max() < 1e-4
    assert json.loads((workdir / "results/predict/test/predict.json").read_text())["model"]["kind"] == "float32"


def test_make_predict_and_the_command_line_give_the_same_rows_and_report_converted_images(pipeline_run, tmp_path):
    workdir = copy_run(pipeline_run, tmp_path)
    rows = pd.read_csv(workdir / "results/split/test.csv", dtype=str)
    new = tmp_path / "new images"  # a space in the path
    for i, path in enumerate(rows["path"][:30]):
        image = Image.open(workdir / "results/data/digits" / path)
        if i < 5:  # another mode and size: converted and resized as in training, and said so
            image = image.convert("RGB").resize((24, 24))
        save(image, new / f"{i:03d}.png")
    make = subprocess.run(["make", "-C", str(REPO), f"BIN={Path(sys.executable).parent}", "predict",
                           f"IMAGES={new}", "NAME=new", "CORES=2", f"CONFIG={pipeline_run[1]}",
                           f"SNAKEMAKE_ARGS=--directory {workdir}"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONHASHSEED="0"))
    assert make.returncode == 0, (make.stdout + make.stderr)[-4000:]
    snakemade = (workdir / "results/predict/new/predictions.csv").read_text()
    summary = json.loads((workdir / "results/predict/new/predict.json").read_text())
    assert summary["n_images"] == 30 and "labelled" not in summary
    assert {f["code"] for f in summary["findings"]} == {"other_image_mode", "resized"}
    assert "5 image(s) are not grayscale" in make.stderr
    table = pd.read_csv(workdir / "results/predict/new/predictions.csv")
    assert list(table.columns[:4]) == ["path", "sha256", "predicted", "confidence"] and len(table) == 30
    output = tmp_path / "cli" / "predictions.csv"
    cli = subprocess.run([sys.executable, "-m", "imgclf.predict", str(new), "--results", str(workdir / "results"),
                          "--output", str(output)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert output.read_text() == snakemade
    assert json.loads(output.with_name("predict.json").read_text())["predicted"] == summary["predicted"]


def test_bad_batches_and_models_are_refused_with_what_to_do(pipeline_run, tmp_path):
    workdir = copy_run(pipeline_run, tmp_path)
    rows = pd.read_csv(workdir / "results/split/test.csv", dtype=str)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i, path in enumerate(rows["path"][:4]):
        shutil.copy(workdir / "results/data/digits" / path, broken / f"{i}.png")
    write_bad_file(broken / "scan.jpg", "truncated.jpg")
    (tmp_path / "empty").mkdir()
    predict = workdir / "predict.yaml"
    names = ("broken", "empty", "missing")
    predict.write_text(yaml.safe_dump({"predict": {"batches": {n: {"path": str(tmp_path / n)} for n in names}}}))
    result = run_snakemake(workdir, "--keep-going", *(f"results/predict/{n}/predictions.csv" for n in names),
                           "--configfile", str(pipeline_run[1]), str(predict))
    assert result.returncode != 0
    for message in ("batch 'broken'", "scan.jpg", "truncated", "predict.on_bad_file: drop", "batch 'empty'",
                    "holds no image", "batch 'missing'", "does not exist", "predict.batches.missing.path"):
        assert message in result.stderr, (message, result.stderr[-3000:])
    for name in names:  # nothing half-written under the final names
        assert not (workdir / f"results/predict/{name}").exists() or not any((workdir / f"results/predict/{name}").iterdir())
    predict.write_text(yaml.safe_dump({"predict": {"on_bad_file": "drop", "batches": {"broken": {"path": str(broken)}}}}))
    result = run_snakemake(workdir, "results/predict/broken/predictions.csv", "--configfile", str(pipeline_run[1]),
                           str(predict))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "results/predict/broken/predict.json").read_text())
    assert summary["n_images"] == 4 and summary["dropped"][0]["path"] == "scan.jpg"
    # A TFLite format the export does not make: refused when the workflow loads.
    predict.write_text(yaml.safe_dump({"export": {"formats": ["float32"]},
                                       "predict": {"model": "int8", "batches": {"broken": {"path": str(broken)}}}}))
    result = run_snakemake(workdir, "-n", "predict", "--configfile", str(pipeline_run[1]), str(predict))
    assert result.returncode != 0 and "predict.model is int8" in result.stderr and "export.formats" in result.stderr
    # No batch: the target says how to name one.
    result = run_snakemake(workdir, "predict", "--configfile", str(pipeline_run[1]))
    assert result.returncode != 0 and "make predict IMAGES=" in result.stderr
    # The command line: a TFLite file whose classes are not the card's; an ensemble never made.
    card = json.loads((workdir / "results/evaluate/deployed/model.json").read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**card, "classes": card["classes"][:3]}))
    cli = subprocess.run([sys.executable, "-m", "imgclf.predict", str(broken), "--on-bad-file", "drop",
                          "--model", str(workdir / "results/export/model_float32.tflite"), "--card", str(other),
                          "--output", str(tmp_path / "x.csv")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert cli.returncode == 1 and "gives 10 class probabilities, but its card names 3 classes" in cli.stderr
    assert not (tmp_path / "x.csv").exists()
    cli = subprocess.run([sys.executable, "-m", "imgclf.predict", str(broken), "--model", "ensemble",
                          "--results", str(workdir / "results"), "--output", str(tmp_path / "x.csv")],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert cli.returncode == 1 and "ensemble/model.keras does not exist" in cli.stderr, cli.stderr[-2000:]
