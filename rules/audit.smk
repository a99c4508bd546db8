# Stage audit: the bias audit of the data before training (association of each group with the
# label, representation per set; it gates every training), and of every final model's test
# predictions by group after the evaluation (docs/audit.md).
from imgclf.audit import audit_settings


rule audit_data:
    input:
        index="results/data/index.csv",
        train=get_fold_manifest(0, "train"),
        val=get_fold_manifest(0, "val"),
    output:
        audit="results/audit/data.json",
        representation="results/audit/representation.csv",
        # Constant content, present only when the audit passed: every training job takes it
        # as an input (get_data_audit_gate), so audit.association_failure stops the run before
        # any training, and a changed finding (or threshold) that still passes reruns nothing.
        passed="results/audit/data_audit_passed.json",
    params:
        settings=lambda wildcards: audit_settings(config),
    log:
        "logs/audit/audit_data.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/audit/audit_data.py"


rule audit_models:
    input:
        predictions=get_final_files("results/evaluate/seed_{seed}/predictions.csv"),
        index="results/data/index.csv",
        train=get_fold_manifest(0, "train"),
        data_audit="results/audit/data.json",
    output:
        audit="results/audit/groups.json",
        group_metrics="results/audit/group_metrics.csv",
        markdown="results/audit/audit.md",
        plot=report(
            "results/audit/group_metrics.png", caption="../report/figure.rst", category="6. Bias audit"
        ),
    params:
        # Only what the audit reads: a new unseal reason or target must not rerun it.
        settings=lambda wildcards: {
            **audit_settings(config),
            "evaluation": {"confidence": config["evaluation"]["confidence"]},
        },
    localrule: True
    log:
        "logs/audit/audit_models.log",
    benchmark:
        "logs/audit/audit_models.benchmark.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/audit/audit_models.py"
