"""The data stage: list the configured source, inspect and validate every image, write the index
(docs/data.md); and the batches of new images that the monitor and predict stages read."""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "batches": ["STAT_COLUMNS", "Batch", "inspect_batch", "list_batch", "stratified_draw"],
    "digits": ["digit_images", "write_digit_folder"],
    "imagefile": ["IMAGE_EXTENSIONS", "InspectOptions", "file_kind", "not_regular_detail"],
    "index": ["RESERVED_COLUMNS", "validate_source"],
    "jobs": ["validate_data"],
    "phash": ["near_duplicate_pairs"],
    "sources": ["Rejected", "data_root", "list_image_folder", "list_manifest", "listing_fingerprint",
        "manifest_fingerprint", "non_regular_mode", "read_user_csv", "source_class_names"],
    "validation": ["FILE_PROBLEMS", "INDEX_COLUMNS", "ProgressCallback", "ValidationOptions",
        "inspect_files", "raise_on_errors"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
