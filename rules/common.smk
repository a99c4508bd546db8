# Helper functions of the workflow, named for what they return. Every path a job writes is
# declared in the rules (results/<stage>/..., logs/<stage>/...); the package builds none.
import sys
from pathlib import Path

from imgclf.pipeline import STAGES, stage_names

#: Where the embedded default data is written (export_digits, for data.source digits).
DIGITS_FOLDER = "results/data/digits"
#: The test manifest: only rule evaluate_model reads it.
TEST_MANIFEST = "results/split/test.csv"
#: The weights stage's record of the pretrained weight files in the cache.
PRETRAINED_WEIGHTS = "results/weights/weights.json"
#: Every training, tuning and evaluation job's emissions record (rule carbon_report reads them all).
EMISSIONS_FILES = ["results/*/**/*emissions.csv"]
#: The seals of the final models' test evaluations (rule evaluate_model writes them).
SEAL_FOLDER = "results/evaluate/seal"


def get_config_origin():
    """Where the config came from and the keys it sets (every other key is the schema's default)."""
    return {"files": CONFIG_SOURCE, "keys_set": USER_SET_KEYS}


def get_data_root():
    """The folder the images' paths are relative to."""
    from imgclf.data import data_root

    return data_root(config["data"], DIGITS_FOLDER)


def get_data_fingerprint():
    """Paths and sizes of the user's images, so that adding one reruns validation."""
    from imgclf.data import listing_fingerprint, manifest_fingerprint

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


def get_data_root_input():
    """The data root as an input whose modification time is ignored: a folder's time says
    nothing of its images' content (validation fingerprints the listing, training checks each
    image's sha256), and DVC checkouts and copies reset it."""
    return ancient(get_data_root())


def get_validation_input(wildcards):
    """The data root, and the manifest and metadata files when configured."""
    data = config["data"]
    inputs = {"data_root": get_data_root_input()}
    if data["source"] == "manifest":
        inputs["manifest"] = data["manifest"]
    if data["metadata"]:
        inputs["metadata"] = data["metadata"]
    return inputs


def get_fold_manifest(fold, kind):
    """The train or val manifest of one fold."""
    return f"results/split/fold_{fold}/{kind}.csv"


def get_fold_manifests(kind):
    """Paths of the train or val manifests of every fold."""
    return [get_fold_manifest(k, kind) for k in range(config["split"]["n_folds"])]


def get_sealed_test_input():
    """The split's ``sealed_test`` input when split.sealed_test is set (a retraining), else nothing."""
    from imgclf.split import sealed_test_input

    return sealed_test_input(config)


def get_study(name):
    """The config of the study called ``name``."""
    for study in config["explore"]["studies"]:
        if study["name"] == name:
            return study
    raise ValueError(f"no exploration study named {name!r}")


def get_study_points(name):
    """The points of a study (ids p00, p01...), from its config and the seed."""
    from imgclf.explore import expand_study

    return expand_study(get_study(name), config["seed"])


def get_point(wildcards):
    """The point named by the wildcards."""
    for point in get_study_points(wildcards.study):
        if point.id == wildcards.point:
            return point
    raise ValueError(f"study {wildcards.study!r} has no point {wildcards.point!r}")


def get_point_config(wildcards):
    """The config of one exploration point: only what a training run reads, so that
    a change elsewhere in the config (tuning, later stages) does not rerun the point."""
    from imgclf.explore import point_config

    full = point_config(config, get_study(wildcards.study), get_point(wildcards))
    return {key: full[key] for key in ("seed", "data", "model", "train")}


def get_data_audit_gate():
    """The data audit's pass file, an input of every training job. Its content is constant and
    it exists only when the audit passed; ancient, so that an audit rerun that still passes (a
    changed threshold) reruns no training: only a failure, which removes it, stops them."""
    return ancient("results/audit/data_audit_passed.json")


def get_batch_size_probe():
    """The batch-size probe's record when train.batch_size is auto, else none."""
    return ["results/explore/batch_size.json"] if config["train"]["batch_size"] == "auto" else []


def get_pretrained_weights_input():
    """The weights stage's record, for runs that train a backbone on ImageNet weights: the files
    are in the cache before any training job starts (training jobs never download)."""
    from imgclf.weights import pretrained_architectures

    return {"pretrained_weights": PRETRAINED_WEIGHTS} if pretrained_architectures(config) else {}


def get_fold_training_input(fold):
    """What every training job reads: the index, its fold's train and val manifests, the images,
    the data audit's gate, and the probed batch size (when batch_size is auto)."""
    inputs = {
        "index": "results/data/index.csv",
        "train": get_fold_manifest(fold, "train"),
        "val": get_fold_manifest(fold, "val"),
        "data_root": get_data_root_input(),
        "data_audit": get_data_audit_gate(),
        **get_pretrained_weights_input(),
    }
    if config["train"]["batch_size"] == "auto":
        inputs["batch_size"] = "results/explore/batch_size.json"
    return inputs


def get_exploration_input(wildcards):
    """What an exploration point reads: the exploration fold (explore.fold)."""
    return get_fold_training_input(config["explore"]["fold"])


def get_tuning_input(wildcards):
    """What tuning reads: the tuning fold, the batch size and the study it builds on."""
    inputs = get_fold_training_input(config["tune"]["fold"])
    if config["tune"]["fix_from_study"]:
        inputs["study_summary"] = f"results/explore/{config['tune']['fix_from_study']}/summary.json"
    return inputs


def get_tuning_output():
    """The tuning results, when tuning is enabled."""
    if not config["tune"]["enabled"]:
        return []
    return ["results/tune/best_hyperparameters.json", "results/tune/trials.csv"]


def get_study_outputs(name, filename):
    """One file of every point of a study."""
    return [f"results/explore/{name}/{p.id}/{filename}" for p in get_study_points(name)]


def get_exploration_output():
    """The summary files of every study."""
    return [
        f"results/explore/{study['name']}/{name}"
        for study in config["explore"]["studies"]
        for name in ("summary.json", "summary.md", "objective.png", "best_curves.png")
    ]


def get_final_seeds():
    """The seeds of the final trainings."""
    from imgclf.final import final_seeds

    return final_seeds(config)


def get_final_fold(wildcards):
    """The fold a final training uses."""
    from imgclf.final import final_fold

    return final_fold(config, int(wildcards.seed))


def get_final_input(wildcards):
    """What a final training reads: its fold, the batch size and the tuning result."""
    inputs = get_fold_training_input(get_final_fold(wildcards))
    if config["tune"]["enabled"]:
        inputs["best_hyperparameters"] = "results/tune/best_hyperparameters.json"
    return inputs


def get_objective(stage):
    """The resolved objective of explore, tune or deploy (the final models' choice): its name,
    direction and why (auto follows the first target computable on validation data)."""
    from imgclf.core.objectives import resolve_objective

    return resolve_objective(config, stage)


def get_job_threads(stage):
    """The CPUs a TensorFlow job of ``stage`` declares: its intra-op threads (config
    threads.<stage>). A profile's set-threads gives it more CPUs for its input pipeline (decoding,
    resizing, augmenting) without changing its numbers: the intra-op threads stay the config's."""
    return config["threads"][stage]


def get_training_memory_mb(wildcards, input):
    """The memory a training job asks for: 16 GB, plus room for its decoded training and
    validation images when train.cache keeps them in memory (imgclf.training.cache). Until the
    manifests exist the floor is shown; Snakemake asks again when the job is ready to run."""
    from imgclf.training.cache import cache_estimate_mb, manifest_rows, training_memory_mb

    data = get_point_config(wildcards)["data"] if hasattr(wildcards, "point") else config["data"]
    channels = data["channels"] if isinstance(data["channels"], int) else 3
    images = manifest_rows(input.get("train")) + manifest_rows(input.get("val"))
    return training_memory_mb(config["train"]["cache"], cache_estimate_mb(images, data["image_size"], channels))


def get_training_gpus():
    """The GPUs a training job asks for: train.gpus_per_job."""
    return config["train"]["gpus_per_job"]


def get_final_config(wildcards):
    """The config sections a final training reads, with its seed: a change elsewhere
    (targets, evaluation, later stages) does not retrain."""
    from imgclf.final import training_config

    return training_config(config, int(wildcards.seed))


def get_final_files(filename):
    """One file of every final training, or of every test evaluation."""
    return [filename.format(seed=seed) for seed in get_final_seeds()]


def get_ensemble_evaluation(wildcards):
    """The ensemble's test evaluation, for the summary, when evaluation.deploy is ensemble."""
    if config["evaluation"]["deploy"] != "ensemble":
        return {}
    return {"ensemble": "results/evaluate/ensemble/metrics.json"}


def get_ensemble_deployment(wildcards):
    """The ensemble's model, card and test predictions, when evaluation.deploy is ensemble."""
    if config["evaluation"]["deploy"] != "ensemble":
        return {}
    return {
        "ensemble_model": "results/evaluate/ensemble/model.keras",
        "ensemble_card": "results/evaluate/ensemble/model.json",
        "ensemble_metrics": "results/evaluate/ensemble/metrics.json",
        "ensemble_predictions": "results/evaluate/ensemble/predictions.csv",
    }


def get_saliency_output():
    """The saliency maps' files, when evaluation.saliency.enabled."""
    if not config["evaluation"]["saliency"]["enabled"]:
        return []
    return [f"results/evaluate/saliency/{name}" for name in ("border_shares.csv", "gallery.png", "saliency.json")]


def get_export_output():
    """The TFLite files and their measurements (when export.enabled), and the model card."""
    outputs = ["results/export/model_card.json", "results/export/model_card.md"]
    if config["export"]["enabled"]:
        outputs += [
            *get_tflite_files(),
            "results/export/export.json",
            "results/export/export.md",
        ]
    return outputs


def get_tflite_files():
    """One TFLite file per export.formats entry, in its order."""
    return [f"results/export/model_{fmt}.tflite" for fmt in config["export"]["formats"]]


def get_model_card_input(wildcards):
    """What the model card reads: the run's summaries, and the export's measurements when
    export.enabled."""
    inputs = {
        "model": "results/evaluate/deployed/model.keras",
        "deployed": "results/evaluate/deployed/model.json",
        "evaluation": "results/evaluate/summary.json",
        "split": "results/split/split.json",
        "validation": "results/data/validation.json",
        "audit_data": "results/audit/data.json",
        "audit_groups": "results/audit/groups.json",
        "carbon": "results/carbon/carbon.json",
    }
    if config["export"]["enabled"]:
        inputs["export"] = "results/export/export.json"
    return inputs


def get_final_output():
    """Everything the default target (all) produces."""
    return [
        "results/data/index.csv",
        "results/data/validation.json",
        "results/data/validation.md",
        # Not the test manifest: only the evaluation asks for it.
        *get_fold_manifests("train"),
        *get_fold_manifests("val"),
        "results/split/split.json",
        *get_pretrained_weights_input().values(),
        "results/audit/data.json",
        *get_exploration_output(),
        *get_tuning_output(),
        *get_final_files("results/final/seed_{seed}/model.keras"),
        *get_final_files("results/evaluate/seed_{seed}/metrics.json"),
        "results/evaluate/summary.json",
        "results/evaluate/summary.md",
        *get_ensemble_evaluation(None).values(),
        "results/evaluate/deployed/model.keras",
        "results/evaluate/deployed/model.json",
        *get_saliency_output(),
        "results/audit/groups.json",
        "results/audit/audit.md",
        "results/carbon/carbon.json",
        "results/carbon/carbon.md",
        *get_export_output(),
        *get_monitor_output(),
        *(["results/monitor/summary.md"] if config["monitor"]["batches"] else []),
        *get_predict_output(),
        *(["results/predict/summary.md"] if config["predict"]["batches"] else []),
        "results/report/report.html",
        "results/report/reproducibility.json",
    ]


def get_stage_output(stage):
    """What ``snakemake <stage>`` makes: the stage's files among everything the pipeline makes
    (its folder results/<stage>/), and for monitor and predict their summary (an error without a
    batch)."""
    outputs = [p for p in get_final_output() if p.startswith(f"results/{stage}/")]
    if stage in ("monitor", "predict") and not outputs:
        outputs = [f"results/{stage}/summary.md"]  # no batch: its job says what to do
    return outputs


def get_tracked_job_outputs():
    """One output of every job that records its emissions (probe, exploration, tuning, final
    trainings, evaluation): the carbon report runs after them all."""
    return [
        *get_batch_size_probe(),
        *[
            path
            for study in config["explore"]["studies"]
            for path in get_study_outputs(study["name"], "metrics.json")
        ],
        *get_tuning_output()[:1],
        *get_final_files("results/final/seed_{seed}/metrics.json"),
        *get_final_files("results/evaluate/seed_{seed}/metrics.json"),
    ]


def get_seals():
    """Each final model's seal in this folder, by file name (none before the first evaluation)."""
    from imgclf.evaluate.seal import read_seal

    return {path.name: read_seal(path) for path in sorted(Path(SEAL_FOLDER).glob("*.json"))}


def warn_if_unsealed():
    """A loud banner when the sealed test set may be evaluated again."""
    reason = config["evaluation"]["unseal_reason"]
    if reason:
        print(
            "imgclf: WARNING: evaluation.unseal_reason is set: final models whose decisions changed "
            "since their test evaluation will be retrained and evaluated on the test set again. "
            f"Reason recorded: {reason!r}. Remove it once done.",
            file=sys.stderr,
        )


def get_class_names():
    """The data's classes, read cheaply at load time (None when unreadable)."""
    from imgclf.data import source_class_names

    return source_class_names(config["data"], get_data_root())


def print_stage_times():
    """Each stage's job time, from the benchmark files of the last run of each job."""
    from imgclf.core.timing import stage_times, stage_times_table

    print(stage_times_table(stage_times("logs", stage_names())), file=sys.stderr)


def get_report_input(wildcards):
    """Every file the HTML report shows, by name (lists in study or seed order)."""
    studies = [study["name"] for study in config["explore"]["studies"]]
    inputs = {
        "validation": "results/data/validation.json",
        "split": "results/split/split.json",
        "representation": "results/audit/representation.csv",
        "samples_plot": "results/report/sample_images.png",
        "study_summaries": [f"results/explore/{s}/summary.json" for s in studies],
        "study_points": [f"results/explore/{s}/points.csv" for s in studies],
        "study_objective_plots": [f"results/explore/{s}/objective.png" for s in studies],
        "study_best_curves": [f"results/explore/{s}/best_curves.png" for s in studies],
        "final_metrics": get_final_files("results/final/seed_{seed}/metrics.json"),
        "final_histories": get_final_files("results/final/seed_{seed}/history.csv"),
        "final_curves": get_final_files("results/final/seed_{seed}/curves.png"),
        "final_weight_histograms": get_final_files("results/final/seed_{seed}/weight_histograms.png"),
        "final_weight_samples": get_final_files("results/final/seed_{seed}/weight_samples.npz"),
        "test_metrics": get_final_files("results/evaluate/seed_{seed}/metrics.json"),
        "evaluation": "results/evaluate/summary.json",
        "metrics_plot": "results/evaluate/metrics_over_seeds.png",
        "confusion_matrix": "results/evaluate/confusion_matrix.png",
        "mistakes_plot": "results/report/misclassified.png",
        "model_card": "results/evaluate/deployed/model.json",
        "audit_data": "results/audit/data.json",
        "audit_groups": "results/audit/groups.json",
        "audit_plot": "results/audit/group_metrics.png",
        "carbon": "results/carbon/carbon.json",
        "carbon_plot": "results/carbon/energy_per_stage.png",
        "deployment_card": "results/export/model_card.json",
    }
    if config["export"]["enabled"]:
        inputs["export"] = "results/export/export.json"
    if config["evaluation"]["saliency"]["enabled"]:
        inputs["saliency"] = "results/evaluate/saliency/saliency.json"
        inputs["saliency_gallery"] = "results/evaluate/saliency/gallery.png"
    if config["monitor"]["batches"]:
        inputs["drift_reports"] = get_monitor_output()
        inputs["drift_plots"] = get_monitor_output("drift.png")
    if config["tune"]["enabled"]:
        inputs.update(
            tune_best="results/tune/best_hyperparameters.json",
            tune_trials="results/tune/trials.csv",
            tune_objective_plot="results/tune/objective_per_trial.png",
            tune_hyperparameters_plot="results/tune/hyperparameters.png",
            tune_top_curves="results/tune/top_trials_curves.png",
        )
    return inputs


def get_monitor_batch(name):
    """The settings of one monitored batch (monitor.batches)."""
    batches = config["monitor"]["batches"]
    if name not in batches:
        raise ValueError(
            f"no batch {name!r} in monitor.batches (configured: {', '.join(batches) or 'none'})"
        )
    return batches[name]


def get_monitor_batch_input(wildcards):
    """The batch's folder or manifest (its time ignored: the fingerprint param sees new files).
    A missing one is left to the job, whose error names the config key to fix."""
    path = get_monitor_batch(wildcards.batch)["path"]
    return {"batch": ancient(path)} if Path(path).exists() else {}


def get_monitor_batch_fingerprint(wildcards):
    """Paths and sizes of a batch's files, so that a changed batch is monitored again."""
    from imgclf.data import listing_fingerprint, manifest_fingerprint

    batch = get_monitor_batch(wildcards.batch)
    path = Path(batch["path"])
    if path.is_file():
        return manifest_fingerprint(path, Path(batch.get("root") or path.parent), batch.get("path_column", "path"))
    return listing_fingerprint(path)


def get_predict_batch(name):
    """The settings of one batch of images to predict (predict.batches)."""
    batches = config["predict"]["batches"]
    if name not in batches:
        raise ValueError(
            f"no batch {name!r} in predict.batches (configured: {', '.join(batches) or 'none'})"
        )
    return batches[name]


def get_predict_batch_input(wildcards):
    """The batch's folder or manifest (its time ignored: the fingerprint param sees new files)."""
    path = get_predict_batch(wildcards.batch)["path"]
    return {"batch": ancient(path)} if Path(path).exists() else {}


def get_predict_batch_fingerprint(wildcards):
    """Paths and sizes of a batch's files, so that a changed batch is predicted again."""
    from imgclf.data import listing_fingerprint, manifest_fingerprint

    batch = get_predict_batch(wildcards.batch)
    path = Path(batch["path"])
    if path.is_file():
        return manifest_fingerprint(path, Path(batch.get("root") or path.parent), batch.get("path_column", "path"))
    return listing_fingerprint(path)


def get_predict_model_input(wildcards):
    """The model predict.model names (the deployed model, the ensemble, or a TFLite file) and
    its card."""
    from imgclf.predict import model_files

    return model_files(config["predict"]["model"], config["export"]["formats"])


def get_predict_output(filename="predictions.csv"):
    """One file (the predictions by default) of every configured batch."""
    return [f"results/predict/{name}/{filename}" for name in config["predict"]["batches"]]


def get_monitor_output(filename="drift.json"):
    """One file (the drift report by default) of every configured batch."""
    return [f"results/monitor/{name}/{filename}" for name in config["monitor"]["batches"]]
