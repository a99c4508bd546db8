"""The predict stage: the class of every image of a batch of new images, with the deployed model,
the ensemble of the final models or a TFLite file (docs/predict.md). ``python -m imgclf.predict``
runs it without Snakemake."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "jobs": ["predict_summary_page"],
    "predictions": ["MODEL_KINDS", "model_files"],
    "tf_jobs": ["predict_batch"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
