"""The config schema: defaults, unknown keys, wrong types, conditionals."""

from pathlib import Path

import pytest

from imgclf.core.config import SCHEMA_PATH, default_config, load_config, load_schema, validate_config
from imgclf.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _walk(schema, path=""):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}" if path else name)


def test_schema_declares_2020_12_and_documents_every_key():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for path, node in _walk(schema):
        if not path:
            continue
        assert node.get("description"), f"{path} has no description"
        assert "default" in node, f"{path} has no default"
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
        else:
            assert "type" in node or "enum" in node, f"{path} has no type"


def test_defaults_fill_an_empty_config():
    config = default_config()
    assert config["seed"] == 42
    assert config["data"]["source"] == "digits"
    assert config["split"]["n_folds"] == 5
    assert config["validation"]["on_bad_file"] == "fail"


SHIPPED_CONFIGS = sorted(p for p in (REPO / "config").rglob("*.yaml") if p != SCHEMA_PATH)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    load_config(path)


def test_unknown_key_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError) as error:
        validate_config({"split": {"n_fold": 3}}, source="my.yaml")
    text = str(error.value)
    assert "my.yaml: unknown key 'split.n_fold'" in text
    assert "did you mean 'split.n_folds'" in text


def test_wrong_type_names_the_key_and_its_description():
    with pytest.raises(ConfigError) as error:
        validate_config({"split": {"test_fraction": "a lot"}})
    text = str(error.value)
    assert "split.test_fraction" in text and "not of type 'number'" in text
    assert "sealed test set" in text  # the key's description


@pytest.mark.parametrize("config, key", [
    ({"data": {"source": "folder"}}, "data.root"),
    ({"data": {"source": "manifest"}}, "data.manifest"),
    ({"split": {"test_fraction": 1.5}}, "split.test_fraction"),
    ({"split": {"n_folds": 0}}, "split.n_folds"),
    ({"data": {"image_size": [32]}}, "data.image_size"),
    ({"validation": {"on_bad_file": "ignore"}}, "validation.on_bad_file"),
])
def test_invalid_values_name_their_key(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(config)


def test_bad_yaml_file_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)



@pytest.mark.parametrize("path", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    """Every documented example passes the schema and the load-time checks that need no data."""
    from imgclf.audit import check_audit
    from imgclf.carbon import check_carbon
    from imgclf.core.config import check_folds, check_model_config
    from imgclf.explore import check_studies
    from imgclf.pipeline import check_config_against_classes, expand_paths
    from imgclf.tune import check_tuning

    config = load_config(path)
    expand_paths(config)
    for one in (check_model_config, check_folds, check_studies, check_tuning, check_audit, check_carbon):
        one(config)
    # Not imgclf.pipeline.check_config: an example's data paths are the user's, absent here.
    check_config_against_classes(config, None)
