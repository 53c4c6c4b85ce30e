"""Pure tensor kernels: box formats, the box IoU family and COCO matching. No state, any device."""

from objdet.ops.boxes import BOX_FORMATS, box_area, box_convert

__all__ = ["BOX_FORMATS", "box_area", "box_convert"]
