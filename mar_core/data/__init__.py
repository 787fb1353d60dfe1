"""Detection datasets for training: ``DetectionDataset``, resumable loaders; re-exports the
torch-free readers and validation of ``mar_core.annotations``.

Public API (torch is imported by this package)::

    load_dataset(spec, split, data_roots=None) -> DetectionDataset
    dataset_summary(ds) -> dict
    DetectionDataset(coco_dict, images_dir, name="dataset")   # ds[i] -> (image 3xHxW, target)
    generate_synthetic(out_dir, seed=0, ...) -> dict            # from mar_core.synth (torch-free)
    build_train_loader(...), build_eval_loader(...), collate_detection(batch)
    IterationBatchSampler(num_samples, batch_size, seed, start_iter, end_iter)
    random_hflip(images, targets, p)
"""

from mar_core.annotations.coco import load_coco, remap_categories
from mar_core.annotations.readers import DATASET_READERS
from mar_core.annotations.validate import BoxIssue, ValidationReport, validate_dataset
from mar_core.annotations.voc import load_voc, voc_class_names
from mar_core.annotations.yolo import load_yolo
from mar_core.data.dataset import DetectionDataset, build_coco
from mar_core.data.loader import build_eval_loader, build_train_loader, collate_detection
from mar_core.data.registry import dataset_summary, load_dataset
from mar_core.data.sampler import IterationBatchSampler
from mar_core.data.transforms import hflip_boxes, random_hflip
from mar_core.synth import SHAPES, generate_synthetic

__all__ = [
    "DATASET_READERS",
    "SHAPES",
    "BoxIssue",
    "DetectionDataset",
    "IterationBatchSampler",
    "ValidationReport",
    "build_coco",
    "build_eval_loader",
    "build_train_loader",
    "collate_detection",
    "dataset_summary",
    "generate_synthetic",
    "hflip_boxes",
    "load_coco",
    "load_dataset",
    "load_voc",
    "load_yolo",
    "random_hflip",
    "remap_categories",
    "validate_dataset",
    "voc_class_names",
]
