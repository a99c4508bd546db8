# Stage weights: the pretrained weight files a run needs, fetched once into the weights cache
# where the network is (a local job: on a cluster it runs on the login node) and recorded with
# their sha256; training jobs only read the cache (docs/weights.md). Runs only when
# model.weights is imagenet.


rule fetch_weights:
    output:
        record=PRETRAINED_WEIGHTS,
    params:
        model=config["model"],
        image_size=config["data"]["image_size"],
        # Which backbones exploration and tuning may choose: their weights are fetched too.
        explore=config["explore"],
        tune=config["tune"],
    log:
        "logs/weights/fetch_weights.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/weights/fetch_weights.py"
