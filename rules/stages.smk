# The pipeline's stages as targets: each rule names what one stage produces, so
# that a DVC stage (dvc.yaml, generated from this workflow by
# `python -m imgclf.dvc_pipeline`) runs exactly the Snakemake jobs of its stage.


rule stage_data:
    input:
        rules.validate_data.output,
    localrule: True


rule stage_split:
    input:
        rules.split_data.output,
    localrule: True


rule stage_data_audit:
    input:
        rules.audit_data.output,
    localrule: True


rule stage_explore:
    input:
        get_exploration_output(),
        # The batch-size probe belongs to this stage even without a study.
        ["results/train/batch_size.json"] if config["train"]["batch_size"] == "auto" else [],
    localrule: True


rule stage_tune:
    input:
        get_tuning_output(),
    localrule: True


rule stage_final:
    input:
        get_final_files("results/final/seed_{seed}/metrics.json"),
    localrule: True


rule stage_evaluate:
    input:
        "results/evaluate/summary.json",
        "results/model/model.json",
    localrule: True


rule stage_audit:
    input:
        "results/audit/groups.json",
    localrule: True


rule stage_export:
    input:
        [path for path in get_export_output() if path.startswith("results/export/")],
    localrule: True


rule stage_monitor:
    input:
        get_monitor_output(),
    localrule: True


rule stage_report:
    input:
        "results/carbon/carbon.json",
        "results/model/model_card.json",
        "results/report/report.html",
        "results/reproducibility.json",
    localrule: True
