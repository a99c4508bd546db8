"""The report stage's jobs: what its scripts call (one function per rule)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from imgclf.core.environment import git_state, hardware, package_versions
from imgclf.core.io import read_index, read_json
from imgclf.report.gallery import confident_mistakes, plot_class_samples, plot_mistakes, sample_per_class
from imgclf.report.page import build_report
from imgclf.report.reproducibility import reproducibility_record as build_record


def report_galleries(train: str | Path, predictions: str | Path, deployed: str | Path, data_root: str | Path,
                     settings: dict[str, Any], seed: int, log: logging.Logger) -> dict[str, Any]:
    """Rule report_galleries: sample images of each class, and the deployed model's most confident
    mistakes on the test set.

    Args:
        train: The training manifest the samples are drawn from.
        predictions: The deployed model's test predictions.
        deployed: The deployed model's record (which seed). data_root: The images' folder.
        settings: The ``report`` config section. seed: The experiment's seed (the draw).
        log: The job's logger.

    Returns:
        ``samples_plot`` and ``mistakes_plot``.
    """
    samples = sample_per_class(read_index(train), settings["samples_per_class"], seed)
    card = read_json(deployed)
    chosen = f"ensemble of {len(card['members'])}" if card.get("members") else f"seed {card['chosen']['seed']}"
    table = pd.read_csv(predictions, dtype={"label": str, "predicted": str, "path": str})
    mistakes = confident_mistakes(table, settings["mistakes"])
    n_wrong = int((table["label"] != table["predicted"]).sum())
    log.info("%d sample images; %d of %d mistakes shown", len(samples), len(mistakes), n_wrong)
    return {"samples_plot": plot_class_samples(samples, data_root, settings["samples_per_class"]),
            "mistakes_plot": plot_mistakes(mistakes, data_root,
                                           f"Deployed model ({chosen}): {len(mistakes)} of its {n_wrong} "
                                           f"mistakes on {len(table)} test images, most confident first")}


def report_html(inputs: Mapping[str, Any], config: dict[str, Any], workflow_dir: str | Path,
                log: logging.Logger, config_origin: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rule report_html: the whole run as one self-contained HTML page.

    Args:
        inputs: Every file the page shows, by name (single paths, or lists in study or seed order).
        config: The validated config. workflow_dir: The workflow's folder (its git commit is shown).
        log: The job's logger.
        config_origin: The config files and the keys they set (the rest are the schema's defaults).

    Returns:
        ``environment`` (packages, hardware, git state, the config's origin) and ``html``.
    """
    environment = {"packages": package_versions(), "hardware": hardware(), "git": git_state(workflow_dir),
                   "config_origin": config_origin}
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = build_report(inputs, config, environment, generated)
    log.info("report: %.0f kB", len(page) / 1024)
    return {"environment": environment, "html": page}


def reproducibility_record(config: dict[str, Any], index: str | Path, manifests: Sequence[str],
                           finals: Sequence[str], evaluations: Sequence[str], workflow_dir: str | Path,
                           log: logging.Logger, config_origin: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rule reproducibility_record: config and its hash, seeds, manifests' hashes, determinism
    settings, packages, hardware and the git commit (what a reviewer needs to rerun the run), and
    where the config came from with the keys it set (``config_origin``).

    Returns:
        ``record``.
    """
    record = build_record(config, [index, *manifests], [read_json(p) for p in finals],
                          [read_json(p) for p in evaluations], workflow_dir)
    record["config_origin"] = config_origin
    log.info("config %s, %d manifests, git %s", record["config_sha256"][:12], len(record["manifests_sha256"]),
             (record["git"].get("commit") or "none")[:12])
    return {"record": record}
