"""Pure tensor kernels: box formats, box IoUs, mask IoU, keypoint OKS and COCO matching. No state, any device.

The names below are imported on first use (PEP 562): the compiled CPU kernels
(``objdet.ops.coco_cpu``, ``objdet.ops.confusion_cpu``, ``objdet.ops.rle_cpu``,
``objdet.ops.keypoints_cpu``) import numpy
and numba only, and importing them does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from objdet.ops.boxes import (
        BOX_FORMATS,
        box_area,
        box_convert,
        box_iou,
        complete_box_iou,
        distance_box_iou,
        elementwise_box_iou,
        elementwise_complete_box_iou,
        elementwise_distance_box_iou,
        elementwise_generalized_box_iou,
        generalized_box_iou,
    )
    from objdet.ops.keypoints import keypoint_oks
    from objdet.ops.masks import mask_area, mask_intersection, mask_iou

_FROM = {
    **dict.fromkeys(
        (
            "BOX_FORMATS",
            "box_area",
            "box_convert",
            "box_iou",
            "complete_box_iou",
            "distance_box_iou",
            "elementwise_box_iou",
            "elementwise_complete_box_iou",
            "elementwise_distance_box_iou",
            "elementwise_generalized_box_iou",
            "generalized_box_iou",
        ),
        "objdet.ops.boxes",
    ),
    **dict.fromkeys(("mask_area", "mask_intersection", "mask_iou"), "objdet.ops.masks"),
    "keypoint_oks": "objdet.ops.keypoints",
}

__all__ = [
    "BOX_FORMATS",
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "distance_box_iou",
    "elementwise_box_iou",
    "elementwise_complete_box_iou",
    "elementwise_distance_box_iou",
    "elementwise_generalized_box_iou",
    "generalized_box_iou",
    "keypoint_oks",
    "mask_area",
    "mask_intersection",
    "mask_iou",
]


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(importlib.import_module(_FROM[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
