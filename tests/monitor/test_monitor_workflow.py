"""The monitoring stage after the pipeline run: drift of new batches, bad batches."""

import json
import shutil
from pathlib import Path

import yaml
from PIL import Image

from conftest import jobs_run, run_snakemake, save, write_bad_file

import pytest

pytestmark = pytest.mark.workflow


def digit_batch(workdir: Path, folder: Path, paths: list[str], labels: list[str] | None, brighten: int = 0) -> Path:
    """Copies of digits images, flat (unlabelled) or in class folders, optionally brightened."""
    import numpy as np

    for i, path in enumerate(paths):
        image = Image.open(workdir / "results/data/digits" / path)
        if brighten:
            image = Image.fromarray(np.clip(np.asarray(image).astype(int) + brighten, 0, 255).astype("uint8"))
        target = folder / (labels[i] if labels else "") / f"{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target)
    return folder


def test_monitoring_new_batches_reports_drift_and_recommends(pipeline_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    # New images like the training data, that no model saw: held-out test images, every third
    # (the manifest is sorted by class).
    rows = [line.split(",") for line in (workdir / "results/split/test.csv").read_text().splitlines()[1:]]
    same = digit_batch(workdir, tmp_path / "same", [r[0] for r in rows[::3][:120]], None)
    bright = digit_batch(workdir, tmp_path / "bright", [r[0] for r in rows[1::3][:100]],
                         [r[2] for r in rows[1::3][:100]], brighten=70)
    # Images of another size and mode are read like any image, and reported.
    colour = tmp_path / "colour"
    for i, row in enumerate(rows[2::9][:40]):
        image = Image.open(workdir / "results/data/digits" / row[0]).convert("RGB").resize((24, 24))
        save(image, colour / f"{i:02d}.png")
    monitor = workdir / "monitor.yaml"
    monitor.write_text(yaml.safe_dump({"monitor": {"alpha": 0.01, "permutations": 200, "batches": {
        "same": {"path": str(same)}, "bright": {"path": str(bright)}, "colour": {"path": str(colour)}}}}))
    # As `make monitor` does: the batches, and the report that shows them.
    result = run_snakemake(workdir, "monitor", "report", "--configfile", str(pipeline_run[1]), str(monitor))
    assert result.returncode == 0, result.stderr[-4000:]
    steady = json.loads((workdir / "results/monitor/same/drift.json").read_text())
    assert steady["n_images"] == 120 and steady["n_labelled"] == 0
    assert steady["recommendation"]["action"] == "no action", steady["drifting"]
    shifted = json.loads((workdir / "results/monitor/bright/drift.json").read_text())
    assert "images" in shifted["drifting"] and shifted["recommendation"]["action"] != "no action"
    assert shifted["signals"]["images"]["tests"]["brightness"]["batch_median"] > \
        shifted["signals"]["images"]["tests"]["brightness"]["reference_median"]
    assert shifted["signals"]["performance"]["n"] == 100 and shifted["outliers"]["share"] > 0.5
    for name in ("drift.md", "drift.png", "images.csv"):
        assert (workdir / "results/monitor/bright" / name).stat().st_size > 0
    other = json.loads((workdir / "results/monitor/colour/drift.json").read_text())
    assert {f["code"] for f in other["findings"]} == {"new_image_mode", "new_image_size"}
    assert other["signals"]["images"]["tests"]["mode"]["batch_share"] == {"L": 0.0, "RGB": 1.0}
    assert "images" in other["drifting"] and other["n_images"] == 40
    assert "batch bright (100 images): drift in" in result.stderr
    html = (workdir / "results/report/report.html").read_text()
    assert "Batch same: 120 images" in html and "Batch bright: 100 images (100 labelled)" in html
    # A batch that changed is monitored again; the others are not.
    (same / "000.png").unlink()
    result = run_snakemake(workdir, *(f"results/monitor/{name}/drift.json" for name in ("same", "bright", "colour")),
                           "--configfile", str(pipeline_run[1]), str(monitor))
    assert result.returncode == 0 and jobs_run(result.stderr) == {"monitor_batch"}
    assert json.loads((workdir / "results/monitor/same/drift.json").read_text())["n_images"] == 119


def test_bad_batches_are_refused_as_in_data_validation(pipeline_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(pipeline_run[0], workdir, symlinks=True)
    rows = [line.split(",") for line in (workdir / "results/split/fold_1/val.csv").read_text().splitlines()[1:]]
    broken = digit_batch(workdir, tmp_path / "broken", [r[0] for r in rows[:5]], None)
    write_bad_file(broken / "scan.jpg", "truncated.jpg")
    (tmp_path / "empty").mkdir()
    names = ("broken", "empty", "missing")
    monitor = workdir / "monitor.yaml"
    monitor.write_text(yaml.safe_dump({"monitor": {"batches": {name: {"path": str(tmp_path / name)}
                                                               for name in names}}}))
    result = run_snakemake(workdir, "--keep-going", *(f"results/monitor/{name}/drift.json" for name in names),
                           "--configfile", str(pipeline_run[1]), str(monitor))
    assert result.returncode != 0
    for message in ("batch 'broken'", "scan.jpg", "truncated", "monitor.on_bad_file: drop",
                    "batch 'empty'", "holds no image", "batch 'missing'", "does not exist",
                    "monitor.batches.missing.path"):
        assert message in result.stderr, (message, result.stderr[-3000:])
    for name in names:
        assert not (workdir / f"results/monitor/{name}/drift.json").exists()
    # Dropping bad files monitors the rest, and says what was left out.
    monitor.write_text(yaml.safe_dump({"monitor": {"on_bad_file": "drop",
                                                   "batches": {"broken": {"path": str(broken)}}}}))
    result = run_snakemake(workdir, "results/monitor/broken/drift.json", "--configfile", str(pipeline_run[1]),
                           str(monitor))
    assert result.returncode == 0, result.stderr[-3000:]
    assert jobs_run(result.stderr) == {"monitor_batch"}  # monitoring settings never touch the trained models
    report = json.loads((workdir / "results/monitor/broken/drift.json").read_text())
    assert report["n_images"] == 5 and report["dropped"][0]["path"] == "scan.jpg"
    # No batch configured: the monitor target says how to name one.
    result = run_snakemake(workdir, "monitor", "--configfile", str(pipeline_run[1]))
    assert result.returncode != 0 and "make monitor BATCH=" in result.stderr
