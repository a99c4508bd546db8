# Stage report: what a reviewer reads: one self-contained HTML report of the whole run, its
# image galleries, and the reproducibility record (docs/report.md).


rule report_galleries:
    input:
        index="results/data/index.csv",
        train=get_fold_manifest(config["explore"]["fold"], "train"),
        # The deployed model's (a final model's, or the ensemble's) test predictions.
        predictions="results/evaluate/deployed/predictions.csv",
        model_card="results/evaluate/deployed/model.json",
        data_root=get_data_root_input(),
    output:
        samples_plot=report(
            "results/report/sample_images.png",
            caption="../report/sample_images.rst",
            category="1. Data",
        ),
        mistakes_plot=report(
            "results/report/misclassified.png",
            caption="../report/misclassified.rst",
            category="5. Test evaluation",
        ),
    params:
        settings=config["report"],
        seed=config["seed"],
    log:
        "logs/report/report_galleries.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/report/report_galleries.py"


rule report_html:
    input:
        unpack(get_report_input),
    output:
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="0. Report",
        ),
        environment="results/report/environment.json",
    params:
        config=config,
        config_origin=get_config_origin(),
        workflow_dir=workflow.basedir,
    log:
        "logs/report/report_html.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/report/report_html.py"


rule reproducibility_record:
    input:
        index="results/data/index.csv",
        manifests=[*get_fold_manifests("train"), *get_fold_manifests("val")],
        finals=get_final_files("results/final/seed_{seed}/metrics.json"),
        evaluations=get_final_files("results/evaluate/seed_{seed}/metrics.json"),
    output:
        record="results/report/reproducibility.json",
    params:
        config=config,
        config_origin=get_config_origin(),
        workflow_dir=workflow.basedir,
    log:
        "logs/report/reproducibility_record.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/report/reproducibility_record.py"
