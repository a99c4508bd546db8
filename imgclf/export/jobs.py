"""The export stage's jobs that need no TensorFlow: what their scripts call (one function per rule).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgclf.core.io import read_json, sha256_file
from imgclf.export.card import build_model_card, model_card_markdown


def model_card(model: str | Path, deployed: str | Path, evaluation: str | Path, split: str | Path,
               validation: str | Path, audit_data: str | Path, audit_groups: str | Path, carbon: str | Path,
               export: str | Path | None, intended_use: str, limitations: Sequence[str],
               log: logging.Logger) -> dict[str, Any]:
    """Rule model_card: the model card of the deployed model (details, intended use, data, metrics
    with intervals, per-group results, carbon, export, limitations).

    Args:
        model, deployed: The deployed model and its record.
        evaluation, split, validation, audit_data, audit_groups, carbon: The run's summaries.
        export: The export's measurements (None when ``export.enabled`` is false).
        intended_use, limitations: ``export.intended_use`` and ``export.limitations``.
        log: The job's logger.

    Returns:
        ``markdown`` and ``card``.
    """
    card = build_model_card(
        read_json(deployed), str(model), sha256_file(model), Path(model).stat().st_size, read_json(evaluation),
        read_json(split), read_json(validation), read_json(audit_data), read_json(audit_groups), read_json(carbon),
        read_json(export) if export else None, intended_use, list(limitations),
        datetime.datetime.now(datetime.UTC).date().isoformat())
    log.info("model card of seed %d: %d limitations listed", card["model_details"]["deployed_seed"],
             len(card["limitations"]))
    return {"markdown": model_card_markdown(card), "card": card}
