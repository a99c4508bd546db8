"""The sealed test set (docs/practices.md section 3).

Once a final model has test metrics, its seal records the decisions it was
made from (config and manifests, see :func:`imgclf.final.plan.decisions`) and the
test manifest's hash. If those decisions change afterwards, looking at the
test set again would make it one more validation set: the final training
refuses to start, and the evaluation to run, unless
``evaluation.unseal_reason`` says why it is justified. Every evaluation is
appended to an event log, so that a re-evaluation is always on record.

Nothing here builds a path: the rules pass the seal file and the event log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from imgclf.core.errors import ImgclfError

from imgclf.core.io import json_sha256, write_json


class SealedTestError(ImgclfError):
    """A final model would be evaluated again after its decisions changed."""


def flatten(record: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (lists stay whole)."""
    if not isinstance(record, dict):
        return {prefix: record}
    flat: dict[str, Any] = {}
    for key, value in record.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changes(sealed: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dotted key whose value differs between two records."""
    before, after = flatten(sealed), flatten(current)
    return [{"key": key, "sealed": before.get(key), "now": after.get(key)}
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


def describe_changes(diff: list[dict[str, Any]], limit: int = 8) -> str:
    """Changes as ``key: old -> new`` lines (hashes shortened)."""
    def short(value: Any) -> str:
        text = json.dumps(value, default=str)
        return text[:19] + '…"' if len(text) > 24 and text.startswith('"') else text

    lines = [f"  {c['key']}: {short(c['sealed'])} -> {short(c['now'])}" for c in diff[:limit]]
    if len(diff) > limit:
        lines.append(f"  ... and {len(diff) - limit} more")
    return "\n".join(lines)


def read_seal(path: str | Path) -> dict[str, Any] | None:
    """The seal of one final model, or None before its first evaluation."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def check_seal(seal: dict[str, Any] | None, current: dict[str, Any], unseal_reason: str | None,
               seed: int, stage: str) -> dict[str, Any]:
    """Whether this final model may be trained or evaluated, and why.

    Args:
        seal: The model's seal (:func:`read_seal`), or None.
        current: The decisions now, with ``test_manifest_sha256`` at evaluation
            (training does not read the test manifest).
        unseal_reason: ``evaluation.unseal_reason``.
        seed: The final model's seed, for messages.
        stage: "training" or "evaluation", for messages.

    Returns:
        An event: ``status`` first (never evaluated), same (the sealed decisions:
        a re-evaluation that reveals nothing new), or unsealed (decisions changed,
        allowed by ``unseal_reason``), with the changes and the reason.

    Raises:
        SealedTestError: Decisions changed and no ``unseal_reason`` is set.
    """
    if seal is None:
        return {"status": "first", "changes": [], "reason": None}
    sealed = {k: v for k, v in seal["decisions"].items() if k in current}
    if "test_manifest_sha256" in current:
        sealed["test_manifest_sha256"] = seal["test_manifest_sha256"]
    diff = changes(sealed, current)
    if not diff:
        return {"status": "same", "changes": [], "reason": None}
    if not unseal_reason:
        raise SealedTestError(
            f"the test set is sealed: final model seed {seed} was evaluated on it on {seal['evaluated_at']}, "
            f"and the decisions behind it changed since:\n{describe_changes(diff)}\n"
            f"Its {stage} would look at the test set again after a change, which turns the test set "
            "into one more validation set (docs/practices.md section 3)",
            "restore the settings above to keep the sealed result; or, for a new experiment (another data "
            "set), run it in a working folder of its own (snakemake --directory <folder>, or "
            "make run SNAKEMAKE_ARGS='--directory <folder>'), leaving this folder's sealed results as they are; "
            "or, if a new evaluation of this experiment is justified, set evaluation.unseal_reason to a "
            "sentence saying why (it is recorded in the seal's event log, events.jsonl, and in the test summary)")
    return {"status": "unsealed", "changes": diff, "reason": unseal_reason}


#: The data keys that say which images an experiment is made of (not how they are fed: the
#: input size and channels are the model's, and tuning may set them).
DATA_SOURCE_KEYS = ("source", "root", "manifest", "path_column", "label_column", "metadata",
                    "metadata_file_column", "group_columns", "digits")


def data_source(config: dict[str, Any]) -> dict[str, Any]:
    """The config's data keys naming the images (a seal's ``seed`` is its final model's own)."""
    data = config.get("data", {})
    return {f"data.{key}": data.get(key) for key in DATA_SOURCE_KEYS}


def check_sealed_data(config: dict[str, Any], seals: dict[str, dict[str, Any]]) -> None:
    """Load-time check: refuse a config whose data source differs from the sealed run's.

    A final model's seal (:func:`record_evaluation`) is checked when its training or evaluation
    starts; by then a config naming other data has rewritten the index and the split of the
    sealed run. This check runs when the workflow loads, before any job, on what every seal
    recorded of the data (the data keys naming the images).

    Args:
        config: The validated config, its paths expanded.
        seals: Each seal read (:func:`read_seal`), by its file name, for messages.

    Raises:
        SealedTestError: The data source differs from a seal's and ``evaluation.unseal_reason``
            is not set (a retraining on appended data sets it).
    """
    if config["evaluation"].get("unseal_reason") or not seals:
        return
    now = data_source(config)
    for name, seal in sorted(seals.items()):
        recorded = seal.get("decisions", {}).get("config")
        if not recorded:
            continue
        diff = changes(data_source(recorded), now)
        if diff:
            raise SealedTestError(
                f"the test set in this folder is sealed ({name}: evaluated on {seal.get('evaluated_at')}), "
                f"and this config names other data than that run:\n{describe_changes(diff)}\n"
                "Running it here would rewrite the sealed run's index and split before any final "
                "model is refused; nothing was run",
                "for a new experiment (another data set), run it in a working folder of its own "
                "(snakemake --directory <folder>, or make run SNAKEMAKE_ARGS='--directory <folder>'), "
                "leaving this folder's sealed results as they are; to go on with the sealed run, "
                "restore the settings above; to retrain it on more data, follow docs/retraining.md "
                "(it sets evaluation.unseal_reason)")


def record_evaluation(seal_path: str | Path, events_path: str | Path, seed: int, current: dict[str, Any],
                      event: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Seal a final model's test evaluation and append it to the event log.

    Args:
        seal_path: The model's seal file (rewritten).
        events_path: The event log (one JSON object per line, appended).
        seed: The final model's seed.
        current: The decisions, with ``test_manifest_sha256``.
        event: What :func:`check_seal` returned.
        summary: Headline metrics, kept in the seal and the log.

    Returns:
        The new seal.
    """
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    previous = read_seal(seal_path)
    count = (previous or {}).get("evaluations", 0) + 1
    seal = {"seed": seed, "evaluated_at": now, "evaluations": count,
            "decisions": {k: v for k, v in current.items() if k != "test_manifest_sha256"},
            "decisions_sha256": json_sha256({k: v for k, v in current.items() if k != "test_manifest_sha256"}),
            "test_manifest_sha256": current["test_manifest_sha256"], "metrics": summary,
            "history": [*(previous or {}).get("history", []),
                        {"at": now, "status": event["status"], "reason": event["reason"],
                         "changes": event["changes"]}]}
    write_json(seal_path, seal)
    line = json.dumps({"at": now, "seed": seed, "evaluation": count, "status": event["status"],
                       "reason": event["reason"], "changes": event["changes"], "metrics": summary},
                      sort_keys=True, default=str)
    Path(events_path).parent.mkdir(parents=True, exist_ok=True)
    # One short line per write, opened in append mode: parallel evaluations do not interleave.
    with open(events_path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return seal
