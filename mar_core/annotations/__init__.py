"""Torch-free dataset reading and checking: the API process, the CLI and the trainer share it.

Public API::

    inspect_dataset(spec, data_roots=None, splits=None, check_images=True) -> DatasetReport
    detect_format(root) -> "coco" | "voc" | "yolo"
    find_splits(root, fmt) -> list[str]
    read_split(spec, split, data_roots=None) -> (coco_dict, images_dir, root)
    DATASET_READERS: format -> fn(root, split, images_dir | None, spec) -> (coco_dict, images_dir)

Every fault raises ``mar_core.errors.DatasetError`` naming the file and the image or line, its
``param`` the spec field (``dataset.path``, ``dataset.train_split``, ``dataset.val_split``, ...).
Never imports torch (an import-linter contract).
"""

from mar_core.annotations.inspect import detect_format, find_splits, inspect_dataset
from mar_core.annotations.readers import DATASET_READERS, read_split
from mar_core.annotations.report import DatasetReport, SplitReport

__all__ = [
    "DATASET_READERS",
    "DatasetReport",
    "SplitReport",
    "detect_format",
    "find_splits",
    "inspect_dataset",
    "read_split",
]
