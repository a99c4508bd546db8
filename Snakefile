# imgclf: a reproducible image-classification pipeline.
# This file only loads and validates the config and includes the rules, one file per stage
# under rules/ (the stages: imgclf/pipeline.py). Run it with `make run` or `snakemake --cores all`.
import os
import sys

# imgclf (the package holding the logic) lives beside this file; putting it on
# the path makes every job find it, in the user's venv, in a conda env made by
# --sdm conda, or on a cluster node, without installing it there.
sys.path.insert(0, workflow.basedir)

from snakemake.utils import update_config

from imgclf.core.config import (
    coerce_command_line_values,
    keys_set,
    load_schema,
    read_config_file,
    validate_config,
)
from imgclf.core.errors import ConfigError
from imgclf.core.errors import ImgclfError
from imgclf.evaluate.seal import check_sealed_data
from imgclf.pipeline import (
    check_config,
    check_config_against_classes,
    check_results_have_records,
    expand_paths,
    record_adoption,
)

#: The demo's config (the embedded digits): the config only when no --configfile is given. A
#: user's config starts from the schema's defaults, never from the demo's settings.
DEMO_CONFIG = "config/config.yaml"


report: "report/workflow.rst"


try:
    if not workflow.overwrite_configfiles:
        # Read here, not by a configfile directive: a YAML error names the file and line.
        demo = read_config_file(DEMO_CONFIG)
        update_config(demo, config)  # --config over the demo
        config.clear()
        config.update(demo)
        CONFIG_SOURCE = f"{DEMO_CONFIG} (the demo)"
    else:
        CONFIG_SOURCE = ", ".join(map(str, workflow.overwrite_configfiles))
    # Nested --config values arrive as strings: 'train={epochs: 3}' gives "3".
    coerce_command_line_values(config)
    USER_SET_KEYS = keys_set(config)
    validate_config(
        config,
        load_schema(f"{workflow.basedir}/config/config.schema.yaml"),
        source=f"config ({CONFIG_SOURCE}, and --config)",
    )
    expand_paths(config)
except ConfigError as error:
    sys.exit(f"imgclf: {error}")
if workflow.is_main_process:
    print(
        f"imgclf: config from {CONFIG_SOURCE}; it sets {', '.join(USER_SET_KEYS) or 'nothing'}; "
        "every other key takes the schema's default (docs/configuration.md)",
        file=sys.stderr,
    )


include: "rules/common.smk"


try:
    check_config(config, test_manifest=TEST_MANIFEST)
    # Before any job: a config naming other data would rewrite the sealed run's index and split.
    check_sealed_data(config, get_seals())
    # Pulled results: adopted by --touch (make restamp); DVC's stages and --forceall (dvc.yaml's
    # generation) force their jobs anyway.
    touching = bool({"--touch", "-t"} & set(sys.argv))
    check_results_have_records(
        adopting=not workflow.is_main_process
        or touching
        or bool({"--forceall", "-F"} & set(sys.argv))
        or os.environ.get("IMGCLF_DVC_STAGE") == "1",
    )
    if touching and workflow.is_main_process and not {"-n", "--dry-run", "--dryrun"} & set(sys.argv):
        record_adoption()
except ImgclfError as error:
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
include: "rules/predict.smk"
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
