"""The final stage: the chosen configuration trained once per seed, behind the seal check
(docs/final.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "jobs": ["check_seal"],
    "plan": ["check_final", "final_fold", "final_seeds", "training_config"],
    "tf_jobs": ["final_train"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
