# Stage carbon: energy, carbon and water per stage and in total, from the emissions record of
# every attempt of every training, tuning and evaluation job (docs/carbon.md).


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
        job_files=EMISSIONS_FILES,
        carbon=config["carbon"],
        stage_order=stage_names(),
    log:
        "logs/carbon/carbon_report.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/carbon/carbon_report.py"
