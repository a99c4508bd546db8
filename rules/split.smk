# Split stage: fold manifests written once from the index; every later stage
# reads them, never the image folder.


from imgclf.errors import ConfigError
from imgclf.split import check_sealed_test, sealed_test_input

try:
    check_sealed_test(config, written="results/splits/test.csv")
except ConfigError as error:
    sys.exit(f"imgclf: {error}")


rule split_data:
    input:
        index="results/data/index.csv",
        # split.sealed_test, when set: a change of the sealed manifest reruns the split.
        **sealed_test_input(config),
    output:
        test="results/splits/test.csv",
        train=get_fold_manifests("train"),
        val=get_fold_manifests("val"),
        summary="results/splits/split.json",
    params:
        # Declared so that a change of these reruns the split.
        split=config["split"],
        seed=config["seed"],
        near_duplicate_max_distance=config["validation"]["near_duplicate_max_distance"],
    localrule: True
    log:
        "logs/splits/split_data.log",
    benchmark:
        "logs/benchmarks/split_data.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/split_data.py"
