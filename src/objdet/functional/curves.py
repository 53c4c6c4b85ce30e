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

The arrays of the result are torch tensors (on the input's device) when the inputs are
tensors, numpy arrays when they are numpy arrays. The computation itself is numpy (the PR
curves through the compiled accumulate of :mod:`objdet.functional.coco_cpu`), so the
torch-free command line draws its curves without importing torch; CUDA inputs are copied to
the host for it (these are a few small arrays per evaluation, not a per-batch cost).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from objdet.functional._host import host_array
from objdet.functional.coco_params import default_rec_thresholds
from objdet.functional.lanes import area_all_lane, lane_flags

__all__ = ["DetectionCurves", "FBetaCurves", "coco_state_curves", "confidence_grid", "detection_curves"]


# ------------------------------------------------------------------ numpy in, tensors back out
def _device(*xs: Any) -> Any:
    """The device of the first torch tensor among ``xs``, None when there is none (numpy out)."""
    return next((x.device for x in xs if hasattr(x, "detach")), None)


def _out(value: Any, device: Any) -> Any:
    """``value`` (a numpy array or scalar) as a tensor on ``device``, or as a numpy array when None."""
    array = np.asarray(value)
    if not array.flags.c_contiguous:  # a reversed view, say (ascontiguousarray would make 0-d arrays 1-d)
        array = array.copy()
    if device is None:
        return array
    import torch  # the inputs were tensors: torch is imported already

    return torch.from_numpy(array).to(device)


def _converted(result: Any, device: Any) -> Any:
    """Every array field of the dataclass ``result`` through :func:`_out`."""
    for f in fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            setattr(result, f.name, _out(value, device))
    return result


@dataclass
class FBetaCurves:
    """F-beta vs confidence per class and overall, from :meth:`DetectionCurves.fbeta` (float64).

    F-beta = (1 + beta²) TP / ((1 + beta²) TP + beta² FN + FP): beta > 1 weighs recall more,
    beta < 1 precision; beta = 1 is F1. NaN with neither GT nor detection at a threshold.
    """

    beta: float  #: the beta
    classes: Any  #: (K,) int64 class ids, as in the curves
    iou_threshold: float  #: the IoU threshold t of the TP flags
    confidence: Any  #: (S,) increasing confidence thresholds
    average: str  #: how ``overall`` pools the classes, "micro" or "macro"
    fbeta: Any  #: (K, S) per class
    overall: Any  #: (S,) all classes, pooled as ``average`` says
    best_confidence: Any  #: () lowest confidence with the highest overall F-beta (NaN if none)
    best_fbeta: Any  #: () overall F-beta there
    class_best_confidence: Any  #: (K,) per class, the lowest confidence with its highest F-beta
    class_best_fbeta: Any  #: (K,) per class, its F-beta there


@dataclass
class DetectionCurves:
    """Per-class PR and confidence curves at one IoU threshold (float64 unless noted).

    K classes (those with a detection or a GT), R recall points, S confidence thresholds.
    Arrays are torch tensors (on the inputs' device) or numpy arrays, as the inputs were.
    """

    classes: Any  #: (K,) int64 class ids, sorted
    iou_threshold: float  #: the IoU threshold t of the TP flags
    num_gt: Any  #: (K,) int64 non-ignored GTs per class
    recall_points: Any  #: (R,) recall points of the PR curves
    pr_precision: Any  #: (K, R) interpolated precision at each recall point, -1 without GT
    ap: Any  #: (K,) AP at t (mean of ``pr_precision``), -1 without GT
    confidence: Any  #: (S,) increasing confidence thresholds
    tp: Any  #: (K, S) int64 true positives with score >= confidence
    fp: Any  #: (K, S) int64 false positives with score >= confidence
    precision: Any  #: (K, S) NaN where no counted detection
    recall: Any  #: (K, S) NaN without GT
    f1: Any  #: (K, S) NaN with neither GT nor detection
    average: str  #: how the overall curves pool the classes, "micro" or "macro"
    overall_precision: Any  #: (S,) precision of all classes, pooled as ``average`` says
    overall_recall: Any  #: (S,) recall of all classes, pooled as ``average`` says
    overall_f1: Any  #: (S,) F1 of all classes, pooled as ``average`` says
    best_confidence: Any  #: () lowest confidence with the highest overall F1 (NaN if none)
    best_f1: Any  #: () overall F1 there
    class_best_confidence: Any  #: (K,) per class, the lowest confidence with its highest F1
    class_best_f1: Any  #: (K,) per class, its F1 there
    similarity: str = "IoU"  #: what ``iou_threshold`` thresholds: "IoU", or "OKS" for keypoints

    @property
    def map(self) -> Any:
        """() mean AP over the classes with GT, -1 if none; pycocotools' AP at t (e.g. mAP@0.5)."""
        ap = host_array(self.ap)
        defined = ap[ap > -1]
        return _out(np.float64(defined.mean() if defined.size else -1.0), _device(self.ap))

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
            host_array(self.tp),
            host_array(self.fp),
            host_array(self.num_gt),
            host_array(self.confidence),
            self.average,
            beta,
        )
        result = FBetaCurves(
            beta=beta,
            classes=host_array(self.classes),
            iou_threshold=self.iou_threshold,
            confidence=host_array(self.confidence),
            average=self.average,
            fbeta=per_class,
            overall=overall,
            best_confidence=best_c,
            best_fbeta=best_f,
            class_best_confidence=class_best_c,
            class_best_fbeta=class_best_f,
        )
        return _converted(result, _device(self.tp))


def confidence_grid(scores: Any, steps: int = 1001) -> Any:
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
    return _out(_grid(host_array(scores).astype(np.float64).reshape(-1), steps), _device(scores))


def _linspace(start: float, end: float, steps: int) -> np.ndarray:
    """``steps`` evenly spaced values, ``start + (end - start) * (i / (steps - 1))``: the 0..1 grid
    holds the doubles nearest to i / (steps - 1) (0.7 is exactly 0.7, as a score written 0.7 is;
    ``np.linspace`` gives 0.7000000000000001 there)."""
    grid = start + (end - start) * (np.arange(steps, dtype=np.float64) / (steps - 1))
    grid[-1] = end
    return grid


def _grid(scores: np.ndarray, steps: int) -> np.ndarray:
    finite = scores[np.isfinite(scores)]
    if finite.size:
        smin, smax = float(finite.min()), float(finite.max())
        if smin < 0.0 or smax > 1.0:
            if smax == smin:
                return _linspace(smin, smin + 1.0, steps)
            ordered = np.sort(finite)
            rank = _linspace(0.0, float(ordered.size - 1), steps)
            return np.unique(ordered[np.round(rank).astype(np.int64)])  # sorted, distinct
    return _linspace(0.0, 1.0, steps)


def _best(f1: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (..., S): the highest F1 (NaN ignored) and the lowest threshold reaching it."""
    filled = np.where(np.isnan(f1), -1.0, f1)
    index = filled.argmax(-1)  # first maximum: the lowest threshold
    best = np.take_along_axis(filled, np.expand_dims(index, -1), -1)[..., 0]
    none = best < 0
    return np.where(none, np.nan, grid[index]), np.where(none, np.nan, best)


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"`beta` must be a finite number > 0, got {beta!r}")
    return float(beta)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den in float64, NaN where den is 0."""
    num, den = num.astype(np.float64), den.astype(np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _fscore(t: np.ndarray, f: np.ndarray, g: np.ndarray, beta: float) -> np.ndarray:
    """F-beta = (1 + beta²) TP / ((1 + beta²) TP + beta² FN + FP) = (1 + beta²) TP / (beta² nGT + TP + FP).

    NaN with neither GT nor detection; beta = 1 is F1 = 2 TP / (TP + FP + nGT).
    """
    b2 = beta * beta
    return _ratio((1.0 + b2) * t.astype(np.float64), b2 * g.astype(np.float64) + t + f)


def _fscore_curves(
    tp: np.ndarray, fp: np.ndarray, n_gt: np.ndarray, grid: np.ndarray, average: str, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per class (K, S) and overall (S,) F-beta vs confidence, and where each is highest."""
    n_steps = grid.size
    per_class = _fscore(tp, fp, np.broadcast_to(n_gt[:, None], tp.shape), beta)
    if average == "micro":
        overall = _fscore(tp.sum(0), fp.sum(0), np.full(n_steps, n_gt.sum()), beta)
    elif (n_gt > 0).any():
        overall = per_class[n_gt > 0].mean(0)
    else:
        overall = np.full(n_steps, np.nan)
    best_c, best_f = _best(overall, grid)
    class_best_c, class_best_f = _best(per_class, grid)
    return per_class, overall, best_c, best_f, class_best_c, class_best_f


def _pr_curves(
    scores: np.ndarray,
    labels: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    gt_labels: np.ndarray,
    gt_counts: np.ndarray,
    rec: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, n_gt, precision (K, R)): pycocotools' accumulate on one lane, every detection counted.

    The flags become a one-lane packed state (bit 0) with every rank 0 and one maxDet, so this
    is the engine's own accumulate (by class, then score descending, ties in input order).
    """
    from objdet.functional.coco_cpu import coco_accumulate_np  # numba: not needed to unpickle curves

    n = scores.size
    # a detection flagged both TP and ignored counts as a TP here (never as an FP), as before
    ignored = ignored & ~tp
    by_rec = np.argsort(rec, kind="stable")  # the accumulate reads the recall points in increasing order
    classes, precision, _, _ = coco_accumulate_np(
        scores, labels, np.zeros(n, np.int64), tp.astype(np.uint8).reshape(n, 1),
        ignored.astype(np.uint8).reshape(n, 1), gt_labels, gt_counts.reshape(-1, 1), 1, rec[by_rec], [1],
    )  # fmt: skip
    n_gt = np.zeros(classes.size, np.int64)
    np.add.at(n_gt, np.searchsorted(classes, gt_labels), gt_counts)
    pr = np.empty((classes.size, rec.size), np.float64)
    pr[:, by_rec] = precision[0, :, :, 0, 0].T  # (K, R), the recall points in the caller's order
    return classes, n_gt, pr


def detection_curves(
    scores: Any,
    labels: Any,
    tp: Any,
    ignored: Any,
    gt_labels: Any,
    gt_counts: Any,
    iou_threshold: float,
    rec_thresholds: Any | None = None,
    confidence: int | Any = 1001,
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
    device = _device(scores, labels, tp, ignored, gt_labels, gt_counts)
    scores = host_array(scores).astype(np.float64).reshape(-1)
    labels, gt_labels = (
        host_array(labels).astype(np.int64).reshape(-1),
        host_array(gt_labels).astype(np.int64).reshape(-1),
    )
    tp, ignored = host_array(tp).astype(bool).reshape(-1), host_array(ignored).astype(bool).reshape(-1)
    gt_counts = host_array(gt_counts).astype(np.int64).reshape(-1)
    if not (scores.size == labels.size == tp.size == ignored.size):
        raise ValueError(
            f"`scores`, `labels`, `tp` and `ignored` must have one entry per detection, got sizes "
            f"{scores.size}, {labels.size}, {tp.size}, {ignored.size}"
        )
    if gt_labels.size != gt_counts.size:
        raise ValueError(
            f"`gt_labels` and `gt_counts` must have the same size, got {gt_labels.size} and {gt_counts.size}"
        )
    rec = (
        np.asarray(default_rec_thresholds(), np.float64)
        if rec_thresholds is None
        else host_array(rec_thresholds).astype(np.float64).reshape(-1)
    )
    classes, n_gt, pr_precision = _pr_curves(scores, labels, tp, ignored, gt_labels, gt_counts, rec)
    n_cls = classes.size
    has_gt = n_gt > 0
    ap = np.where(has_gt, pr_precision.mean(1) if rec.size else 0.0, -1.0)

    # Confidence curves: a detection counts at the first searchsorted(grid, score, right) thresholds.
    if hasattr(confidence, "detach") or np.ndim(confidence) > 0:  # a tensor or a sequence: the thresholds
        grid = np.sort(host_array(confidence).astype(np.float64).reshape(-1))
        if grid.size == 0 or not np.isfinite(grid).all():
            raise ValueError(f"`confidence` thresholds must be finite and non-empty, got {confidence}")
    elif int(confidence) < 2:
        raise ValueError(f"`confidence` must be at least 2 steps, got {confidence}")
    else:
        grid = _grid(scores, int(confidence))
    n_steps = grid.size
    upto = np.searchsorted(grid, scores, side="right")  # (N,) in [0, S]
    cell = np.searchsorted(classes, labels) * (n_steps + 1) + upto
    counted = ~ignored

    def count_at_least(flags: np.ndarray) -> np.ndarray:
        hist = np.bincount(cell[flags], minlength=n_cls * (n_steps + 1)).reshape(n_cls, n_steps + 1)
        return np.cumsum(hist[:, :0:-1], 1)[:, ::-1].astype(np.int64)  # (K, S): sum over m > j

    tp_c = count_at_least(tp & counted)
    fp_c = count_at_least(~tp & counted)
    precision, recall = _ratio(tp_c, tp_c + fp_c), _ratio(tp_c, np.broadcast_to(n_gt[:, None], tp_c.shape))
    if average == "micro":
        t_all, f_all = tp_c.sum(0), fp_c.sum(0)
        o_p, o_r = _ratio(t_all, t_all + f_all), _ratio(t_all, np.full(n_steps, n_gt.sum()))
    elif has_gt.any():
        with warnings.catch_warnings():  # a threshold where no class with GT has a detection: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            o_p = np.nanmean(precision[has_gt], 0)
        o_r = recall[has_gt].mean(0)
    else:
        o_p, o_r = np.full(n_steps, np.nan), np.full(n_steps, np.nan)
    f1, o_f, best_c, best_f, class_best_c, class_best_f = _fscore_curves(tp_c, fp_c, n_gt, grid, average, 1.0)
    result = DetectionCurves(
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
    return _converted(result, device)


def coco_state_curves(
    scores: Any,
    labels: Any,
    tp_packed: Any,
    ignored_packed: Any,
    gt_labels: Any,
    gt_counts: Any,
    iou_thresholds: Sequence[float],
    iou_threshold: float | None = None,
    rec_thresholds: Any | None = None,
    confidence: int | Any = 1001,
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
    return detection_curves(
        scores,
        labels,
        lane_flags(tp_packed, lane),
        lane_flags(ignored_packed, lane),
        gt_labels,
        gt_counts[:, 0],
        threshold,
        rec_thresholds=rec_thresholds,
        confidence=confidence,
        average=average,
    )
