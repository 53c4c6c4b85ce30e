"""pycocotools' default parameters and the names of its 12 summary numbers (no torch, no numba).

Shared by the torch and the compiled COCO engines and by the command line, which reads them
without importing either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: pycocotools' defaults.
AREA_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 1e10),
    (0.0, 32.0**2),
    (32.0**2, 96.0**2),
    (96.0**2, 1e10),
)
AREA_LABELS: tuple[str, ...] = ("all", "small", "medium", "large")


def coco_stat_names(max_dets: Sequence[int] = (1, 10, 100)) -> tuple[str, ...]:
    """torchmetrics' names of the 12 numbers of :func:`coco_summarize`, in that order.

    Example:
        >>> coco_stat_names()[:3], coco_stat_names()[6:9]
        (('map', 'map_50', 'map_75'), ('mar_1', 'mar_10', 'mar_100'))
    """
    ap = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")
    return (*ap, *(f"mar_{m}" for m in max_dets), "mar_small", "mar_medium", "mar_large")


def default_iou_thresholds() -> list[float]:
    """0.50:0.05:0.95 exactly as pycocotools builds it (float64 ``np.linspace``)."""
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True).tolist()


def default_rec_thresholds() -> list[float]:
    """0:0.01:1 exactly as pycocotools builds it (float64 ``np.linspace``)."""
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True).tolist()


#: pycocotools' keypoint parameters: no "small" range (people that small carry no keypoints),
#: one max-detection threshold.
KEYPOINT_AREA_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 1e10),
    (32.0**2, 96.0**2),
    (96.0**2, 1e10),
)
KEYPOINT_AREA_LABELS: tuple[str, ...] = ("all", "medium", "large")
KEYPOINT_MAX_DETS: tuple[int, ...] = (20,)


def keypoint_stat_names(max_det: int = 20) -> tuple[str, ...]:
    """Names of the 10 numbers of pycocotools' keypoint summary, in its ``stats`` order.

    AP at IoU (OKS) 0.50:0.95, 0.5, 0.75, medium, large, then AR the same way, all at maxDets
    ``max_det``; torchmetrics' naming (``mar_<maxDets>`` for the overall AR).

    Example:
        >>> keypoint_stat_names()[4:7]
        ('map_large', 'mar_20', 'mar_50')
    """
    return (
        "map", "map_50", "map_75", "map_medium", "map_large",
        f"mar_{max_det}", "mar_50", "mar_75", "mar_medium", "mar_large",
    )  # fmt: skip


def area_ranges_for(iou_type: str) -> tuple[tuple[float, float], ...]:
    """pycocotools' area ranges of an evaluation ("bbox", "segm" or "keypoints")."""
    return KEYPOINT_AREA_RANGES if iou_type == "keypoints" else AREA_RANGES


def ap_max_det_for(iou_type: str, max_dets: Sequence[int]) -> int:
    """The maxDets pycocotools reads its AP at (overall and per class): 100, the last (20) for keypoints."""
    return max_dets[-1] if iou_type == "keypoints" else 100


def similarity_for(iou_type: str) -> str:
    """What the thresholds of an evaluation threshold: "IoU", or "OKS" for keypoints (figure labels)."""
    return "OKS" if iou_type == "keypoints" else "IoU"


def stat_names_for(iou_type: str, max_dets: Sequence[int]) -> tuple[str, ...]:
    """The summary's names for ``iou_type``: 12 COCO numbers, or 10 for keypoints."""
    return keypoint_stat_names(max_dets[-1]) if iou_type == "keypoints" else coco_stat_names(max_dets)
