"""Confusion counts at a fixed threshold and the ratios computed from them.

Rules (used by :class:`~objdet.training.metrics.AnomalyDetectionMetrics`):

* a score is predicted anomalous when ``score >= threshold`` (raw score, no sigmoid), compared
  exactly for every dtype: the threshold is never rounded to the scores' dtype (float32
  ``0.7`` = 0.699999988 is *not* ``>= 0.7``; an int64 16777216 is not ``>= 16777217.0``);
  the comparison uses the smallest value of the scores' dtype that is ``>= threshold``, so
  no copy of the scores is made;
* counts are exact int64 ``[TP, FP, FN, TN]``;
* every ratio whose denominator is zero is NaN (never a silent 0, 0.5 or 1):
  precision needs a predicted positive, recall an actual positive, specificity an actual
  negative, F1 and IoU at least one positive (predicted or actual), accuracy any sample.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["binary_counts", "counts_to_metrics", "dtype_threshold"]


@lru_cache(maxsize=64)
def dtype_threshold(threshold: float, dtype: torch.dtype) -> float | int | None:
    """Smallest value of ``dtype`` that is ``>= threshold``, or None if there is none.

    For a tensor ``x`` of that dtype, ``x >= dtype_threshold(t, x.dtype)`` is exactly the real
    comparison ``x >= t`` (the returned value is exactly representable in ``dtype``); None means
    that no element can pass. ``threshold`` is a real number (int or float, not NaN).

    Example:
        >>> import torch
        >>> [dtype_threshold(0.7, d) for d in (torch.float32, torch.float64, torch.int64)]
        [0.7000000476837158, 0.7, 1]
    """
    if threshold != threshold:
        raise ValueError(f"`threshold` must be a real number, got {threshold!r}")
    if dtype.is_floating_point:
        try:
            t64 = float(threshold)
        except OverflowError:  # an int beyond the float64 range
            t64 = math.copysign(math.inf, threshold)
        value = torch.tensor(t64, dtype=torch.float64).to(dtype)  # one of the two neighbours of threshold
        if float(value) < threshold:  # exact comparison in Python
            value = torch.nextafter(value, torch.tensor(math.inf, dtype=dtype))
        return float(value)
    if dtype == torch.bool or dtype.is_complex:
        raise TypeError(f"`scores` must have a real floating or integer dtype, got {dtype}")
    info = torch.iinfo(dtype)
    if threshold == -math.inf:
        return info.min
    if threshold == math.inf:
        return None
    ceil = math.ceil(threshold)  # exact for int and float
    if ceil > info.max:
        return None
    return max(ceil, info.min)


def binary_counts(
    scores: Tensor, target: Tensor, threshold: float, ignore_mask: Tensor | None = None
) -> Tensor:
    """int64 ``[TP, FP, FN, TN]`` of ``scores >= threshold`` against a binary ``target`` (same shape).

    The comparison is exact for every dtype of ``scores`` (see :func:`dtype_threshold`).
    Elements where ``ignore_mask`` is True are not counted. No host synchronisation.

    Example:
        >>> import torch
        >>> binary_counts(torch.tensor([0.1, 0.7, 2.0, -3.0]), torch.tensor([0, 1, 0, 1]), 0.5).tolist()
        [1, 1, 1, 1]
    """
    value = dtype_threshold(threshold, scores.dtype)
    pred = scores >= value if value is not None else torch.zeros_like(scores, dtype=torch.bool)
    actual = target if target.dtype == torch.bool else target != 0
    if ignore_mask is None:
        total = torch.tensor(pred.numel(), dtype=torch.int64, device=pred.device)
    else:
        keep = ~ignore_mask
        pred = pred & keep
        actual = actual & keep
        total = keep.sum()
    tp = (pred & actual).sum()
    n_pred, n_actual = pred.sum(), actual.sum()
    fp, fn = n_pred - tp, n_actual - tp
    return torch.stack([tp, fp, fn, total - tp - fp - fn])


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp_min(1.0), torch.full_like(num, torch.nan))


def counts_to_metrics(counts: Tensor) -> dict[str, Tensor]:
    """precision, recall, f1, iou, specificity and accuracy (float64) from ``[TP, FP, FN, TN]``.

    Example:
        >>> import torch
        >>> m = counts_to_metrics(torch.tensor([6, 2, 4, 88]))
        >>> {k: round(v.item(), 4) for k, v in m.items()}
        {'precision': 0.75, 'recall': 0.6, 'f1': 0.6667, 'iou': 0.5, 'specificity': 0.9778, 'accuracy': 0.94}
    """
    tp, fp, fn, tn = counts.to(torch.float64).unbind(-1)
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
    }
