# What a reviewer reads: the carbon and water report over every job, and one
# self-contained HTML report of the whole run.


rule carbon_report:
    input:
        # The jobs that record emissions: the report follows them.
        trainings=get_tracked_job_outputs(),
        evaluation="results/evaluate/summary.json",
    output:
        summary="results/carbon/carbon.json",
        markdown="results/carbon/carbon.md",
        plot=report(
            "results/carbon/energy_per_stage.png",
            caption="../report/figure.rst",
            category="7. Carbon and water",
        ),
    params:
        jobs_dir="results/carbon/jobs",
        carbon=config["carbon"],
    log:
        "logs/report/carbon_report.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/carbon_report.py"


rule report_galleries:
    input:
        index="results/data/index.csv",
        train=get_exploration_manifest("train"),
        predictions=get_final_files("results/evaluate/seed_{seed}/predictions.csv"),
        model_card="results/model/model.json",
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
        "../scripts/report_galleries.py"


rule report:
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
        workflow_dir=workflow.basedir,
    log:
        "logs/report/report.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/report.py"


rule reproducibility_record:
    input:
        index="results/data/index.csv",
        manifests=[*get_fold_manifests("train"), *get_fold_manifests("val")],
        finals=get_final_files("results/final/seed_{seed}/metrics.json"),
        evaluations=get_final_files("results/evaluate/seed_{seed}/metrics.json"),
    output:
        record="results/reproducibility.json",
    params:
        config=config,
        workflow_dir=workflow.basedir,
    log:
        "logs/report/reproducibility_record.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/reproducibility_record.py"
