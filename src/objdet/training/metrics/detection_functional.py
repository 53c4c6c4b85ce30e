"""``mean_average_precision``: the functional form of :class:`MeanAveragePrecision`, as torchmetrics'.

A drop-in for ``torchmetrics.functional.detection.map.mean_average_precision`` (same
arguments, same result), without torchvision. It lives beside the metric, not in
:mod:`objdet.functional`, because it is the metric run once: one ``update()`` with all images,
then ``compute()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor

from objdet.training.metrics.mean_ap import MeanAveragePrecision


def mean_average_precision(
    preds: Sequence[dict[str, Any]],
    target: Sequence[dict[str, Any]],
    box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
    iou_type: Literal["bbox", "segm"] | tuple[str, ...] = "bbox",
    iou_thresholds: list[float] | None = None,
    rec_thresholds: list[float] | None = None,
    max_detection_thresholds: list[int] | None = None,
    class_metrics: bool = False,
    extended_summary: bool = False,
    average: Literal["macro", "micro"] = "macro",
    backend: Literal["pycocotools", "faster_coco_eval"] = "pycocotools",
    warn_on_many_detections: bool = True,
) -> dict[str, Tensor]:
    """COCO mAP / mAR of ``preds`` against ``target``: ``MeanAveragePrecision(...)`` updated once, computed.

    Arguments and result are those of :class:`MeanAveragePrecision` (and of torchmetrics'
    functional ``mean_average_precision``); ``warn_on_many_detections`` sets the metric's
    attribute of that name.

    Example:
        >>> import torch
        >>> from objdet.training.metrics import mean_average_precision
        >>> preds = [dict(boxes=torch.tensor([[258.0, 41.0, 606.0, 285.0]]),
        ...               scores=torch.tensor([0.536]), labels=torch.tensor([0]))]
        >>> target = [dict(boxes=torch.tensor([[214.0, 41.0, 562.0, 285.0]]), labels=torch.tensor([0]))]
        >>> result = mean_average_precision(preds, target)
        >>> round(result["map"].item(), 4), round(result["map_50"].item(), 4)
        (0.6, 1.0)
    """
    metric = MeanAveragePrecision(
        box_format=box_format,
        iou_type=iou_type,
        iou_thresholds=iou_thresholds,
        rec_thresholds=rec_thresholds,
        max_detection_thresholds=max_detection_thresholds,
        class_metrics=class_metrics,
        extended_summary=extended_summary,
        average=average,
        backend=backend,
    )
    metric.warn_on_many_detections = warn_on_many_detections
    metric.update(preds, target)
    result: dict[str, Tensor] = metric.compute()
    return result
