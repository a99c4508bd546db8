"""The reproducibility record of a run (rule reproducibility_record): everything a
reviewer needs to rerun it and to explain a difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgclf.core.environment import git_state, hardware, package_versions
from imgclf.core.config import config_sha256
from imgclf.core.io import sha256_file


def reproducibility_record(config: dict[str, Any], manifests: list[str | Path], finals: list[dict[str, Any]],
                           evaluations: list[dict[str, Any]], workflow_dir: str | Path) -> dict[str, Any]:
    """The record: config and its hash, seeds, manifests' hashes, packages, hardware,
    TensorFlow's determinism settings, the git commit.

    Args:
        config: The validated config.
        manifests: The index and the train/validation manifests (their SHA-256 are recorded;
            the test manifest's comes from the evaluations, which alone read it).
        finals: Each final training's ``metrics.json``.
        evaluations: Each test evaluation's ``metrics.json``.
        workflow_dir: The workflow's folder (its git commit is recorded).
    """
    hashes = {str(p): sha256_file(p) for p in manifests}
    tests = sorted({e["test_manifest_sha256"] for e in evaluations})
    runtime = finals[0].get("runtime", {}) if finals else {}
    effective = {str(f["seed"]): (f.get("decisions") or {}).get("effective") or {} for f in finals}
    probed = any(e.get("batch_size_from") == "probe" for e in effective.values())
    note = "same config and seed on CPU with these settings give identical weights"
    if probed:
        note += ("; the batch size was picked by timing on the hardware that probed (batch_probe.record): "
                 "these results depend on that pick, which reruns reuse from that file")
    return {
        "config": config,
        "config_sha256": config_sha256(config),
        "seeds": {"seed": config["seed"], "final": [f["seed"] for f in finals],
                  "folds": {str(f["seed"]): f["fold"] for f in finals}},
        "manifests_sha256": hashes,
        # As the evaluations recorded it: only they read the test manifest.
        "test_manifest_sha256": tests[0] if len(tests) == 1 else tests,
        "decisions_sha256": {str(f["seed"]): f["decisions_sha256"] for f in finals},
        "determinism": {"op_determinism": runtime.get("op_determinism"),
                        "intra_op_threads": runtime.get("intra_op_threads"),
                        "inter_op_threads": runtime.get("inter_op_threads"),
                        "batch_size": {seed: e.get("batch_size") for seed, e in effective.items()},
                        "batch_size_from": "probe" if probed else "config",
                        "resumed": {str(f["seed"]): f.get("resumed") for f in finals},
                        "note": note},
        # Where each final model was trained (its job's record), and where this record was made.
        "training": {str(f["seed"]): {k: f.get("runtime", {}).get(k) for k in
                                      ("host", "cpu", "gpus", "tensorflow", "keras", "numpy", "cuda_visible_devices",
                                       "input_threads")}
                                   | {"devices": f.get("devices"), "cache": (f.get("cache") or {}).get("mode")}
                     for f in finals},
        "packages": package_versions(),
        "hardware": hardware(),
        "git": git_state(workflow_dir),
    }
