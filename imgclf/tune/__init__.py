"""The tuning stage: Bayesian search (Keras Tuner) over a declared space, on one fold (docs/tune.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "search_space": ["apply_values", "check_tuning", "fix_from_study"],
    "tf_jobs": ["tune_search"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
