"""Box formats and areas.

Formats: ``xyxy`` (x1, y1, x2, y2), ``xywh`` (x, y, width, height) and ``cxcywh``
(centre x, centre y, width, height). Every function takes (..., 4) tensors and works
on any device and floating dtype.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


def _check_format(fmt: str, name: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"`{name}` must be one of {BOX_FORMATS}, got {fmt!r}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes (..., 4) from ``in_fmt`` to ``out_fmt``.

    Integer boxes are converted to float32 first (a centre is not an integer).

    Example:
        >>> import torch
        >>> box_convert(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "xyxy", "xywh")
        tensor([[10., 20., 20., 40.]])
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"`boxes` must have shape (..., 4), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    else:
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), -1)
    if in_fmt == "cxcywh" and out_fmt == "xywh":
        return torch.stack((x1, y1, c, d), -1)
    if in_fmt == "xywh" and out_fmt == "cxcywh":
        return torch.stack((a + c / 2, b + d / 2, c, d), -1)
    w, h = x2 - x1, y2 - y1
    if out_fmt == "xywh":
        return torch.stack((x1, y1, w, h), -1)
    return torch.stack((x1 + w / 2, y1 + h / 2, w, h), -1)


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of boxes (..., 4) -> (...). Degenerate boxes (x2 <= x1) have area 0."""
    _check_format(fmt, "fmt")
    if fmt != "xyxy":
        boxes = box_convert(boxes, fmt, "xyxy")
    elif not boxes.is_floating_point():
        boxes = boxes.float()
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return w * h
