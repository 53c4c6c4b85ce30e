"""Pure tensor kernels: box formats, the box IoU family and COCO matching. No state, any device."""

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
]
