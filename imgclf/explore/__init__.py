"""The exploration stage: the batch-size probe and the studies (scientific, nuisance, fixed)
(docs/explore.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "jobs": ["explore_summary"],
    "studies": ["check_studies", "expand_study", "point_config"],
    "tf_jobs": ["explore_point", "probe_batch_size"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
