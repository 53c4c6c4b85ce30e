"""COCO JSON <-> tensors: read GT and results files into torchmetrics-format inputs, write them back."""

from objdet.io.coco import (
    CocoGroundTruth,
    LazyImages,
    load_coco_dt,
    load_coco_gt,
    to_coco_gt,
    to_coco_results,
)

__all__ = ["CocoGroundTruth", "LazyImages", "load_coco_dt", "load_coco_gt", "to_coco_gt", "to_coco_results"]
