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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) config file's keys, unvalidated.

    Raises:
        ConfigError: The file is absent, is not valid YAML (naming its line and column, before
            Snakemake's own loader would say only "not valid JSON or YAML"), or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          "give the path of your config (make config DATA=... writes a starting one)") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem or exc}",
                          "fix that line (indent with spaces, never tabs; put values holding ': ' or ' #' "
                          "in quotes)") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not a {type(content).__name__}",
                          "start from the output of make config DATA=... or docs/configuration.md")
    return content


def load_config(path: str | Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it, filling in defaults."""
    return validate_config(read_config_file(path), schema, source=str(path))


def coerce_command_line_values(config: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Turn strings into the numbers, booleans or nulls they spell where the schema wants those.

    Snakemake reads a nested ``--config 'train={epochs: 3}'`` as strings (``{"epochs": "3"}``),
    which the schema would refuse as a type error. A string is replaced, in place, only where
    the schema refuses it and accepts the value it spells in YAML.

    Returns:
        The dotted keys changed.
    """
    schema = schema if schema is not None else load_schema()
    changed: list[str] = []

    def fits(value: Any, subschema: dict[str, Any]) -> bool:
        return Draft202012Validator(subschema).is_valid(value)

    def spelled(value: str) -> Any:
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value

    def walk(node: Any, subschema: dict[str, Any], key: str) -> Any:
        if isinstance(node, dict):
            properties = subschema.get("properties", {})
            for name, value in node.items():
                if name in properties:
                    node[name] = walk(value, properties[name], f"{key}.{name}" if key else str(name))
            return node
        if isinstance(node, list) and isinstance(subschema.get("items"), dict):
            return [walk(item, subschema["items"], f"{key}[{i}]") for i, item in enumerate(node)]
        if isinstance(node, str) and subschema and not fits(node, subschema):
            value = spelled(node)
            # Of the right type is enough: the schema's bounds then name the key (epochs: 0).
            kind = {"type": subschema["type"]} if "type" in subschema else subschema
            if not isinstance(value, str) and fits(value, kind):
                changed.append(key)
                return value
        return node

    walk(config, schema, "")
    return changed


def keys_set(config: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys a config sets (before defaults are filled in); lists count as one key."""
    keys: list[str] = []
    for name, value in config.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, dict) and value:
            keys.extend(keys_set(value, key))
        else:
            keys.append(key)
    return keys


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
    if model["architecture"] == "small_cnn":
        # Each conv block halves the image (2x2 max pooling, floor): n blocks need 2**n pixels.
        blocks = len(model["small_cnn"]["filters"])
        if min(height, width) < 2 ** blocks:
            raise ConfigError(
                f"{source}: data.image_size [{height}, {width}] is too small for model.architecture small_cnn "
                f"with {blocks} conv blocks (model.small_cnn.filters): each halves the image, so they need at "
                f"least {2 ** blocks}x{2 ** blocks} pixels",
                f"raise data.image_size to at least {2 ** blocks}, or use fewer blocks in model.small_cnn.filters")
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


def _merge_over(base: dict[str, Any], override: dict[str, Any]) -> None:
    """``override`` over ``base`` in place, mapping by mapping (as Snakemake merges config files)."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_over(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def main(argv: list[str] | None = None) -> int:
    """``python -m imgclf.core.config FILE...``: check config files before a run (``make run
    CONFIG=...`` does): YAML errors with their line, schema errors with their key."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m imgclf.core.config CONFIG.yaml [MORE.yaml ...]", file=sys.stderr)
        return 2
    try:
        merged: dict[str, Any] = {}
        for path in paths:
            _merge_over(merged, read_config_file(path))
        keys = keys_set(merged)
        validate_config(merged, source=", ".join(paths))
    except ConfigError as error:
        print(f"imgclf: {error}", file=sys.stderr)
        return 1
    print(f"imgclf: {', '.join(paths)}: valid; it sets {', '.join(keys) or 'nothing'}; every other key takes "
          "the schema's default")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
