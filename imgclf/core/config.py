"""Loading and validating the experiment config against its JSON Schema.

The schema (``config/config.schema.yaml``, draft 2020-12) is the single source
of truth for keys, types, descriptions and defaults. Validation fills in the
defaults and turns schema errors into messages that name the key and suggest
the nearest valid one.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from imgclf.core.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "config.schema.yaml"


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills in ``default`` values as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_FillingValidator = _with_defaults(Draft202012Validator)


def config_sha256(config: dict[str, Any]) -> str:
    """SHA-256 of a config as canonical JSON (sorted keys): what the report and the
    reproducibility record call the config's hash."""
    from imgclf.core.io import json_sha256

    return json_sha256(config)


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the config schema."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _subschema(schema: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    node = schema
    for part in path:
        node = node.get("properties", {}).get(part, {}) if isinstance(part, str) else node.get("items", {})
    return node


def _describe_error(error: ValidationError, schema: dict[str, Any], source: str) -> str:
    path = list(error.absolute_path)
    key = ".".join(str(p) for p in path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        parts = []
        for name in unexpected:
            full = ".".join([*map(str, path), name])
            close = difflib.get_close_matches(name, allowed, n=1)
            parts.append(f"{source}: unknown key '{full}'"
                         + (f"; did you mean '{'.'.join([*map(str, path), close[0]])}'?" if close
                            else f"; allowed here: {', '.join(allowed)}"))
        return "\n".join(parts)
    node = _subschema(schema, path)
    description = " ".join(str(node.get("description", "")).split())
    # A failing if/then names the conditional key, not the one at fault.
    if error.validator in ("type",) and error.instance is None:
        message = f"{source}: key '{key}' must be set (it is null)"
    else:
        message = f"{source}: key '{key}': {error.message}"
    if description:
        message += f"\n  '{key}': {description}"
    return message


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None,
                    source: str = "config") -> dict[str, Any]:
    """Validate a config in place, filling in defaults.

    Args:
        config: The config as loaded from YAML (and command-line overrides).
        schema: The schema; read from ``config/config.schema.yaml`` if None.
        source: Where the config came from, for messages.

    Returns:
        The same dict, with every default filled in.

    Raises:
        ConfigError: Naming each key at fault, with its description.
    """
    schema = schema if schema is not None else load_schema()
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values")
    validator = _FillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        messages = list(dict.fromkeys(_describe_error(e, schema, source) for e in errors))
        raise ConfigError("invalid configuration:\n" + "\n".join(messages),
                          "fix the keys above; every key is documented in config/config.schema.yaml")
    return config


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for ``key`` "a.b.c", in place.

    Raises:
        KeyError: ``key`` names no existing config key.
    """
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise KeyError(key)
        node = node[part]
    if parts[-1] not in node:
        raise KeyError(key)
    node[parts[-1]] = value


def load_config(path: str | Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it, filling in defaults."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return validate_config(config, schema, source=str(path))


def default_config() -> dict[str, Any]:
    """Every key at its default (the schema's defaults alone)."""
    return validate_config({})


def check_data_paths(config: dict[str, Any]) -> None:
    """Check that the data paths exist (``~`` expanded beforehand: imgclf.pipeline.expand_paths).

    Run when the workflow is loaded, so that a wrong path stops the run before
    any job, instead of Snakemake quietly keeping results made from other data.

    Raises:
        ConfigError: Naming the key and the path.
    """
    data = config["data"]
    checks: list[tuple[str, Any, str]] = []
    if data["source"] == "folder":
        checks.append(("data.root", data["root"], "dir"))
    if data["source"] == "manifest":
        checks.append(("data.manifest", data["manifest"], "file"))
        if data["root"]:
            checks.append(("data.root", data["root"], "dir"))
    if data["metadata"]:
        checks.append(("data.metadata", data["metadata"], "file"))
    for key, value, kind in checks:
        path = Path(value)
        ok = path.is_dir() if kind == "dir" else path.is_file()
        if not ok:
            what = "folder" if kind == "dir" else "file"
            raise ConfigError(
                f"{key} is {str(value)!r}, which is not an existing {what} "
                f"(relative paths are taken from the working directory {Path.cwd()})",
                f"set {key} to the {what} that holds your data")


def check_folds(config: dict[str, Any]) -> None:
    """The folds that exploration, tuning and the final trainings use must exist.

    Raises:
        ConfigError: Naming the key and the number of folds.
    """
    n_folds = config["split"]["n_folds"]
    for key in ("explore", "tune", "final"):
        if config[key]["fold"] >= n_folds:
            raise ConfigError(f"{key}.fold is {config[key]['fold']}, but split.n_folds = {n_folds} "
                              f"makes folds 0 to {n_folds - 1}", f"set {key}.fold below {n_folds}")


def check_model_config(config: dict[str, Any], source: str = "config") -> None:
    """Cross-key checks of the model that the schema cannot express.

    Raises:
        ConfigError: A backbone with inputs under 32x32, pretrained weights on small_cnn, or
            augmentation restricted to a fine-tuning phase the run does not have, or balanced
            sampling together with balanced class weights.
    """
    model = config["model"]
    height, width = config["data"]["image_size"]
    if model["architecture"] != "small_cnn" and min(height, width) < 32:
        raise ConfigError(
            f"{source}: model.architecture {model['architecture']} needs inputs of at least 32x32, "
            f"but data.image_size is [{height}, {width}]",
            "raise data.image_size to 32 or more, or use model.architecture: small_cnn")
    if model["architecture"] == "small_cnn" and model["weights"] != "none":
        raise ConfigError(f"{source}: model.weights must be none for small_cnn (it has no pretrained weights)",
                          "set model.weights: none, or choose a backbone architecture")
    if config["train"]["sampling"] == "balanced" and config["train"]["class_weights"] == "balanced":
        raise ConfigError(f"{source}: train.sampling and train.class_weights are both balanced: the imbalance "
                          "would be corrected twice, favouring the minority classes",
                          "keep one: train.sampling: balanced (each class drawn equally often) or "
                          "train.class_weights: balanced (each class's loss weighted)")
    augmentation = config["train"]["augmentation"]
    augmented = any(augmentation[key] not in ("none", 0) for key in ("flip", "rotation", "zoom", "contrast"))
    if augmented and augmentation["during"] == "fine_tune" and not (
            model["weights"] != "none" and config["train"]["fine_tune"]["enabled"]):
        raise ConfigError(f"{source}: train.augmentation.during is fine_tune, but this run has no fine-tuning "
                          "phase (it needs pretrained model.weights and train.fine_tune.enabled: true), so "
                          "no epoch would be augmented",
                          "set train.augmentation.during: all, or enable train.fine_tune")
    if model["weights"] not in ("none", "imagenet") and not Path(model["weights"]).expanduser().is_file():
        raise ConfigError(f"{source}: model.weights {model['weights']!r} is neither none, imagenet, nor an "
                          "existing file", "give the path of a .weights.h5 file saved from the same backbone")
