# Stage split: the sealed test set and the fold manifests, written once from the index; every
# later stage reads them, never the image folder (docs/split.md).


rule split_data:
    input:
        index="results/data/index.csv",
        # split.sealed_test, when set: a change of the sealed manifest reruns the split.
        **get_sealed_test_input(),
    output:
        test=TEST_MANIFEST,
        train=get_fold_manifests("train"),
        val=get_fold_manifests("val"),
        summary="results/split/split.json",
    params:
        # Declared so that a change of these reruns the split.
        split=config["split"],
        seed=config["seed"],
        near_duplicate_max_distance=config["validation"]["near_duplicate_max_distance"],
    localrule: True
    log:
        "logs/split/split_data.log",
    benchmark:
        "logs/split/split_data.benchmark.tsv"
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/split/split_data.py"
