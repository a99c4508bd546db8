"""The monitoring stage: drift of new batches of images against the deployed model's reference
(docs/monitor.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "jobs": ["monitor_summary"],
    "tf_jobs": ["monitor_batch", "monitor_reference"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
