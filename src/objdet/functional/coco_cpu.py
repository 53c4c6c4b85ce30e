"""COCO accumulate and summarize compiled for the CPU, on the compact per-detection state.

The same rules as :mod:`objdet.functional.coco` (pycocotools' ``accumulate`` and
``summarize``), on numpy arrays: one compiled pass per (class, maxDet, area range, IoU
threshold) over the class's detections in score order, reading the packed flags in place.
The summary and the per-class values are plain numpy on the tables (they are small) and
serve both engines. This module imports numpy and numba only (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

#: np.spacing(1): pycocotools adds it to the precision denominator.
EPS = float(np.spacing(1))

_JIT = {"cache": True, "nogil": True}


@njit(**_JIT)
def class_score_order(cls: np.ndarray, scores: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Detections by (class, score descending, state order), and each class's first position (K + 1,)."""
    n = cls.shape[0]
    start = np.zeros(n_classes + 1, np.int64)
    for i in range(n):
        start[cls[i] + 1] += 1
    for k in range(n_classes):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    by_class = np.empty(n, np.int64)
    for i in range(n):  # counting sort: stable, state order kept inside a class
        by_class[fill[cls[i]]] = i
        fill[cls[i]] += 1
    order = np.empty(n, np.int64)
    for k in range(n_classes):
        seg = by_class[start[k] : start[k + 1]]
        order[start[k] : start[k + 1]] = seg[np.argsort(-scores[seg], kind="mergesort")]
    return order, start


@njit(**_JIT)
def accumulate_tables(
    scores: np.ndarray,
    cls: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    n_gt: np.ndarray,
    n_thresholds: int,
    rec_thresholds: np.ndarray,
    max_dets: np.ndarray,
    full_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' ``accumulate``: precision (T, R, K, A, M), recall (T, K, A, M), scores (T, R, K, A, M).

    Args:
        scores (N,) float64, cls (N,) int64 class index in [0, K), rank (N,) int64: per kept
            detection, in state (image) order.
        tp, ignored: (N, B) uint8 lane flags, lane ``t * A + a``.
        n_gt: (K, A) int64 non-ignored GTs per class and area range.
        n_thresholds: T. rec_thresholds: (R,) float64, increasing. max_dets: (M,) int64.
        full_m: (M,) bool; where False only the recall of that maxDet is filled (precision and
            scores stay -1), which is all ``summarize`` reads there.
    """
    n_cls, n_area = n_gt.shape
    n_rec, n_md = rec_thresholds.shape[0], max_dets.shape[0]
    precision = np.full((n_thresholds, n_rec, n_cls, n_area, n_md), -1.0)
    score_tab = np.full((n_thresholds, n_rec, n_cls, n_area, n_md), -1.0)
    recall = np.full((n_thresholds, n_cls, n_area, n_md), -1.0)
    order, start = class_score_order(cls, scores, n_cls)
    # gathered once in (class, score) order, so that every pass below reads memory in sequence
    s_sorted = scores[order]
    r_sorted = rank[order]
    tp_sorted = tp[order]
    ign_sorted = ignored[order]
    n_lanes = n_thresholds * n_area
    tp_count = np.zeros(n_lanes, np.int64)
    prec_buf = np.empty(scores.shape[0], np.float64)
    score_buf = np.empty(scores.shape[0], np.float64)
    for k in range(n_cls):
        s0, s1 = start[k], start[k + 1]
        for m in range(n_md):
            md = max_dets[m]
            n_in = 0  # detections of the class within maxDet of their image
            first = -1
            for i in range(s0, s1):
                if r_sorted[i] < md:
                    if first < 0:
                        first = i
                    n_in += 1
            if not full_m[m]:  # recall only: true positives per lane, one pass for all lanes
                tp_count[:] = 0
                for i in range(s0, s1):
                    if r_sorted[i] < md:
                        for lane in range(n_lanes):
                            tp_count[lane] += (tp_sorted[i, lane >> 3] >> (lane & 7)) & 1
                for a in range(n_area):
                    if n_gt[k, a] > 0:
                        for t in range(n_thresholds):
                            n_tp = tp_count[t * n_area + a] if n_in else 0
                            recall[t, k, a, m] = n_tp / n_gt[k, a]
                continue
            for a in range(n_area):
                npig = n_gt[k, a]
                if npig == 0:
                    continue
                for t in range(n_thresholds):
                    lane = t * n_area + a
                    byte, bit = lane >> 3, np.uint8(1 << (lane & 7))
                    n_tp = 0
                    n_fp = 0
                    for i in range(s0, s1):
                        if r_sorted[i] >= md:
                            continue
                        if tp_sorted[i, byte] & bit:
                            n_tp += 1
                            prec_buf[n_tp - 1] = n_tp / (n_fp + n_tp + EPS)
                            score_buf[n_tp - 1] = s_sorted[i]
                        elif not ign_sorted[i, byte] & bit:
                            n_fp += 1
                    # precision made non-increasing from the right (read only at true positives:
                    # between two of them it only falls or stays)
                    for j in range(n_tp - 2, -1, -1):
                        if prec_buf[j + 1] > prec_buf[j]:
                            prec_buf[j] = prec_buf[j + 1]
                    recall[t, k, a, m] = n_tp / npig if n_in else 0.0
                    j = 0
                    for r in range(n_rec):
                        thr = rec_thresholds[r]
                        if n_in == 0:
                            p_val, s_val = 0.0, 0.0
                        elif thr <= 0.0:  # reached by the first detection, whatever it is
                            p_val = prec_buf[0] if n_tp else 0.0
                            s_val = s_sorted[first]
                        else:  # the first true positive whose recall j / npig reaches thr
                            while j < n_tp and (j + 1) / npig < thr:
                                j += 1
                            if j < n_tp:
                                p_val, s_val = prec_buf[j], score_buf[j]
                            else:
                                p_val, s_val = 0.0, 0.0
                        precision[t, r, k, a, m] = p_val
                        score_tab[t, r, k, a, m] = s_val
    return precision, recall, score_tab


def coco_accumulate_np(
    scores: np.ndarray,
    labels: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    gt_labels: np.ndarray,
    gt_counts: np.ndarray,
    n_thresholds: int,
    rec_thresholds: np.ndarray,
    max_dets: Sequence[int],
    full: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools ``accumulate`` on the compact state: (classes, precision, recall, scores).

    Arguments as :func:`objdet.functional.coco.coco_accumulate`, as numpy arrays. ``full=False``
    fills precision and scores only at the last maxDet and at maxDet = 100 (what ``summarize``
    reads); recall is always filled.
    """
    labels = np.asarray(labels, np.int64)
    gt_labels = np.asarray(gt_labels, np.int64)
    classes = np.unique(np.concatenate([labels, gt_labels]))
    n_gt = np.zeros((classes.size, gt_counts.shape[1]), np.int64)
    np.add.at(n_gt, np.searchsorted(classes, gt_labels), gt_counts.astype(np.int64, copy=False))
    cls = np.searchsorted(classes, labels).astype(np.int64)
    md = np.asarray(max_dets, np.int64)
    full_m = np.array([full or i == len(md) - 1 or m == 100 for i, m in enumerate(md)], np.bool_)
    precision, recall, score_tab = accumulate_tables(
        np.ascontiguousarray(scores, np.float64),
        cls,
        np.asarray(rank, np.int64),
        np.ascontiguousarray(tp),
        np.ascontiguousarray(ignored),
        n_gt,
        int(n_thresholds),
        np.ascontiguousarray(rec_thresholds, np.float64),
        md,
        full_m,
    )
    return classes, precision, recall, score_tab


def _mean_defined(x: np.ndarray) -> float:
    """Mean of the entries > -1, or -1 when there are none (pycocotools' rule)."""
    kept = x[x > -1]
    return float(kept.mean()) if kept.size else -1.0


def summarize_np(
    precision: np.ndarray, recall: np.ndarray, iou_thresholds: np.ndarray, max_dets: Sequence[int]
) -> np.ndarray:
    """The 12 numbers of pycocotools' ``summarize`` (stats), float64 (12,).

    AP at every threshold, at 0.5, at 0.75, AP small/medium/large, AR at each of the three
    maxDets, AR small/medium/large; the area-split values use ``max_dets[2]``. As in
    pycocotools, the first number (mAP) is read at maxDets = 100, so it is -1 when 100 is not
    one of ``max_dets``; a threshold not in ``iou_thresholds`` (0.5, 0.75) likewise gives -1.
    """
    iou_thresholds = np.asarray(iou_thresholds, np.float64)

    def thr(value: float | None) -> np.ndarray:
        return np.arange(iou_thresholds.size) if value is None else np.flatnonzero(iou_thresholds == value)

    def det(value: int) -> list[int]:
        return [i for i, m in enumerate(max_dets) if m == value]

    def ap(iou: float | None, area: int, max_det: int) -> float:
        return _mean_defined(precision[thr(iou)][:, :, :, area][..., det(max_det)])

    def ar(area: int, max_det: int) -> float:
        return _mean_defined(recall[:, :, area][..., det(max_det)])

    top = max_dets[2]
    return np.array(
        [
            ap(None, 0, 100),  # pycocotools reads maxDets=100 here, whatever maxDets holds
            ap(0.5, 0, top),
            ap(0.75, 0, top),
            ap(None, 1, top),
            ap(None, 2, top),
            ap(None, 3, top),
            ar(0, max_dets[0]),
            ar(0, max_dets[1]),
            ar(0, top),
            ar(1, top),
            ar(2, top),
            ar(3, top),
        ],
        dtype=np.float64,
    )


def per_class_ap_ar_np(
    precision: np.ndarray, recall: np.ndarray, max_dets: Sequence[int], iou_index: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and AR at area 'all', as pycocotools' stats[0] and stats[8] for each class alone.

    AP is the mean over IoU thresholds and recall points at maxDets = 100 (-1 for every class
    when 100 is not one of ``max_dets``), AR the mean over IoU thresholds at ``max_dets[2]``.
    Classes without GT give -1. ``iou_index`` restricts both to one IoU threshold.
    """
    at_100 = [i for i, m in enumerate(max_dets) if m == 100]
    if iou_index is not None:
        precision = precision[iou_index : iou_index + 1]
        recall = recall[iou_index : iou_index + 1]
    prec = precision[..., 0, :][..., at_100]  # (T, R, K, #100)
    n_cls = precision.shape[2]
    prec = np.moveaxis(prec, 2, -1).reshape(prec.shape[0] * prec.shape[1] * prec.shape[3], n_cls)
    rec = recall[..., 0, 2]  # (T, K)
    defined_p = prec > -1
    ap = np.where(defined_p, prec, 0.0).sum(0) / np.maximum(defined_p.sum(0), 1)
    ap = np.where(defined_p.any(0), ap, -1.0)
    defined_r = rec > -1
    ar = np.where(defined_r, rec, 0.0).sum(0) / np.maximum(defined_r.sum(0), 1)
    ar = np.where(defined_r.any(0), ar, -1.0)
    return ap, ar
