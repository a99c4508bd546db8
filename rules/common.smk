# Helper functions of the workflow, named for what they return.
from pathlib import Path

DIGITS_FOLDER = "results/default_data/digits"


def get_data_root():
    """The folder the images' paths are relative to."""
    data = config["data"]
    if data["source"] == "digits":
        return DIGITS_FOLDER
    if data["source"] == "manifest" and not data["root"]:
        return str(Path(data["manifest"]).parent)
    return data["root"]


def get_data_fingerprint():
    """Paths and sizes of the user's images, so that adding one reruns validation."""
    from imgclf.sources import listing_fingerprint, manifest_fingerprint

    data = config["data"]
    if data["source"] == "digits":
        return "embedded digits"  # a rule's output: Snakemake tracks it itself
    if data["source"] == "manifest":
        return manifest_fingerprint(data["manifest"], get_data_root(), data["path_column"])
    return listing_fingerprint(get_data_root())


def get_validation_settings():
    """Every setting validation depends on: a change reruns it."""
    data = {k: v for k, v in config["data"].items() if k != "digits"}
    return {
        "data": data,
        "validation": config["validation"],
        "split_group_column": config["split"]["group_column"],
    }


def get_validation_input(wildcards):
    """The data root, and the manifest and metadata files when configured."""
    data = config["data"]
    inputs = {"data_root": get_data_root()}
    if data["source"] == "manifest":
        inputs["manifest"] = data["manifest"]
    if data["metadata"]:
        inputs["metadata"] = data["metadata"]
    return inputs


def get_fold_manifests(kind):
    """Paths of the train or val manifests of every fold."""
    return expand(
        "results/splits/fold_{k}/{kind}.csv",
        k=range(config["split"]["n_folds"]),
        kind=kind,
    )


def get_final_output():
    """Everything the default target produces."""
    return [
        "results/data/index.csv",
        "results/data/validation.json",
        "results/data/validation.md",
        "results/splits/test.csv",
        *get_fold_manifests("train"),
        *get_fold_manifests("val"),
        "results/splits/split.json",
    ]
