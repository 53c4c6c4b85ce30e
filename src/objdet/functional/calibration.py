"""Calibration of detection confidence: reliability bins, ECE and MCE at one IoU threshold.

Input is what :class:`objdet.training.metrics.MeanAveragePrecision` keeps, read at one IoU
threshold t and area range "all" (as :mod:`objdet.functional.curves` reads it): per kept
detection (the best ``max_detection_thresholds[-1]`` per image and class, as in pycocotools)
its score, class and two flags, ``tp`` (matched to a non-ignored GT at t) and ``ignored``
(pycocotools' dtIgnore: matched to a crowd or otherwise ignored GT).

Definitions (N detections counted, B bins):

* the detections counted are the kept ones that are not ignored, exactly those that AP
  counts as a TP or an FP; a detection is *correct* when it is a TP at t;
* each counted detection falls in one confidence bin by its raw score s (no sigmoid is
  applied: scores must lie in [0, 1], else calibration is not defined and a ValueError names
  the scores' range):

  - ``strategy="width"`` (default): B bins of equal width, bin b = [b/B, (b+1)/B), the last
    one closed (s = 1 is in bin B - 1);
  - ``strategy="mass"``: B bins of (nearly) equal count: with the scores of the group (all
    detections, or one class's) in increasing order, a detection whose score has r scores
    strictly below it out of n falls in bin floor(B r / n). Equal scores always share a bin
    (so the result does not depend on the detections' order), which can leave bins uneven or
    empty when many scores are tied;

* per bin: n_b its detections, conf_b their mean score, acc_b the fraction of them that are
  correct (the bin's precision at t);
* ECE = ``sum_b (n_b / N) |acc_b - conf_b|``, MCE = ``max_b |acc_b - conf_b|`` over the non-empty bins;
  both lie in [0, 1] and ECE <= MCE. Without any counted detection they are NaN.

Per class the same, on that class's detections alone (with ``"mass"``, its own bins). The
arrays of the result are torch tensors (on the input's device) when the inputs are tensors,
numpy arrays when they are numpy arrays: the command line computes calibration without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from objdet.functional.lanes import area_all_lane, lane_flags

__all__ = ["DetectionCalibration", "coco_state_calibration", "detection_calibration"]

Strategy = Literal["width", "mass"]


@dataclass
class DetectionCalibration:
    """Reliability bins, ECE and MCE, overall and per class (float64 unless noted).

    B bins, K classes (those with a counted detection, sorted). Arrays are torch tensors or
    numpy arrays, as the inputs were. Empty bins have NaN confidence, accuracy and bounds
    (``"mass"``) and count 0.
    """

    iou_threshold: float  #: the IoU threshold t of the TP flags
    strategy: str  #: "width" or "mass"
    n_bins: int  #: B
    n_detections: int  #: N, the counted detections
    lower: Any  #: (B,) lower bound of each bin, b/B with "width", its lowest score with "mass"
    upper: Any  #: (B,) upper bound of each bin, (b+1)/B with "width", its highest score with "mass"
    count: Any  #: (B,) int64 counted detections per bin
    confidence: Any  #: (B,) mean score per bin
    accuracy: Any  #: (B,) fraction of TPs per bin (precision at t)
    ece: Any  #: () expected calibration error, NaN without detections
    mce: Any  #: () maximum calibration error, NaN without detections
    classes: Any  #: (K,) int64 class ids
    class_count: Any  #: (K, B) int64
    class_confidence: Any  #: (K, B)
    class_accuracy: Any  #: (K, B)
    class_ece: Any  #: (K,)
    class_mce: Any  #: (K,)
    similarity: str = "IoU"  #: what ``iou_threshold`` thresholds: "IoU", or "OKS" for keypoints


# ------------------------------------------------------------------ numpy / torch operations
class _Numpy:
    """The few array operations the computation needs, on numpy arrays."""

    @staticmethod
    def f64(x: Any) -> Any:
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def i64(x: Any) -> Any:
        return np.asarray(x, dtype=np.int64)

    @staticmethod
    def flag(x: Any) -> Any:
        return np.asarray(x).astype(bool)

    @staticmethod
    def arange(n: int, like: Any) -> Any:
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def sort_stable(x: Any) -> Any:
        return np.argsort(x, kind="stable")

    @staticmethod
    def searchsorted(a: Any, v: Any, right: bool) -> Any:
        return np.searchsorted(a, v, side="right" if right else "left").astype(np.int64)

    @staticmethod
    def bincount(x: Any, weights: Any, minlength: int) -> Any:
        return np.bincount(x, weights=weights, minlength=minlength)

    @staticmethod
    def cummax(x: Any) -> Any:
        return np.maximum.accumulate(x) if x.size else x

    @staticmethod
    def unique(x: Any) -> Any:
        return np.unique(x)

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return np.where(c, a, b)

    @staticmethod
    def scalar(v: float, like: Any) -> Any:
        return np.float64(v)

    @staticmethod
    def rowmax(x: Any) -> Any:
        return x.max(1)

    @staticmethod
    def zeros_int(n: int, like: Any) -> Any:
        return np.zeros(n, dtype=np.int64)


class _Torch:
    """The same operations on torch tensors, on their device."""

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def f64(self, x: Any) -> Any:
        return x.to(self.torch.float64)

    def i64(self, x: Any) -> Any:
        return x.to(self.torch.int64)

    def flag(self, x: Any) -> Any:
        return x.bool()

    def arange(self, n: int, like: Any) -> Any:
        return self.torch.arange(n, dtype=self.torch.int64, device=like.device)

    def sort_stable(self, x: Any) -> Any:
        return self.torch.sort(x, stable=True).indices

    def searchsorted(self, a: Any, v: Any, right: bool) -> Any:
        return self.torch.searchsorted(a, v, right=right)

    def bincount(self, x: Any, weights: Any, minlength: int) -> Any:
        return self.torch.bincount(x, weights=weights, minlength=minlength)

    def cummax(self, x: Any) -> Any:
        return self.torch.cummax(x, 0).values if x.numel() else x

    def unique(self, x: Any) -> Any:
        return self.torch.unique(x)

    def where(self, c: Any, a: Any, b: Any) -> Any:
        return self.torch.where(c, a, b)

    def scalar(self, v: float, like: Any) -> Any:
        return self.torch.tensor(v, dtype=self.torch.float64, device=like.device)

    def rowmax(self, x: Any) -> Any:
        return x.amax(1)

    def zeros_int(self, n: int, like: Any) -> Any:
        return self.torch.zeros(n, dtype=self.torch.int64, device=like.device)


def _ops(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return _Numpy()
    if type(x).__module__.startswith("torch"):
        return _Torch()
    raise TypeError(f"`scores` must be a numpy array or a torch tensor, got {type(x).__name__}")


# ------------------------------------------------------------------ the computation
def _bin_index(xp: Any, s: Any, group: Any, n_groups: int, bins: int, strategy: str) -> Any:
    """(N,) bin of each detection, equal-width bins or equal-mass bins within its group."""
    n = s.shape[0]
    if strategy == "width":
        edges = xp.f64(xp.arange(bins + 1, s)) / bins
        b = xp.searchsorted(edges, s, right=True) - 1
        return xp.where(b >= bins, bins - 1, xp.where(b < 0, 0, b))
    by_score = xp.sort_stable(s)
    order = by_score[xp.sort_stable(group[by_score])]  # by group, then by score
    g, v = group[order], s[order]
    pos = xp.arange(n, s)
    first = pos == 0
    new_group = first | (g != g[pos - 1])  # pos - 1 = -1 at 0 is masked by `first`
    new_run = new_group | (v != v[pos - 1])
    zero = xp.zeros_int(n, s)
    group_start = xp.cummax(xp.where(new_group, pos, zero))
    run_start = xp.cummax(xp.where(new_run, pos, zero))
    size = xp.bincount(group, None, n_groups)[g]
    b_sorted = (bins * (run_start - group_start)) // size
    b = xp.zeros_int(n, s)
    b[order] = b_sorted
    return b


def _summaries(
    xp: Any, s: Any, correct: Any, group: Any, n_groups: int, bins: int, strategy: str
) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Per (group, bin): count, mean score, accuracy; per group ECE and MCE; and the bin of each detection."""
    b = _bin_index(xp, s, group, n_groups, bins, strategy)
    cell = group * bins + b
    cells = n_groups * bins
    count = xp.bincount(cell, None, cells).reshape(n_groups, bins)
    conf_sum = xp.f64(xp.bincount(cell, s, cells)).reshape(n_groups, bins)
    tp_sum = xp.f64(xp.bincount(cell, xp.f64(correct), cells)).reshape(n_groups, bins)
    n = xp.f64(count)
    nan = xp.scalar(float("nan"), s)
    filled = count > 0
    safe = xp.where(filled, n, xp.scalar(1.0, s))
    confidence = xp.where(filled, conf_sum / safe, nan)
    accuracy = xp.where(filled, tp_sum / safe, nan)
    gap = xp.where(filled, abs(accuracy - confidence), xp.scalar(0.0, s))
    total = n.sum(1)
    has = total > 0
    ece = xp.where(has, (gap * n).sum(1) / xp.where(has, total, xp.scalar(1.0, s)), nan)
    mce = xp.where(has, xp.rowmax(gap), nan)
    return count, confidence, accuracy, ece, mce, b


def detection_calibration(
    scores: Any,
    tp: Any,
    labels: Any | None = None,
    ignored: Any | None = None,
    bins: int = 10,
    strategy: Strategy = "width",
    iou_threshold: float = float("nan"),
) -> DetectionCalibration:
    """Reliability bins, ECE and MCE of detections (see the module docstring).

    Args:
        scores: (N,) raw scores in [0, 1] (numpy array or torch tensor, any device).
        tp: (N,) bool, the detection is a TP at the IoU threshold.
        labels: (N,) class ids (default: all 0, one class).
        ignored: (N,) bool, pycocotools' dtIgnore: such detections are not counted (default none).
        bins: number of bins B (>= 1).
        strategy: "width" (equal-width bins over [0, 1]) or "mass" (equal-count bins).
        iou_threshold: recorded in the result.

    Example:
        >>> import numpy as np
        >>> from objdet.functional.calibration import detection_calibration
        >>> c = detection_calibration(np.array([0.95, 0.9, 0.15, 0.1]), np.array([True, True, False, True]),
        ...                           bins=2)
        >>> c.count.tolist(), c.confidence.tolist(), c.accuracy.tolist()
        ([2, 2], [0.125, 0.925], [0.5, 1.0])
        >>> round(float(c.ece), 4), round(float(c.mce), 4)  # (2 * 0.375 + 2 * 0.075) / 4, 0.375
        (0.225, 0.375)
    """
    xp = _ops(scores)
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"`bins` must be a positive int, got {bins!r}")
    bins = int(bins)
    if strategy not in ("width", "mass"):
        raise ValueError(f"`strategy` must be 'width' or 'mass', got {strategy!r}")
    s = xp.f64(scores)
    if s.ndim != 1:
        raise ValueError(f"`scores` must be 1-D (one score per detection), got shape {tuple(s.shape)}")
    n_all = s.shape[0]

    def column(value: Any, name: str, convert: Any) -> Any:
        if value is None:
            return None
        out = convert(value)
        if tuple(out.shape) != (n_all,):
            raise ValueError(f"`{name}` must have shape ({n_all},) like `scores`, got {tuple(out.shape)}")
        return out

    correct = column(tp, "tp", xp.flag)
    label = column(labels, "labels", xp.i64)
    skip = column(ignored, "ignored", xp.flag)
    if label is None:
        label = xp.zeros_int(n_all, s)
    if skip is not None:
        keep = ~skip
        s, correct, label = s[keep], correct[keep], label[keep]
    n = int(s.shape[0])
    if n:
        lo, hi = float(s.min()), float(s.max())
        if not (lo >= 0.0 and hi <= 1.0):  # also false for NaN
            raise ValueError(
                "calibration needs detection scores in [0, 1] (probabilities); the counted detections' "
                f"scores range over [{lo:g}, {hi:g}]. objdet never applies a sigmoid: pass probabilities "
                "(e.g. torch.sigmoid(logits)) to update() if that is what your scores mean"
            )
    classes = xp.unique(label)
    cls = xp.searchsorted(classes, label, right=False)
    n_cls = int(classes.shape[0])
    count, confidence, accuracy, ece, mce, b = _summaries(
        xp, s, correct, xp.zeros_int(n, s), 1, bins, strategy
    )
    c_count, c_conf, c_acc, c_ece, c_mce, _ = _summaries(xp, s, correct, cls, n_cls, bins, strategy)
    nan = xp.scalar(float("nan"), s)
    if strategy == "width":
        edges = xp.f64(xp.arange(bins + 1, s)) / bins
        lower, upper = edges[:-1], edges[1:]
    else:  # the lowest and highest score of each bin, whose detections are contiguous in score order
        order = xp.sort_stable(s)
        b_sorted, v = b[order], s[order]
        ids = xp.arange(bins, s)
        start = xp.searchsorted(b_sorted, ids, right=False)
        stop = xp.searchsorted(b_sorted, ids, right=True) - 1
        filled = count[0] > 0
        last = max(n - 1, 0)
        lower = xp.where(filled, v[xp.where(filled, start, 0).clip(0, last)] if n else nan, nan)
        upper = xp.where(filled, v[xp.where(filled, stop, 0).clip(0, last)] if n else nan, nan)
    return DetectionCalibration(
        iou_threshold=float(iou_threshold),
        strategy=strategy,
        n_bins=bins,
        n_detections=n,
        lower=lower,
        upper=upper,
        count=count[0],
        confidence=confidence[0],
        accuracy=accuracy[0],
        ece=ece[0],
        mce=mce[0],
        classes=classes,
        class_count=c_count,
        class_confidence=c_conf,
        class_accuracy=c_acc,
        class_ece=c_ece,
        class_mce=c_mce,
    )


def coco_state_calibration(
    scores: Any,
    labels: Any,
    tp_packed: Any,
    ignored_packed: Any,
    n_areas: int,
    iou_thresholds: Sequence[float],
    iou_threshold: float | None = None,
    bins: int = 10,
    strategy: Strategy = "width",
) -> DetectionCalibration:
    """:func:`detection_calibration` on the COCO metric's compact state, at one IoU threshold, area "all".

    Args:
        scores, labels: (N,) per kept detection.
        tp_packed, ignored_packed: (N, B) uint8 lane flags (lane ``t * A + a``, see
            :func:`objdet.ops.coco.coco_match`); area range 0 must be "all".
        n_areas: A, the number of area ranges of the lanes.
        iou_thresholds: the T thresholds of the lanes.
        iou_threshold: which of them (default 0.5 when present, else the first); see
            :func:`objdet.functional.lanes.area_all_lane`.
        bins, strategy: as in :func:`detection_calibration`.
    """
    lane, threshold = area_all_lane(iou_thresholds, iou_threshold, n_areas)
    return detection_calibration(
        scores,
        lane_flags(tp_packed, lane),
        labels,
        lane_flags(ignored_packed, lane),
        bins=bins,
        strategy=strategy,
        iou_threshold=threshold,
    )
