"""The report stage in the pipeline run: the HTML report, in a browser too, and the record."""

import json
import shutil

import pytest

from conftest import run_snakemake

pytestmark = pytest.mark.workflow


def test_the_reproducibility_record_names_everything_a_rerun_needs(pipeline_run):
    import hashlib

    workdir, _, _ = pipeline_run
    record = json.loads((workdir / "results/report/reproducibility.json").read_text())
    assert record["seeds"] == {"seed": 42, "final": [42, 43], "folds": {"42": 0, "43": 1}}
    for path, digest in record["manifests_sha256"].items():
        assert hashlib.sha256((workdir / path).read_bytes()).hexdigest() == digest, path
    assert set(record["manifests_sha256"]) >= {"results/data/index.csv", "results/split/fold_1/val.csv"}
    evaluation = json.loads((workdir / "results/evaluate/seed_42/metrics.json").read_text())
    assert record["test_manifest_sha256"] == evaluation["test_manifest_sha256"]
    assert record["determinism"]["op_determinism"] is True and record["determinism"]["inter_op_threads"] == 1
    assert record["packages"]["tensorflow-cpu"] == "2.21.0" and record["hardware"]["cores"] >= 1
    assert len(record["config_sha256"]) == 64 and record["config"]["final"]["n_seeds"] == 2
    assert "commit" in record["git"]


REPORT_SECTIONS = ("summary", "config", "data", "split", "exploration", "tuning", "training", "test", "audit",
                   "carbon", "deployment", "drift", "environment")


def report_sections(page: str) -> dict[str, str]:
    parts = page.split('<section id="')[1:]
    return {part.split('"', 1)[0]: part.split("</section>", 1)[0] for part in parts}


def test_the_html_report_holds_every_section_of_the_run(pipeline_run):
    workdir, config, _ = pipeline_run
    page = (workdir / "results/report/report.html").read_text()
    sections = report_sections(page)
    assert tuple(sections) == REPORT_SECTIONS
    for name, body in sections.items():
        assert "not produced" not in body and len(body) > 200, name
    summary = json.loads((workdir / "results/evaluate/summary.json").read_text())
    assert f"{summary['aggregate']['accuracy']['mean']:.4g}" in sections["summary"]
    assert "Next action" in sections["summary"] and "NOT all met" in sections["summary"]
    assert "<code>" in sections["config"] and "leak check" in sections["split"]
    assert "Which optimizer?" in sections["exploration"] and "Best:" in sections["exploration"]
    assert "bayesian search, 2 trials" in sections["tuning"]
    # The objective follows the first target (accuracy), and says so where each choice is shown.
    assert "Ranked by</b> val_accuracy (the first target computable on validation data" in sections["exploration"]
    assert "objective val_accuracy (the first target computable" in sections["tuning"]
    assert "best checkpoint watched val_loss" in sections["training"]
    assert "median_validation by val_accuracy" in sections["summary"]
    assert sections["training"].count("<details") == 2 and "Next action" in sections["training"]
    assert "ece &lt;= 0.0" in sections["test"] and "Misclassified" in sections["test"]
    assert "Operating thresholds" in sections["test"] and "sensitivity &gt;= 0.6" in sections["test"]
    agreed = summary["agreed_errors"]
    assert ("Images every model gets wrong" in sections["test"]) == (agreed["count"] > 0)
    for image in agreed["images"][:3]:
        assert image["path"] in sections["test"]
    assert "image:brightness" in sections["audit"] and "Cramér" in sections["audit"]
    assert "world average" in sections["carbon"] and "tensorflow-cpu" in sections["environment"]
    assert "TFLite int8" in sections["deployment"] and "Limitations" in sections["deployment"]
    assert "make monitor BATCH=" in sections["drift"]  # no batch monitored yet: how to
    assert page.count('<img src="data:image/png;base64,') >= 14  # figures embedded: one self-contained file
    assert "http://" not in page and "https://" not in page


def test_the_html_report_opens_in_headless_chromium(pipeline_run, tmp_path):
    """Every image loads and the console stays clean, in Debian's chromium (installed by .ci/run)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium; apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements/lock.txt")
    report = pipeline_run[0] / "results/report/report.html"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        messages = []
        page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        headings = page.evaluate("Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 14 and all(loaded for _, loaded in images), [alt for alt, ok in images if not ok]
    assert messages == []
    assert headings[0] == "At a glance" and headings[-1] == "Environment" and len(headings) == len(REPORT_SECTIONS)
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_snakemake_report_includes_the_pipeline_outputs(pipeline_run, tmp_path):
    workdir, config, _ = pipeline_run
    target = tmp_path / "snakemake_report.html"
    result = run_snakemake(workdir, "--configfile", str(config), "--report", str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    text = target.read_text()
    for category in ("0. Report", "1. Data", "4. Final trainings", "5. Test evaluation", "6. Bias audit",
                     "7. Carbon and water"):
        assert category in text, category
    assert "report.html" in text and "sample_images.png" in text
