"""Pure tensor kernels: box formats, the box IoU family, mask IoU and COCO matching. No state, any device."""

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
from objdet.ops.masks import mask_area, mask_intersection, mask_iou

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
    "mask_area",
    "mask_intersection",
    "mask_iou",
]
