"""The evaluation stage: the sealed test set evaluated once per final model, the targets, the
deployed model (docs/evaluate.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "agreement": ["LABEL_CHECK", "agreed_errors"],
    "jobs": ["deploy_model", "evaluate_ensemble", "evaluation_summary"],
    "metrics": ["GLOBAL_METRICS", "check_target_definitions", "flatten_metrics"],
    "saliency": ["area_share", "border_share", "border_findings", "border_summary", "grad_cam"],
    "seal": ["SealedTestError", "check_seal", "check_sealed_data", "read_seal"],
    "tf_jobs": ["ensemble_model", "evaluate_model", "saliency_maps"],
    "thresholds": ["thresholded_predictions"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
