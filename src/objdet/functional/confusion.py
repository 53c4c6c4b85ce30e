"""Detection confusion matrix: counting, derived precision/recall/F1 and normalisation.

The matrix has shape (C + 1, C + 1), rows ground truth, columns predictions; index C is
background. A detection matched to a GT adds one at (GT class, detection class); an unmatched
detection adds one at (C, detection class) (a false positive); an unmatched GT adds one at
(GT class, C) (a false negative); [C, C] stays 0. Matching is
:func:`objdet.ops.confusion.greedy_match` (one-to-one, greedy by IoU; class-agnostic, or same
class first with ``matching="class_first"``) over the detections with score >=
``conf_threshold``; crowd GTs are neither counted nor matched, and an unmatched detection
covered by a crowd GT is dropped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objdet.functional.confusion_normalize import Normalize as Normalize
from objdet.functional.confusion_normalize import normalize_confusion_matrix
from objdet.ops.confusion import greedy_match

__all__ = [
    "confusion_precision_recall_f1",
    "detection_confusion_cells",
    "detection_confusion_matrix",
    "normalize_confusion_matrix",
]


def detection_confusion_matrix(
    det_img: Tensor,
    det_label: Tensor,
    det_score: Tensor,
    det_xywh: Tensor,
    gt_img: Tensor,
    gt_label: Tensor,
    gt_xywh: Tensor,
    gt_crowd: Tensor,
    num_classes: int,
    iou_threshold: float = 0.5,
    conf_threshold: float = 0.25,
    matching: str = "agnostic",
) -> Tensor:
    """Confusion matrix of one batch of images, int64 (C + 1, C + 1) (rules in the module docstring).

    Args:
        det_img, det_label: (D,) int64 image index and class (0..C-1) of each detection.
        det_score: (D,) scores; only those >= ``conf_threshold`` count.
        det_xywh: (D, 4) float64 xywh boxes.
        gt_img, gt_label: (G,) int64. gt_xywh: (G, 4) float64 xywh. gt_crowd: (G,) bool.
        num_classes: C.
        iou_threshold: a detection and a GT can match when their IoU >= this value.
        conf_threshold: minimum score of a counted detection (scores may be any real numbers).
        matching: "agnostic" (default) or "class_first" (see :func:`objdet.ops.confusion.greedy_match`).

    Example:
        >>> import torch
        >>> from objdet.functional.confusion import detection_confusion_matrix
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 10, 10]], dtype=torch.float64)
        >>> img = torch.tensor([0, 0])
        >>> detection_confusion_matrix(img, torch.tensor([1, 1]), torch.tensor([0.9, 0.8]), boxes,
        ...                            img, torch.tensor([0, 1]), boxes, torch.tensor([False, False]), 2)
        tensor([[0, 1, 0],
                [0, 1, 0],
                [0, 0, 0]])
    """
    c = num_classes
    cells, _ = detection_confusion_cells(
        det_img, det_label, det_score, det_xywh, gt_img, gt_label, gt_xywh, gt_crowd, num_classes,
        iou_threshold, conf_threshold, matching,
    )  # fmt: skip
    return torch.bincount(cells, minlength=(c + 1) ** 2).reshape(c + 1, c + 1).to(torch.int64)


def detection_confusion_cells(
    det_img: Tensor,
    det_label: Tensor,
    det_score: Tensor,
    det_xywh: Tensor,
    gt_img: Tensor,
    gt_label: Tensor,
    gt_xywh: Tensor,
    gt_crowd: Tensor,
    num_classes: int,
    iou_threshold: float = 0.5,
    conf_threshold: float = 0.25,
    matching: str = "agnostic",
) -> tuple[Tensor, Tensor]:
    """What each counted detection and GT adds to the matrix: its cell and its image.

    Same arguments as :func:`detection_confusion_matrix`. Returns ``(cells, images)``, int64
    each: ``cells`` are flat indices ``row * (C + 1) + column`` (one per counted detection,
    then one per missed GT), ``images`` their image indices. The matrix is the cells' bincount.
    """
    c = num_classes
    keep = det_score >= conf_threshold
    det_img, det_label, det_score, det_xywh = det_img[keep], det_label[keep], det_score[keep], det_xywh[keep]
    match = greedy_match(
        det_img,
        det_score,
        det_xywh,
        gt_img,
        gt_xywh,
        gt_crowd,
        iou_threshold,
        matching=matching,
        det_label=det_label,
        gt_label=gt_label,
    )
    # row of each detection: its GT's class, or C (background) through an extra last entry
    row_of_gt = torch.cat([gt_label, gt_label.new_full((1,), c)])
    det_row = row_of_gt[torch.where(match.det_to_gt >= 0, match.det_to_gt, gt_label.numel())]
    counted = ~match.crowd_covered
    det_cell = (det_row * (c + 1) + det_label)[counted]
    missed = (match.gt_to_det < 0) & ~gt_crowd
    gt_cell = gt_label[missed] * (c + 1) + c
    return torch.cat([det_cell, gt_cell]), torch.cat([det_img[counted], gt_img[missed]])


def confusion_precision_recall_f1(matrix: Tensor) -> dict[str, Tensor]:
    """Per-class precision, recall and F1 (float64, (C,) each) from a (C + 1, C + 1) matrix.

    For class k: TP = matrix[k, k]; precision = TP / (detections of class k) = TP / column sum;
    recall = TP / (non-crowd GT of class k) = TP / row sum; F1 = 2 TP / (row sum + column sum).
    A detection of class k matched to a GT of another class is a false positive for k and a
    false negative for the GT's class. Undefined values are NaN: precision without detections
    of the class, recall without GT of the class, F1 with neither.

    Example:
        >>> import torch
        >>> from objdet.functional.confusion import confusion_precision_recall_f1
        >>> m = torch.tensor([[3, 1, 1], [0, 2, 2], [1, 0, 0]])
        >>> {k: [round(x, 3) for x in v.tolist()] for k, v in confusion_precision_recall_f1(m).items()}
        {'precision': [0.75, 0.667], 'recall': [0.6, 0.5], 'f1': [0.667, 0.571]}
    """
    m = matrix.to(torch.float64)
    tp = torch.diagonal(m)[:-1]
    n_pred = m.sum(0)[:-1]
    n_true = m.sum(1)[:-1]
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=m.device)
    return {
        "precision": torch.where(n_pred > 0, tp / n_pred.clamp(min=1), nan),
        "recall": torch.where(n_true > 0, tp / n_true.clamp(min=1), nan),
        "f1": torch.where(n_pred + n_true > 0, 2 * tp / (n_pred + n_true).clamp(min=1), nan),
    }
