"""The explore stage's TensorFlow jobs: what their scripts call (one function per rule).

Each configures TensorFlow (:func:`imgclf.core.runtime.configure`: seed, threads, determinism)
before importing it: keep TensorFlow imports inside the functions.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any


from imgclf.carbon import track_emissions
from imgclf.core import runtime
from imgclf.core.io import read_index
from imgclf.core.job import JobResources
from imgclf.training.files import RunFiles, TrainingInputs, resolve_batch_size


def probe_batch_size(config: dict[str, Any], index: str | Path, train: str | Path, resources: JobResources,
                     emissions: str | Path, record: str | Path, log: logging.Logger) -> dict[str, Any]:
    """Rule probe_batch_size: training throughput per batch size, and the size chosen.

    A pick is measured once: the record kept from an earlier probe (``batch_probe.record``) is
    reused when it was probed for the same settings (:func:`imgclf.explore.probe.probe_settings`),
    so that a rerun on a loaded machine, or a reviewer's rerun, cannot pick another size.

    Args:
        config: The validated config (``seed``, ``data``, ``model``, ``train``, ``batch_probe``).
        index: The index; train: the training manifest the epochs are counted on.
        resources: The job's threads and CPUs. emissions: its emissions record.
        record: ``batch_probe.record``, the kept pick (read when it exists).
        log: The job's logger.

    Returns:
        ``batch_size``: the measurements, the choice and the runtime settings; ``record``: what
        ``batch_probe.record`` keeps (the kept record itself when it was reused).

    Raises:
        ImgclfError: The kept record is not valid JSON.
    """
    from imgclf.core.errors import ImgclfError
    from imgclf.core.io import read_json
    from imgclf.explore.probe import kept_pick_mismatch, probe_settings

    try:
        kept = read_json(record)
    except ValueError as error:
        raise ImgclfError(f"{record} (batch_probe.record) is not the probe's JSON record: {error}",
                          "delete it to probe again, or restore it from version control") from None
    table = read_index(index)
    wanted = probe_settings(config, table, len(read_index(train)))
    if kept is not None:
        mismatch = kept_pick_mismatch(kept, wanted)
        if mismatch is None:
            log.warning("train.batch_size auto: reusing batch size %d from %s (probed on %s, %s); results depend "
                        "on that pick, not on this machine's speed. Delete %s to probe again",
                        kept["chosen"], record, kept.get("device", "?"), kept.get("probed_at", "?"), record)
            return {"batch_size": {**kept, "reused_from": str(record)}, "record": kept}
        log.warning("%s was probed for other settings (%s): probing again and replacing it", record, mismatch)
    with track_emissions(emissions, "explore", "batch_size_probe", config["carbon"], log):
        settings = runtime.configure(config["seed"], resources.threads, resources.cpus)
        from imgclf.explore.probe import probe_batch_sizes
        from imgclf.training.models import build_model

        n_classes, shape = wanted["n_classes"], tuple(wanted["input_shape"])
        probe = config["batch_probe"]
        runtime.set_precision(config["train"]["mixed_precision"], settings["gpus"], log)
        result = probe_batch_sizes(lambda: build_model(config["model"], n_classes, shape), shape, n_classes,
                                   probe["sizes"], probe["steps"], probe["min_gain"], wanted["n_train"],
                                   config["train"], probe["min_steps_per_epoch"], log)
        result["runtime"] = settings
    result.update(probed_for=wanted, probed_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  hardware_dependent=True)
    log.warning("train.batch_size auto: chose batch size %d by timing on %s; results now depend on this "
                "hardware. Kept in %s (commit it): reruns and reviewers reuse it instead of probing again",
                result["chosen"], result.get("device", "?"), record)
    return {"batch_size": result, "record": result}


def explore_point(config: dict[str, Any], study: str, point: str, overrides: dict[str, Any], label: str,
                  inputs: TrainingInputs, files: RunFiles, batch_size_file: str | Path | None, resources: JobResources,
                  carbon: dict[str, Any], emissions: str | Path, log: logging.Logger) -> dict[str, Any]:
    """Rule explore_point: one training run of a study's point.

    Args:
        config: The point's config (the study's fixed and the point's values applied).
        study, point: The point's study and id (``p00``...). overrides, label: its values.
        inputs: The exploration fold. files: Where the run writes as it trains.
        batch_size_file: The probe's record (with ``train.batch_size: auto``).
        resources, carbon, emissions: The job's threads, CPUs and memory, the carbon settings, its
            emissions record.
        log: The job's logger.

    Returns:
        ``curves``, ``weight_histograms`` and ``metrics`` (last).
    """
    with track_emissions(emissions, "explore", f"{study}/{point}", carbon, log):
        settings = runtime.configure(config["seed"], resources.threads, resources.cpus)
        from imgclf.training.run import run_outputs, run_training

        batch_size = resolve_batch_size(config["train"]["batch_size"], batch_size_file)
        log.info("%s (batch size %d)", label, batch_size)
        metrics = run_training(config, inputs, files, batch_size, log, resources.memory_mb)
    metrics.update(study=study, point=point, overrides=overrides, runtime=settings)
    return run_outputs(metrics, files, f"{study}/{point}: {label}", point, log)
