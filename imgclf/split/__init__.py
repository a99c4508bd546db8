"""The split stage: the seeded, group-aware split into a sealed test set and fold manifests
(docs/split.md)."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "folds": ["SplitOptions", "check_sealed_test", "make_split", "sealed_test_input"],
    "jobs": ["check_class_names", "split_data"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
