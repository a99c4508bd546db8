"""The saliency maps in the pipeline run: Grad-CAM of the deployed model on test images, the
border shares per class and audit group, the grid and the report's section."""

import json

import pandas as pd

from conftest import job_inputs

import pytest

pytestmark = pytest.mark.workflow


def test_the_deployed_model_is_explained_by_saliency_maps_in_the_report(pipeline_run):
    workdir, _, log = pipeline_run
    folder = workdir / "results/evaluate/saliency"
    result = json.loads((folder / "saliency.json").read_text())
    card = json.loads((workdir / "results/evaluate/deployed/model.json").read_text())
    assert result["method"] == "Grad-CAM" and result["model"] == f"seed {card['chosen']['seed']}"
    assert result["layer"] == "relu3"  # the small CNN's last convolution, after its activation
    assert [r["label"] for r in result["per_class"]] == card["classes"]
    assert 0.3 < result["uniform_border_share"] < 0.45
    shares = pd.read_csv(folder / "border_shares.csv", dtype={"label": str, "predicted": str})
    drawn = shares[shares["in_statistics"]]
    assert len(drawn) == result["n_images"] and drawn["border_share"].between(0, 1).all()
    # Stratified by class: every class of the test set in the statistics.
    assert set(drawn["label"]) == set(card["classes"])
    # Per audit group too (the digits' image slices, cut as the bias audit cuts them).
    assert result["per_group"] and all(records for records in result["per_group"].values())
    assert (folder / "gallery.png").stat().st_size > 10_000
    html = (workdir / "results/report/report.html").read_text()
    assert "What the model looks at (Grad-CAM)" in html and "border share" in html
    # It reads the deployed model's test predictions, never the test manifest.
    inputs = dict(job_inputs(log))["saliency_maps"]
    assert "results/evaluate/deployed/predictions.csv" in inputs and "results/split/test.csv" not in inputs
