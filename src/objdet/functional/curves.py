"""Detection curves from the COCO engine's per-detection flags, without re-running the evaluation.

Input is what :class:`objdet.training.metrics.MeanAveragePrecision` keeps, read at one IoU
threshold t and area range "all": per detection its score, class and two flags, ``tp``
(matched to a non-ignored GT at t) and ``ignored`` (pycocotools' dtIgnore: matched to a crowd
or otherwise ignored GT); every other detection is a false positive. Per class, the number of
non-ignored GTs is the recall denominator. Detections are those the engine kept, the best
``max_detection_thresholds[-1]`` per (image, class), as in pycocotools.

Two families of curves come out (:class:`DetectionCurves`):

* precision-recall per class: pycocotools' interpolated precision at the recall points
  (0:0.01:1 by default) and its mean, the class's AP at t, equal to pycocotools' value
  (the same accumulation code as :func:`objdet.functional.coco.coco_accumulate`);
* precision, recall and F1 as functions of the confidence threshold c (a detection counts
  when its score >= c; ignored detections never count), per class and overall, and the c
  that maximises F1. precision = TP / (TP + FP), recall = TP / nGT, F1 = 2 TP / (TP + FP + nGT).
  "overall" is ``average="micro"`` (counts pooled over classes: the detector's P/R/F1 at c)
  or ``"macro"`` (mean of the per-class values over classes with GT, precision over those of
  them with a detection at c).

Undefined values are NaN in the confidence curves (precision without detections at c, recall
without GT) and -1 in the PR curves and AP (pycocotools' convention for classes without GT).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from objdet.functional.coco import _accumulate_one, default_rec_thresholds
from objdet.functional.lanes import area_all_lane, lane_flags
from objdet.ops.coco import descending_order_key

__all__ = ["DetectionCurves", "FBetaCurves", "coco_state_curves", "confidence_grid", "detection_curves"]


@dataclass
class FBetaCurves:
    """F-beta vs confidence per class and overall, from :meth:`DetectionCurves.fbeta` (float64).

    F-beta = (1 + beta²) TP / ((1 + beta²) TP + beta² FN + FP): beta > 1 weighs recall more,
    beta < 1 precision; beta = 1 is F1. NaN with neither GT nor detection at a threshold.
    """

    beta: float  #: the beta
    classes: Tensor  #: (K,) int64 class ids, as in the curves
    iou_threshold: float  #: the IoU threshold t of the TP flags
    confidence: Tensor  #: (S,) increasing confidence thresholds
    average: str  #: how ``overall`` pools the classes, "micro" or "macro"
    fbeta: Tensor  #: (K, S) per class
    overall: Tensor  #: (S,) all classes, pooled as ``average`` says
    best_confidence: Tensor  #: () lowest confidence with the highest overall F-beta (NaN if none)
    best_fbeta: Tensor  #: () overall F-beta there
    class_best_confidence: Tensor  #: (K,) per class, the lowest confidence with its highest F-beta
    class_best_fbeta: Tensor  #: (K,) per class, its F-beta there


@dataclass
class DetectionCurves:
    """Per-class PR and confidence curves at one IoU threshold (float64 unless noted).

    K classes (those with a detection or a GT), R recall points, S confidence thresholds.
    """

    classes: Tensor  #: (K,) int64 class ids, sorted
    iou_threshold: float  #: the IoU threshold t of the TP flags
    num_gt: Tensor  #: (K,) int64 non-ignored GTs per class
    recall_points: Tensor  #: (R,) recall points of the PR curves
    pr_precision: Tensor  #: (K, R) interpolated precision at each recall point, -1 without GT
    ap: Tensor  #: (K,) AP at t (mean of ``pr_precision``), -1 without GT
    confidence: Tensor  #: (S,) increasing confidence thresholds
    tp: Tensor  #: (K, S) int64 true positives with score >= confidence
    fp: Tensor  #: (K, S) int64 false positives with score >= confidence
    precision: Tensor  #: (K, S) NaN where no counted detection
    recall: Tensor  #: (K, S) NaN without GT
    f1: Tensor  #: (K, S) NaN with neither GT nor detection
    average: str  #: how the overall curves pool the classes, "micro" or "macro"
    overall_precision: Tensor  #: (S,) precision of all classes, pooled as ``average`` says
    overall_recall: Tensor  #: (S,) recall of all classes, pooled as ``average`` says
    overall_f1: Tensor  #: (S,) F1 of all classes, pooled as ``average`` says
    best_confidence: Tensor  #: () lowest confidence with the highest overall F1 (NaN if none)
    best_f1: Tensor  #: () overall F1 there
    class_best_confidence: Tensor  #: (K,) per class, the lowest confidence with its highest F1
    class_best_f1: Tensor  #: (K,) per class, its F1 there
    similarity: str = "IoU"  #: what ``iou_threshold`` thresholds: "IoU", or "OKS" for keypoints

    @property
    def map(self) -> Tensor:
        """() mean AP over the classes with GT, -1 if none; pycocotools' AP at t (e.g. mAP@0.5)."""
        defined = self.ap > -1
        if not bool(defined.any()):
            return torch.tensor(-1.0, dtype=torch.float64, device=self.ap.device)
        return self.ap[defined].mean()

    def fbeta(self, beta: float) -> FBetaCurves:
        """F-beta vs confidence from the same TP/FP counts as ``f1`` (beta = 1 gives ``f1`` exactly).

        Per class and overall (pooled as ``average``: "micro" sums the counts over classes,
        "macro" averages the per-class values over classes with GT), with the lowest confidence
        threshold that maximises each.

        Example:
            >>> import torch
            >>> from objdet.functional.curves import detection_curves
            >>> c = detection_curves(torch.tensor([0.9, 0.8, 0.3]), torch.tensor([0, 0, 0]),
            ...                      torch.tensor([True, False, True]), torch.tensor([False, False, False]),
            ...                      torch.tensor([0]), torch.tensor([3]), 0.5, confidence=11)
            >>> f2 = c.fbeta(2.0)  # 2 TP, 1 FP, 1 FN at 0.3: 5 * 2 / (4 * 3 + 2 + 1)
            >>> round(f2.best_fbeta.item(), 4), f2.best_confidence.item()
            (0.6667, 0.0)
        """
        beta = _check_beta(beta)
        per_class, overall, best_c, best_f, class_best_c, class_best_f = _fscore_curves(
            self.tp, self.fp, self.num_gt, self.confidence, self.average, beta
        )
        return FBetaCurves(
            beta=beta,
            classes=self.classes,
            iou_threshold=self.iou_threshold,
            confidence=self.confidence,
            average=self.average,
            fbeta=per_class,
            overall=overall,
            best_confidence=best_c,
            best_fbeta=best_f,
            class_best_confidence=class_best_c,
            class_best_fbeta=class_best_f,
        )


def confidence_grid(scores: Tensor, steps: int = 1001) -> Tensor:
    """Increasing confidence thresholds (float64) for ``scores``.

    * every score in [0, 1] (or no score): ``steps`` evenly spaced thresholds over [0, 1];
    * otherwise (scores are not assumed to be probabilities: logits, distances, any real
      number): the thresholds are order statistics of the finite scores, from the lowest to
      the highest, evenly spaced in rank, so that they follow the scores wherever they lie
      (a few huge scores such as 1e300 do not squeeze every other detection below the second
      threshold, as an evenly spaced grid over [min, max] would). Repeated values are kept
      once, so there may be fewer than ``steps`` thresholds; when all scores are equal the
      grid runs evenly from that score to that score + 1.
    """
    if steps < 2:
        raise ValueError(f"`confidence` must be at least 2 steps, got {steps}")
    finite = scores.to(torch.float64)
    finite = finite[torch.isfinite(finite)]
    if finite.numel():
        smin, smax = (float(v) for v in torch.aminmax(finite))
        if smin < 0.0 or smax > 1.0:
            if smax == smin:
                return torch.linspace(smin, smin + 1.0, steps, dtype=torch.float64, device=scores.device)
            ordered = torch.sort(finite).values
            rank = torch.linspace(0, ordered.numel() - 1, steps, dtype=torch.float64, device=scores.device)
            return torch.unique(ordered[rank.round().long()])  # sorted, distinct
    return torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device=scores.device)


def _best(f1: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of (..., S): the highest F1 (NaN ignored) and the lowest threshold reaching it."""
    filled = torch.where(torch.isnan(f1), -1.0, f1)
    best, index = filled.max(-1)  # first maximum: the lowest threshold
    none = best < 0
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=grid.device)
    return torch.where(none, nan, grid[index]), torch.where(none, nan, best)


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"`beta` must be a finite number > 0, got {beta!r}")
    return float(beta)


def _fscore(t: Tensor, f: Tensor, g: Tensor, beta: float) -> Tensor:
    """F-beta = (1 + beta²) TP / ((1 + beta²) TP + beta² FN + FP) = (1 + beta²) TP / (beta² nGT + TP + FP).

    NaN with neither GT nor detection; beta = 1 is F1 = 2 TP / (TP + FP + nGT).
    """
    t, f, g = t.to(torch.float64), f.to(torch.float64), g.to(torch.float64)
    b2 = beta * beta
    den = b2 * g + t + f
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=t.device)
    return torch.where(den > 0, (1.0 + b2) * t / torch.where(den > 0, den, 1.0), nan)


def _fscore_curves(
    tp: Tensor, fp: Tensor, n_gt: Tensor, grid: Tensor, average: str, beta: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per class (K, S) and overall (S,) F-beta vs confidence, and where each is highest."""
    n_steps = grid.numel()
    per_class = _fscore(tp, fp, n_gt[:, None].expand(-1, n_steps), beta)
    if average == "micro":
        overall = _fscore(tp.sum(0), fp.sum(0), n_gt.sum().expand(n_steps), beta)
    elif bool((n_gt > 0).any()):
        overall = per_class[n_gt > 0].mean(0)
    else:
        overall = torch.full((n_steps,), float("nan"), dtype=torch.float64, device=grid.device)
    best_c, best_f = _best(overall, grid)
    class_best_c, class_best_f = _best(per_class, grid)
    return per_class, overall, best_c, best_f, class_best_c, class_best_f


def detection_curves(
    scores: Tensor,
    labels: Tensor,
    tp: Tensor,
    ignored: Tensor,
    gt_labels: Tensor,
    gt_counts: Tensor,
    iou_threshold: float,
    rec_thresholds: Tensor | None = None,
    confidence: int | Tensor = 1001,
    average: Literal["micro", "macro"] = "micro",
) -> DetectionCurves:
    """PR curves, AP and precision/recall/F1 vs confidence (see the module docstring).

    Args:
        scores, labels: (N,) per detection, in image order (ties in score keep this order, as
            in pycocotools).
        tp, ignored: (N,) bool flags at the IoU threshold, area "all".
        gt_labels: (G,) class of each entry of ``gt_counts`` (classes may repeat: they are summed).
        gt_counts: (G,) number of non-ignored GTs.
        iou_threshold: recorded in the result.
        rec_thresholds: (R,) recall points, default pycocotools' 0:0.01:1.
        confidence: number of thresholds (evenly spaced over [0, 1] for scores in [0, 1],
            else following the scores' ranks: see :func:`confidence_grid`) or an explicit 1-D
            tensor of thresholds (sorted here).
        average: "micro" or "macro" for the overall curves.

    Example:
        >>> import torch
        >>> from objdet.functional.curves import detection_curves
        >>> c = detection_curves(torch.tensor([0.9, 0.8, 0.3]), torch.tensor([0, 0, 0]),
        ...                      torch.tensor([True, False, True]), torch.tensor([False, False, False]),
        ...                      torch.tensor([0]), torch.tensor([2]), 0.5, confidence=11)
        >>> round(c.ap.item(), 4), c.best_confidence.item(), round(c.best_f1.item(), 3)
        (0.835, 0.0, 0.8)
        >>> c.precision[0, 5].item(), c.recall[0, 5].item()  # at confidence 0.5
        (0.5, 0.5)
    """
    if average not in ("micro", "macro"):
        raise ValueError(f"`average` must be 'micro' or 'macro', got {average!r}")
    device = scores.device
    f64 = torch.float64
    scores = scores.to(f64)
    labels, gt_labels = labels.long(), gt_labels.long()
    tp, ignored = tp.bool(), ignored.bool()
    classes = torch.unique(torch.cat([labels, gt_labels]))
    n_cls = classes.numel()
    cls = torch.searchsorted(classes, labels)
    n_gt = torch.zeros(n_cls, dtype=torch.int64, device=device)
    n_gt.index_add_(0, torch.searchsorted(classes, gt_labels), gt_counts.long())

    # PR curves: pycocotools' accumulation on detections sorted by class, then score (stable).
    rec = (
        torch.tensor(default_rec_thresholds(), dtype=f64, device=device)
        if rec_thresholds is None
        else rec_thresholds.to(device=device, dtype=f64)
    )
    by_score = torch.sort(descending_order_key(scores), stable=True).indices
    order = by_score[torch.sort(cls[by_score], stable=True).indices]
    pr, _, _ = _accumulate_one(
        scores[order], cls[order], tp[order][None], ignored[order][None], n_gt, n_cls, rec
    )
    pr_precision = pr[0].T.contiguous()  # (K, R)
    has_gt = n_gt > 0
    ap = torch.where(has_gt, pr_precision.mean(1) if rec.numel() else 0.0, -1.0)

    # Confidence curves: a detection counts at the first searchsorted(grid, score, right) thresholds.
    if isinstance(confidence, Tensor):
        grid = torch.sort(confidence.to(device=device, dtype=f64).reshape(-1)).values
        if grid.numel() == 0 or not bool(torch.isfinite(grid).all()):
            raise ValueError(f"`confidence` thresholds must be finite and non-empty, got {confidence}")
    else:
        grid = confidence_grid(scores, int(confidence))
    n_steps = grid.numel()
    upto = torch.searchsorted(grid, scores, right=True)  # (N,) in [0, S]
    counted = ~ignored
    cell = cls * (n_steps + 1) + upto

    def count_at_least(flags: Tensor) -> Tensor:
        hist = torch.bincount(cell[flags], minlength=n_cls * (n_steps + 1)).reshape(n_cls, n_steps + 1)
        return torch.flip(torch.cumsum(torch.flip(hist[:, 1:], [1]), 1), [1])  # (K, S): sum over m > j

    tp_c = count_at_least(tp & counted)
    fp_c = count_at_least(~tp & counted)
    nan = torch.tensor(float("nan"), dtype=f64, device=device)

    def prec_rec(t: Tensor, f: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        t, f, g = t.to(f64), f.to(f64), g.to(f64)
        precision = torch.where(t + f > 0, t / (t + f).clamp(min=1), nan)
        recall = torch.where(g > 0, t / g.clamp(min=1), nan)
        return precision, recall

    precision, recall = prec_rec(tp_c, fp_c, n_gt[:, None].expand(-1, n_steps))
    if average == "micro":
        o_p, o_r = prec_rec(tp_c.sum(0), fp_c.sum(0), n_gt.sum().expand(n_steps))
    elif bool(has_gt.any()):
        o_p, o_r = torch.nanmean(precision[has_gt], 0), recall[has_gt].mean(0)
    else:
        o_p = o_r = torch.full((n_steps,), float("nan"), dtype=f64, device=device)
    f1, o_f, best_c, best_f, class_best_c, class_best_f = _fscore_curves(tp_c, fp_c, n_gt, grid, average, 1.0)
    return DetectionCurves(
        classes=classes,
        iou_threshold=float(iou_threshold),
        num_gt=n_gt,
        recall_points=rec,
        pr_precision=pr_precision,
        ap=ap,
        confidence=grid,
        tp=tp_c,
        fp=fp_c,
        precision=precision,
        recall=recall,
        f1=f1,
        average=average,
        overall_precision=o_p,
        overall_recall=o_r,
        overall_f1=o_f,
        best_confidence=best_c,
        best_f1=best_f,
        class_best_confidence=class_best_c,
        class_best_f1=class_best_f,
    )


def coco_state_curves(
    scores: Tensor,
    labels: Tensor,
    tp_packed: Tensor,
    ignored_packed: Tensor,
    gt_labels: Tensor,
    gt_counts: Tensor,
    iou_thresholds: Sequence[float],
    iou_threshold: float | None = None,
    rec_thresholds: Tensor | None = None,
    confidence: int | Tensor = 1001,
    average: Literal["micro", "macro"] = "micro",
) -> DetectionCurves:
    """:func:`detection_curves` on the COCO metric's compact state, at one IoU threshold, area "all".

    Args:
        scores, labels: (N,) per kept detection, in update order.
        tp_packed, ignored_packed: (N, B) uint8 lane flags (lane ``t * A + a``, see
            :func:`objdet.ops.coco.coco_match`); area range 0 must be "all".
        gt_labels: (G,) class of each row of ``gt_counts``; gt_counts: (G, A) non-ignored GTs.
        iou_thresholds: the T thresholds of the lanes.
        iou_threshold: which of them (default 0.5 when present, else the first); another value
            is a ValueError, since the flags exist only for the thresholds matched in ``update()``.
        rec_thresholds, confidence, average: as in :func:`detection_curves`.
    """
    lane, threshold = area_all_lane(iou_thresholds, iou_threshold, gt_counts.shape[1])
    tp = lane_flags(tp_packed, lane)
    ignored = lane_flags(ignored_packed, lane)
    return detection_curves(
        scores,
        labels,
        tp,
        ignored,
        gt_labels,
        gt_counts[:, 0],
        threshold,
        rec_thresholds=rec_thresholds,
        confidence=confidence,
        average=average,
    )
