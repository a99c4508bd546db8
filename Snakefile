# imgclf: a reproducible image-classification pipeline.
# This file only loads and validates the config and includes the rules, one file per stage
# under rules/ (the stages: imgclf/pipeline.py). Run it with `make run` or `snakemake --cores all`.
import sys

# imgclf (the package holding the logic) lives beside this file; putting it on
# the path makes every job find it, in the user's venv, in a conda env made by
# --sdm conda, or on a cluster node, without installing it there.
sys.path.insert(0, workflow.basedir)

from imgclf.core.config import load_schema, validate_config
from imgclf.core.errors import ConfigError
from imgclf.pipeline import check_config, check_config_against_classes, expand_paths


configfile: "config/config.yaml"


report: "report/workflow.rst"


try:
    validate_config(
        config,
        load_schema(f"{workflow.basedir}/config/config.schema.yaml"),
        source="config (config/config.yaml, --configfile and --config)",
    )
    expand_paths(config)
except ConfigError as error:
    sys.exit(f"imgclf: {error}")


include: "rules/common.smk"


try:
    check_config(config, test_manifest=TEST_MANIFEST)
except ConfigError as error:
    sys.exit(f"imgclf: {error}")


include: "rules/data.smk"
include: "rules/weights.smk"
include: "rules/split.smk"
include: "rules/audit.smk"
include: "rules/explore.smk"
include: "rules/tune.smk"
include: "rules/final.smk"
include: "rules/evaluate.smk"
include: "rules/carbon.smk"
include: "rules/export.smk"
include: "rules/monitor.smk"
include: "rules/report.smk"
include: "rules/stages.smk"


try:
    # After the includes: the classes are read from the data the helpers locate (a manifest is
    # read once per load, and every job loads this file).
    for warning in check_config_against_classes(config, get_class_names()):
        print(f"imgclf: WARNING: {warning}", file=sys.stderr)
except ConfigError as error:
    sys.exit(f"imgclf: {error}")
warn_if_unsealed()


onsuccess:
    print_stage_times()


rule all:
    input:
        get_final_output(),
    default_target: True
