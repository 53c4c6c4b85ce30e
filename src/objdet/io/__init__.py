"""COCO JSON <-> tensors: read GT and results files into torchmetrics-format inputs, write them back."""

from objdet.io.coco import (
    CocoGroundTruth,
    LazyImages,
    load_coco_dt,
    load_coco_gt,
    to_coco_gt,
    to_coco_results,
)
from objdet.io.torchmetrics_compat import coco_to_tm, tm_to_coco

__all__ = ["CocoGroundTruth", "LazyImages", "load_coco_dt", "load_coco_gt", "to_coco_gt", "to_coco_results"]
__all__ += ["coco_to_tm", "tm_to_coco"]
