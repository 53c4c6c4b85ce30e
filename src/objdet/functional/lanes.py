"""Reading one lane of the COCO engine's packed per-detection flags (numpy or torch, no torch import).

:func:`objdet.ops.coco.coco_match` (and its compiled twin) keeps, per kept detection, a bit
per (IoU threshold, area range) lane: lane ``t * A + a`` is bit ``lane % 8`` of byte
``lane // 8``. The curves and the calibration read lane "area all" (``a = 0``) at one IoU
threshold; this module is that reading, shared by both and by the torch-free command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["area_all_lane", "lane_flags"]


def area_all_lane(
    iou_thresholds: Sequence[float], iou_threshold: float | None, n_areas: int
) -> tuple[int, float]:
    """The lane of (``iou_threshold``, area "all") and the threshold itself, as the metric stores it.

    ``iou_threshold`` None means 0.5 when it is one of ``iou_thresholds``, else the first of
    them. A value that is not one of them (within 1e-9) is a ValueError, since the flags exist
    only for the thresholds matched in ``update()``.

    Example:
        >>> area_all_lane([0.5, 0.75], 0.75, 4)
        (4, 0.75)
    """
    thresholds = [float(t) for t in iou_thresholds]
    if iou_threshold is None:
        iou_threshold = 0.5 if any(abs(t - 0.5) < 1e-9 for t in thresholds) else thresholds[0]
    index = [i for i, t in enumerate(thresholds) if abs(t - float(iou_threshold)) < 1e-9]
    if not index:
        raise ValueError(
            f"`iou_threshold` must be one of the metric's iou_thresholds {thresholds}, got {iou_threshold!r}"
        )
    return index[0] * int(n_areas), thresholds[index[0]]


def lane_flags(packed: Any, lane: int) -> Any:
    """(N,) bool flags of one lane of packed bytes (N, B) uint8 (a numpy array or a torch tensor)."""
    return ((packed[:, lane // 8] >> (lane % 8)) & 1) != 0
