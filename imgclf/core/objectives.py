"""Validation metrics by name, which way each improves, and the objective a run selects by.

A validation metric is named ``val_<metric>`` (``val_loss``, ``val_accuracy``,
``val_balanced_accuracy``, ``val_macro_f1``, ``val_roc_auc``, ``val_log_loss``)
or, per class, ``val_<metric>_<class>`` (``val_recall_mel``, ``val_specificity_mel``,
``val_precision_mel``, ``val_f1_mel``, ``val_roc_auc_mel``; ``sensitivity`` is
recall). Every one of them is computed each epoch from one pass of predictions
over the validation images (:mod:`imgclf.training.validation_metrics`).

The *objective* ranks exploration points, tuning trials and the final models
when one is deployed. ``auto`` (the default of ``explore.objective`` and
``tune.objective``) follows the first target that names a metric computable on
validation data, so the run selects by what the user will be judged on; without
one it is ``val_accuracy``. Early stopping, learning-rate reduction and the best
checkpoint watch ``train.early_stopping.monitor``; its ``auto`` is ``val_loss``
(accuracy's smooth surrogate: both weigh every image alike) when the objective is
accuracy or the log loss, and the objective itself when it weighs classes or
watches one class, which the unweighted loss does not follow.
"""

from __future__ import annotations

from typing import Any

from imgclf.core.errors import ConfigError

#: Validation metrics of the whole set.
GLOBAL = ("loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")
#: Validation metrics of one class (``sensitivity`` is an alias of ``recall``).
PER_CLASS = ("recall", "specificity", "precision", "f1", "roc_auc")
ALIASES = {"sensitivity": "recall"}
LOWER_IS_BETTER = ("loss", "log_loss")
#: Objectives that weigh every image alike: the unweighted loss follows them smoothly.
FOLLOWED_BY_LOSS = ("val_accuracy", "val_loss", "val_log_loss")


def parse_metric(name: str) -> tuple[str, str | None]:
    """``(metric, class)`` of a validation metric's name; class None for a global metric.

    Raises:
        ConfigError: Not a validation metric's name.
    """
    if not name.startswith("val_"):
        raise ConfigError(f"{name!r} is not a validation metric (they start with val_)",
                          f"use one of {', '.join(known_names())}")
    rest = name[len("val_"):]
    if rest in GLOBAL:
        return rest, None
    for metric in (*PER_CLASS, *ALIASES):
        if rest.startswith(metric + "_") and len(rest) > len(metric) + 1:
            return ALIASES.get(metric, metric), rest[len(metric) + 1:]
    raise ConfigError(f"{name!r} is not a validation metric", f"use one of {', '.join(known_names())}")


def known_names() -> list[str]:
    """The metrics' names, per-class ones with ``<class>`` in place of a class name."""
    return [f"val_{m}" for m in GLOBAL] + [f"val_{m}_<class>" for m in PER_CLASS]


def direction(name: str) -> str:
    """``max`` or ``min``: which way a validation metric improves."""
    metric, _ = parse_metric(name)
    return "min" if metric in LOWER_IS_BETTER else "max"


def is_better(a: float, b: float, name: str) -> bool:
    """Whether value ``a`` of metric ``name`` is strictly better than ``b``."""
    return a < b if direction(name) == "min" else a > b


def target_validation_metric(target: dict[str, Any]) -> str | None:
    """The validation metric that estimates a target's test metric, or None (``ece``)."""
    metric = ALIASES.get(target["metric"], target["metric"])
    if target.get("class") is not None and metric in PER_CLASS:
        return f"val_{metric}_{target['class']}"
    if metric in GLOBAL:
        return f"val_{metric}"
    return None


def resolve_objective(config: dict[str, Any], key: str) -> dict[str, str]:
    """The objective of ``explore`` or ``tune`` (or ``deploy``: the final models' choice).

    Returns:
        ``name`` (a validation metric), ``direction`` and ``why`` (a sentence for the log and
        the report).
    """
    setting = config[key]["objective"] if key in ("explore", "tune") else "auto"
    if setting != "auto":
        return {"name": setting, "direction": direction(setting), "why": f"{key}.objective is {setting}"}
    for i, target in enumerate(config["targets"]):
        name = target_validation_metric(target)
        if name is not None:
            return {"name": name, "direction": direction(name),
                    "why": f"the first target computable on validation data (targets[{i}]: {target['metric']}"
                           + (f" of class {target['class']}" if target.get("class") is not None else "") + ")"}
    return {"name": "val_accuracy", "direction": "max", "why": "no target names a validation metric"}


def resolve_monitor(config: dict[str, Any]) -> dict[str, str]:
    """What early stopping, learning-rate reduction and the best checkpoint watch.

    Returns:
        ``name``, ``direction`` and ``why``.
    """
    setting = config["train"]["early_stopping"]["monitor"]
    if setting != "auto":
        return {"name": setting, "direction": direction(setting),
                "why": f"train.early_stopping.monitor is {setting}"}
    objective = resolve_objective(config, "deploy")
    if objective["name"] in FOLLOWED_BY_LOSS:
        return {"name": "val_loss", "direction": "min",
                "why": f"the objective {objective['name']} weighs every image alike; val_loss follows it smoothly"}
    return {"name": objective["name"], "direction": objective["direction"],
            "why": f"the objective {objective['name']} ({objective['why']}), which the unweighted loss does not follow"}


def monitor_of(train: dict[str, Any]) -> str:
    """The metric a ``train`` section's early stopping watches. Callers resolve ``auto`` from the
    targets first (:func:`with_resolved_monitor`); one the section alone leaves ``auto`` (no
    targets to follow) watches ``val_loss``, as :func:`resolve_monitor` does without targets."""
    monitor = train["early_stopping"]["monitor"]
    return "val_loss" if monitor == "auto" else monitor


def with_resolved_monitor(config: dict[str, Any]) -> dict[str, Any]:
    """The config with ``train.early_stopping.monitor`` resolved (a copy; the training loop reads it)."""
    monitor = resolve_monitor(config)["name"]
    train = config["train"]
    return {**config, "train": {**train, "early_stopping": {**train["early_stopping"], "monitor": monitor}}}


def check_metric_name(key: str, value: str, class_names: list[str] | None) -> None:
    """Refuse a setting (``auto`` or a validation metric) that names no metric or an absent class.

    Raises:
        ConfigError: Naming ``key``, the value and the metrics or classes there are.
    """
    if value == "auto":
        return
    try:
        _, class_name = parse_metric(value)
    except ConfigError as error:
        raise ConfigError(f"{key}: {error.message}", error.hint) from None
    if class_names is not None and class_name is not None and class_name not in class_names:
        raise ConfigError(f"{key}: {value} names class {class_name!r}, which the data does not have "
                          f"(its classes: {', '.join(class_names)})",
                          "write val_<metric>_<class> with one of these classes, or auto")


def check_objectives(config: dict[str, Any], class_names: list[str] | None) -> list[str]:
    """Check every objective setting; return warnings where one contradicts the targets.

    Args:
        config: The validated config.
        class_names: The data's classes, or None when not known yet (then per-class names are
            checked once the index exists).

    Returns:
        One sentence per objective set explicitly to another metric than the targets'.

    Raises:
        ConfigError: An unknown metric, or a per-class metric of a class the data lacks.
    """
    settings = {"explore.objective": config["explore"]["objective"], "tune.objective": config["tune"]["objective"],
                "train.early_stopping.monitor": config["train"]["early_stopping"]["monitor"]}
    for key, value in settings.items():
        check_metric_name(key, value, class_names)
    wanted = next((n for n in map(target_validation_metric, config["targets"]) if n is not None), None)
    if wanted is None:
        return []
    warnings = []
    for key in ("explore.objective", "tune.objective"):
        if settings[key] not in ("auto", wanted):
            warnings.append(f"{key} is {settings[key]}, but the first target is judged by {wanted}: the "
                            f"{key.split('.')[0]} will rank by a metric the target does not use "
                            f"(set {key}: auto to follow the targets)")
    monitor = settings["train.early_stopping.monitor"]
    if monitor not in ("auto", wanted) and not (monitor == "val_loss" and wanted in FOLLOWED_BY_LOSS):
        warnings.append(f"train.early_stopping.monitor is {monitor}, but the first target is judged by {wanted}: "
                        "training will keep the epoch that is best by another metric "
                        "(set train.early_stopping.monitor: auto to follow the targets)")
    return warnings
