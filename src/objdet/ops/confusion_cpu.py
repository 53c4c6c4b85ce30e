"""The detection confusion matrix's greedy matching compiled for the CPU (numba), numpy in and out.

The same contract as :func:`objdet.ops.confusion.greedy_match` and
:func:`objdet.functional.confusion.detection_confusion_matrix` (the torch kernels, which stay
for CUDA tensors and the metric): within each image every (detection, non-crowd GT) pair with
IoU >= ``iou_threshold`` is a candidate; candidates are ranked by descending IoU, then higher
detection score, then lower detection index, then lower GT index, and accepted greedily when
neither side is taken. Crowd GTs are never matched; a detection left unmatched that covers a
crowd GT of its image by intersection / detection area >= ``iou_threshold`` is
``crowd_covered`` (dropped from the matrix, COCO's crowd rule). IoU is pycocotools' ``bbIou``
on float64 xywh boxes, computed with the same operations as the torch kernel, so ties are
the same ties.

``matching="class_first"`` first accepts same-class candidates by that rule, then, among the
detections and GTs still free, the remaining candidates (other classes) by the same rule.
The default, ``"agnostic"``, ignores labels while matching.

Here the walk down the ranked candidates is the plain sequential loop (the torch kernel
runs it in rounds to stay vectorised). This module imports numpy and numba only (no torch).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from objdet.ops.coco_cpu import stable_argsort, stable_argsort_descending

__all__ = [
    "MATCHING",
    "confusion_precision_recall_f1_np",
    "detection_confusion_matrix_np",
    "greedy_match_np",
]

#: the matching rules, by name
MATCHING = ("agnostic", "class_first")


@njit(cache=True, nogil=True)
def _candidates(
    det_img: np.ndarray,
    det_xywh: np.ndarray,
    gt_img: np.ndarray,
    gt_xywh: np.ndarray,
    gt_crowd: np.ndarray,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs (det, GT, IoU) in (det, GT) input order within each image, and crowd cover flags."""
    n_det, n_gt = det_img.shape[0], gt_img.shape[0]
    d_order = stable_argsort(det_img)
    g_order = stable_argsort(gt_img)
    covered = np.zeros(n_det, np.bool_)
    cap = 16
    pair_det = np.empty(cap, np.int64)
    pair_gt = np.empty(cap, np.int64)
    pair_iou = np.empty(cap, np.float64)
    n_pairs = 0
    j = 0
    i = 0
    while i < n_det:
        image = det_img[d_order[i]]
        end = i
        while end < n_det and det_img[d_order[end]] == image:
            end += 1
        while j < n_gt and gt_img[g_order[j]] < image:
            j += 1
        g_first = j
        while j < n_gt and gt_img[g_order[j]] == image:
            j += 1
        for a in range(i, end):
            d = d_order[a]
            dx, dy, dw, dh = det_xywh[d, 0], det_xywh[d, 1], det_xywh[d, 2], det_xywh[d, 3]
            da = dw * dh
            for b in range(g_first, j):
                g = g_order[b]
                gx, gy, gw, gh = gt_xywh[g, 0], gt_xywh[g, 1], gt_xywh[g, 2], gt_xywh[g, 3]
                w = min(dx + dw, gx + gw) - max(dx, gx)
                h = min(dy + dh, gy + gh) - max(dy, gy)
                if not (w > 0 and h > 0):
                    continue
                inter = w * h
                union = da if gt_crowd[g] else da + gw * gh - inter
                iou = inter / union
                if iou < iou_threshold:
                    continue
                if gt_crowd[g]:
                    covered[d] = True
                    continue
                if n_pairs == cap:
                    cap *= 2
                    pair_det = _grow_int(pair_det, cap)
                    pair_gt = _grow_int(pair_gt, cap)
                    pair_iou = _grow_float(pair_iou, cap)
                pair_det[n_pairs] = d
                pair_gt[n_pairs] = g
                pair_iou[n_pairs] = iou
                n_pairs += 1
        i = end
    return pair_det[:n_pairs], pair_gt[:n_pairs], pair_iou[:n_pairs], covered


@njit(cache=True, nogil=True)
def _grow_int(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.empty(cap, a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def _grow_float(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.empty(cap, a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, nogil=True)
def _greedy(
    det_img: np.ndarray,
    det_label: np.ndarray,
    det_score: np.ndarray,
    det_xywh: np.ndarray,
    gt_img: np.ndarray,
    gt_label: np.ndarray,
    gt_xywh: np.ndarray,
    gt_crowd: np.ndarray,
    iou_threshold: float,
    class_first: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_det, n_gt = det_img.shape[0], gt_img.shape[0]
    pair_det, pair_gt, pair_iou, covered = _candidates(
        det_img, det_xywh, gt_img, gt_xywh, gt_crowd, iou_threshold
    )
    # rank: IoU desc, score desc, det asc, GT asc. Pairs come in (det, GT) order inside an image
    # (pairs of different images never compete), so two stable sorts leave the index ties in place.
    by_score = stable_argsort_descending(det_score[pair_det])
    by_iou = by_score[stable_argsort_descending(pair_iou[by_score])]
    det_to_gt = np.full(n_det, -1, np.int64)
    gt_to_det = np.full(n_gt, -1, np.int64)
    for phase in range(2 if class_first else 1):
        for p in by_iou:
            d, g = pair_det[p], pair_gt[p]
            if det_to_gt[d] >= 0 or gt_to_det[g] >= 0:
                continue
            if class_first and phase == 0 and det_label[d] != gt_label[g]:
                continue
            det_to_gt[d] = g
            gt_to_det[g] = d
    for d in range(n_det):
        if det_to_gt[d] >= 0:
            covered[d] = False
    return det_to_gt, gt_to_det, covered


def greedy_match_np(
    det_img: np.ndarray,
    det_score: np.ndarray,
    det_xywh: np.ndarray,
    gt_img: np.ndarray,
    gt_xywh: np.ndarray,
    gt_crowd: np.ndarray,
    iou_threshold: float,
    det_label: np.ndarray | None = None,
    gt_label: np.ndarray | None = None,
    matching: str = "agnostic",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one greedy matching (module docstring): ``(det_to_gt, gt_to_det, crowd_covered)``.

    Args:
        det_img: (D,) int64 image of each detection. det_score: (D,) float64. det_xywh: (D, 4) float64.
        gt_img: (G,) int64. gt_xywh: (G, 4) float64. gt_crowd: (G,) bool.
        iou_threshold: a pair is a candidate when its IoU >= this value, in (0, 1].
        det_label, gt_label: (D,), (G,) int64 classes, needed by ``matching="class_first"``.
        matching: "agnostic" or "class_first".

    Returns:
        ``det_to_gt`` (D,) int64 (-1 unmatched), ``gt_to_det`` (G,) int64 (-1 unmatched, always
        for crowd GTs), ``crowd_covered`` (D,) bool (unmatched and covered by a crowd GT).

    Example:
        >>> import numpy as np
        >>> det = np.array([[0.0, 0, 10, 10], [1.0, 0, 10, 10]])
        >>> d2g, g2d, _ = greedy_match_np(np.array([0, 0]), np.array([0.5, 0.9]), det, np.array([0]),
        ...                               np.array([[0.0, 0, 10, 10]]), np.array([False]), 0.5)
        >>> d2g.tolist(), g2d.tolist()  # the exact box wins over the higher score
        ([0, -1], [0])
    """
    if matching not in MATCHING:
        raise ValueError(f"`matching` must be one of {MATCHING}, got {matching!r}")
    n_det, n_gt = len(det_img), len(gt_img)
    if matching == "class_first" and (det_label is None or gt_label is None):
        raise ValueError("`matching='class_first'` needs `det_label` and `gt_label`")
    det_label = np.zeros(n_det, np.int64) if det_label is None else np.asarray(det_label, np.int64)
    gt_label = np.zeros(n_gt, np.int64) if gt_label is None else np.asarray(gt_label, np.int64)
    return _greedy(
        np.ascontiguousarray(det_img, np.int64),
        det_label,
        np.ascontiguousarray(det_score, np.float64),
        np.ascontiguousarray(det_xywh, np.float64).reshape(n_det, 4),
        np.ascontiguousarray(gt_img, np.int64),
        gt_label,
        np.ascontiguousarray(gt_xywh, np.float64).reshape(n_gt, 4),
        np.ascontiguousarray(gt_crowd, np.bool_),
        float(iou_threshold),
        matching == "class_first",
    )


@njit(cache=True, nogil=True)
def _cells(
    det_label: np.ndarray,
    gt_label: np.ndarray,
    gt_crowd: np.ndarray,
    det_to_gt: np.ndarray,
    gt_to_det: np.ndarray,
    covered: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    c = num_classes
    matrix = np.zeros((c + 1, c + 1), np.int64)
    for d in range(det_label.shape[0]):
        if covered[d]:
            continue
        g = det_to_gt[d]
        matrix[gt_label[g] if g >= 0 else c, det_label[d]] += 1
    for g in range(gt_label.shape[0]):
        if gt_to_det[g] < 0 and not gt_crowd[g]:
            matrix[gt_label[g], c] += 1
    return matrix


def detection_confusion_matrix_np(
    det_img: np.ndarray,
    det_label: np.ndarray,
    det_score: np.ndarray,
    det_xywh: np.ndarray,
    gt_img: np.ndarray,
    gt_label: np.ndarray,
    gt_xywh: np.ndarray,
    gt_crowd: np.ndarray,
    num_classes: int,
    iou_threshold: float = 0.5,
    conf_threshold: float = 0.25,
    matching: str = "agnostic",
) -> np.ndarray:
    """Confusion matrix int64 (C + 1, C + 1): rows ground truth, columns predictions, C background.

    The numpy twin of :func:`objdet.functional.confusion.detection_confusion_matrix`: only
    detections with score >= ``conf_threshold`` count; a matched pair adds one at (GT class,
    detection class), an unmatched detection at (C, its class) unless it is crowd-covered, an
    unmatched non-crowd GT at (its class, C). Labels lie in 0..C-1.

    Example:
        >>> import numpy as np
        >>> boxes = np.array([[0.0, 0, 10, 10], [50.0, 50, 10, 10]])
        >>> img = np.array([0, 0])
        >>> detection_confusion_matrix_np(img, np.array([1, 1]), np.array([0.9, 0.8]), boxes,
        ...                               img, np.array([0, 1]), boxes, np.array([False, False]), 2)
        array([[0, 1, 0],
               [0, 1, 0],
               [0, 0, 0]])
    """
    keep = np.asarray(det_score) >= conf_threshold
    det_label = np.asarray(det_label, np.int64)[keep]
    gt_label = np.asarray(gt_label, np.int64)
    gt_crowd = np.ascontiguousarray(gt_crowd, np.bool_)
    det_to_gt, gt_to_det, covered = greedy_match_np(
        np.asarray(det_img)[keep],
        np.asarray(det_score)[keep],
        np.asarray(det_xywh).reshape(-1, 4)[keep],
        gt_img,
        gt_xywh,
        gt_crowd,
        iou_threshold,
        det_label,
        gt_label,
        matching,
    )
    return _cells(det_label, gt_label, gt_crowd, det_to_gt, gt_to_det, covered, int(num_classes))


def confusion_precision_recall_f1_np(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall and F1 (float64 (C,) each, NaN where undefined) of a (C + 1, C + 1) matrix.

    The numpy twin of :func:`objdet.functional.confusion.confusion_precision_recall_f1`:
    precision = TP / column sum, recall = TP / row sum, F1 = 2 TP / (row sum + column sum).
    """
    m = np.asarray(matrix, np.float64)
    tp = np.diagonal(m)[:-1]
    n_pred = m.sum(0)[:-1]
    n_true = m.sum(1)[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": np.where(n_pred > 0, tp / np.maximum(n_pred, 1), np.nan),
            "recall": np.where(n_true > 0, tp / np.maximum(n_true, 1), np.nan),
            "f1": np.where(n_pred + n_true > 0, 2 * tp / np.maximum(n_pred + n_true, 1), np.nan),
        }
