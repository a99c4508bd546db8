# imgclf: a reproducible image-classification pipeline.
# This file only loads and validates the config and includes the rules, split
# by stage under rules/. Run it with `make run` or `snakemake --cores all`.
import sys

# imgclf (the package holding the logic) lives beside this file; putting it on
# the path makes every job find it, in the user's venv, in a conda env made by
# --sdm conda, or on a cluster node, without installing it there.
sys.path.insert(0, workflow.basedir)

from imgclf.config import (
    check_data_paths,
    check_folds,
    check_model_config,
    load_schema,
    validate_config,
)
from imgclf.explore import check_studies
from imgclf.final import check_final
from imgclf.audit import check_audit
from imgclf.carbon import check_carbon
from imgclf.search_space import check_tuning
from imgclf.errors import ConfigError


configfile: "config/config.yaml"


report: "report/workflow.rst"


try:
    validate_config(
        config,
        load_schema(f"{workflow.basedir}/config/config.schema.yaml"),
        source="config (config/config.yaml, --configfile and --config)",
    )
    check_data_paths(config)
    check_model_config(config)
    check_folds(config)
    check_studies(config)
    check_tuning(config)
    check_audit(config)
    check_carbon(config)
except ConfigError as error:
    sys.exit(f"imgclf: {error}")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/split.smk"
include: "rules/explore.smk"
include: "rules/tune.smk"
include: "rules/final.smk"
include: "rules/evaluate.smk"
include: "rules/audit.smk"
include: "rules/report.smk"
include: "rules/deploy.smk"
include: "rules/monitor.smk"
include: "rules/stages.smk"


try:
    # After the includes: the classes are read from the data the helpers locate.
    class_names = get_class_names()  # a manifest is read once per load (every job loads this file)
    check_final(config, class_names)
    check_audit(config, class_names)
except ConfigError as error:
    sys.exit(f"imgclf: {error}")
warn_if_unsealed()


onsuccess:
    print_stage_times()


rule all:
    input:
        get_final_output(),
    default_target: True
