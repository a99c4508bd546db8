"""The export stage: the deployed model as TFLite files measured against the Keras model, and
the model card (docs/export.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "formats": ["FORMATS"],
    "jobs": ["model_card"],
    "tf_jobs": ["export_model"],
    "tflite": ["export_settings", "interpreter", "load_pixels", "tflite_proba"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
