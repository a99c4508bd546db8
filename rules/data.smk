# Stage data: the embedded default data set, and validation of any source into the index
# (docs/data.md). Everything later reads the index and the manifests, never the folder.


rule export_digits:
    output:
        image_folder=directory(DIGITS_FOLDER),
    params:
        size=config["data"]["digits"]["size"],
    localrule: True
    log:
        "logs/data/export_digits.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/data/export_digits.py"


rule validate_data:
    input:
        unpack(get_validation_input),
    output:
        index="results/data/index.csv",
        validation_json="results/data/validation.json",
        validation_md="results/data/validation.md",
    params:
        data_fingerprint=get_data_fingerprint(),
        settings=get_validation_settings(),
    log:
        log="logs/data/validate_data.log",
        # Kept even when validation fails, unlike outputs.
        report="logs/data/validation_report.md",
    benchmark:
        "logs/data/validate_data.benchmark.tsv"
    resources:
        # reads and hashes every image: CPUs, no GPU
        mem_mb=8000,
        runtime=120,
    threads: 8
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/data/validate_data.py"
