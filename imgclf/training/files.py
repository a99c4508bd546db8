"""What a training job reads and writes, as the rules declare it (no TensorFlow here).

Every training rule (exploration points, tuning, final trainings) names its inputs ``index``,
``train``, ``val``, ``data_root`` and, with ``train.batch_size: auto``, ``batch_size`` (the
probe's choice); :meth:`TrainingInputs.of` and :func:`resolve_batch_size` read them the same
way for all. Nothing here builds a path: the rules declare them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf.core.errors import ImgclfError


@dataclass
class TrainingInputs:
    """The files a training run reads."""

    index: Path
    train_manifest: Path
    val_manifest: Path
    data_root: Path

    @classmethod
    def of(cls, inputs: Mapping[str, Any]) -> "TrainingInputs":
        """From a rule's named inputs ``index``, ``train``, ``val`` and ``data_root``."""
        return cls(Path(inputs["index"]), Path(inputs["train"]), Path(inputs["val"]), Path(inputs["data_root"]))


@dataclass
class RunFiles:
    """Where a run writes (declared by the rule, never built here)."""

    history: Path
    best_weights: Path
    weight_samples: Path
    resume_dir: Path
    tensorboard_dir: Path | None = None
    model: Path | None = None  # the whole model (.keras) with its best weights, when wanted

    @classmethod
    def of(cls, outputs: Mapping[str, Any], params: Mapping[str, Any]) -> "RunFiles":
        """From a rule's outputs ``history``, ``best_weights``, ``weight_samples`` (and ``model``
        when it has one) and its params ``resume_dir`` and ``tensorboard_dir``."""
        model = outputs["model"] if "model" in _names(outputs) else None
        return cls(history=Path(outputs["history"]), best_weights=Path(outputs["best_weights"]),
                   weight_samples=Path(outputs["weight_samples"]), resume_dir=Path(params["resume_dir"]),
                   tensorboard_dir=Path(params["tensorboard_dir"]), model=Path(model) if model else None)


def _names(named: Mapping[str, Any]) -> list[str]:
    """The names of a mapping, or of Snakemake's named lists (which are not mappings)."""
    keys = getattr(named, "keys", None)
    return list(keys()) if callable(keys) else []


def resolve_batch_size(setting: int | str, probe_file: str | Path | None) -> int:
    """The batch size a training uses: ``train.batch_size``, or the probe's choice when it is auto.

    Args:
        setting: ``train.batch_size`` (a number, or ``auto``).
        probe_file: The probe's record (rule probe_batch_size's output), read when ``auto``.

    Raises:
        ImgclfError: ``auto`` without the probe's record.
    """
    if setting != "auto":
        return int(setting)
    if not probe_file or not Path(probe_file).is_file():
        raise ImgclfError("train.batch_size is auto, but the batch-size probe's record is missing"
                          + (f" ({probe_file})" if probe_file else ""),
                          "run the probe first (snakemake explore), or set train.batch_size to a number")
    return int(json.loads(Path(probe_file).read_text(encoding="utf-8"))["chosen"])
