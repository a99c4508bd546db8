"""The tuning search space: checks and application to the config (no TensorFlow).

Used when the workflow is loaded, to refuse a bad search space before any
job, and by :mod:`imgclf.tune.search` for every trial.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pandas as pd

from imgclf.core.config import check_model_config, set_dotted, validate_config
from imgclf.core.errors import ConfigError

PARAMETER_TYPES = ("int", "float", "choice", "boolean")


def check_search_space(space: list[dict[str, Any]], config: dict[str, Any]) -> None:
    """Refuse an empty, contradictory or unknown search space before any training.

    Raises:
        ConfigError: Naming the parameter at fault.
    """
    if not space:
        raise ConfigError("tune.search_space is empty", "declare at least one parameter to tune")
    names = [p["name"] for p in space]
    for i, parameter in enumerate(space):
        where = f"tune.search_space[{i}] ({parameter['name']})"
        if names.count(parameter["name"]) > 1:
            raise ConfigError(f"{where}: declared twice", "declare each parameter once")
        kind = parameter["type"]
        if kind not in PARAMETER_TYPES:
            raise ConfigError(f"{where}: unknown type {kind!r}", f"use one of {', '.join(PARAMETER_TYPES)}")
        if kind in ("int", "float"):
            low, high = parameter.get("min"), parameter.get("max")
            if low is None or high is None or low >= high:
                raise ConfigError(f"{where}: needs min < max (got {low}, {high})", "give a non-empty range")
            if parameter.get("sampling", "linear") == "log" and low <= 0:
                raise ConfigError(f"{where}: log sampling needs min > 0", "raise min, or use sampling: linear")
        if kind == "choice" and not parameter.get("values"):
            raise ConfigError(f"{where}: a choice needs values", "list the values to choose from")
        when = parameter.get("when")
        if when:
            if when["name"] not in names[:i]:
                raise ConfigError(f"{where}: depends on {when['name']!r}, which is not declared before it",
                                  "declare the parent parameter first")
            parent = space[names.index(when["name"])]
            if parent["type"] == "choice" and not set(when["values"]) <= set(parent["values"]):
                raise ConfigError(f"{where}: condition values {when['values']} are not all among "
                                  f"{parent['name']}'s values {parent['values']}",
                                  "the parameter would never be active")
    # Every parameter must be a real config key, and the defaults a valid config.
    apply_values(config, {p["name"]: _default(p) for p in space})


def _default(parameter: dict[str, Any]) -> Any:
    kind = parameter["type"]
    if kind == "choice":
        return parameter["values"][0]
    if kind == "boolean":
        return False
    return parameter["min"]


def apply_values(config: dict[str, Any], values: dict[str, Any], source: str = "a tuning trial",
                 origin: str = "tune.search_space",
                 hint: str = "use dotted keys from config/config.schema.yaml") -> dict[str, Any]:
    """A copy of the config with values set by dotted key (None leaves a key as it is), validated.

    Args:
        config: The config.
        values: Values by dotted key (a trial's, or the tuning result).
        source: What the new config is, for validation messages.
        origin: Where the values come from, for the unknown-key message.
        hint: What to do about an unknown key.

    Raises:
        ConfigError: An unknown key, or a value the schema or the model checks refuse.
    """
    result = copy.deepcopy(config)
    for name, value in values.items():
        if value is None:
            continue
        try:
            set_dotted(result, name, value)
        except KeyError:
            raise ConfigError(f"{origin}: {name!r} is not a config key", hint) from None
    validate_config(result, source=source)
    check_model_config(result, source=source)
    return result


def values_key(values: dict[str, Any]) -> str:
    """A stable file name for a trial's hyperparameter values."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def subsample(table: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A stratified, seeded share of a manifest (every class keeps at least one image)."""
    if fraction >= 1:
        return table
    parts = []
    for label, group in table.groupby("label", sort=True):
        n = max(1, int(round(len(group) * fraction)))
        parts.append(group.sample(n=n, random_state=seed))
    return pd.concat(parts).sort_values("path").reset_index(drop=True)


def fix_from_study(config: dict[str, Any], summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set the exploration winner's scientific and nuisance values in the config.

    Returns:
        The new config and the values set.
    """
    winner = summary.get("winner")
    if not winner:
        raise ConfigError(f"tune.fix_from_study: study {summary['study']!r} has no winner "
                          "(every point diverged)", "revise the study, or set tune.fix_from_study: null")
    values = {k: winner[k] for k in summary["scientific"] + summary["nuisance"]}
    result = copy.deepcopy(config)
    for key, value in values.items():
        set_dotted(result, key, value)
    return validate_config(result, source="tune.fix_from_study"), values


def check_tuning(config: dict[str, Any]) -> None:
    """Load-time checks of the tune section: the space, and the study it builds on.

    Raises:
        ConfigError: Naming the key at fault.
    """
    tune = config["tune"]
    if not tune["enabled"]:
        return
    study = tune["fix_from_study"]
    names = [s["name"] for s in config["explore"]["studies"]]
    if study is not None and study not in names:
        raise ConfigError(f"tune.fix_from_study names {study!r}, which is not an exploration study "
                          f"(studies: {', '.join(names) or 'none'})", "name a study of explore.studies, or null")
    check_search_space(tune["search_space"], config)
