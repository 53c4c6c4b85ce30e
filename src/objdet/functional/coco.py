"""COCO accumulate and summarize on the compact per-detection state.

Input is what :func:`objdet.ops.coco.coco_match` leaves per detection (score, class, rank in
its (image, class) group, packed TP / ignored flags per (IoU threshold, area range) lane)
and, per class and area range, the number of non-ignored GTs. The result is pycocotools'
``eval`` dict: ``precision`` (T, R, K, A, M), ``recall`` (T, K, A, M), ``scores``
(T, R, K, A, M), followed by the 12 summary numbers.

Rules kept from pycocotools' ``accumulate``:

* per class, detections (the first ``maxDet`` of each image) are sorted by score with a
  stable sort, so ties keep image order, then the order inside the image;
* ignored detections keep their place in that order (they move neither TP nor FP count);
* precision = TP / (TP + FP + eps) with eps = 2**-52, made non-increasing from the right;
  the precision at recall threshold r is taken at the first detection whose recall
  TP / nGT (float64) is >= r, 0 past the last detection; ``scores`` likewise;
* classes without non-ignored GT get -1 and stay out of every mean.

Everything is vectorised over IoU thresholds and classes; the loop runs over the (area
range, maxDet) combinations needed (4 for the summary, 12 with the full tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from objdet.functional.coco_cpu import (
    coco_accumulate_np,
    per_class_ap_ar_np,
    summarize_for,
)

# the defaults live in a module without torch (the command line reads them without it)
from objdet.functional.coco_params import (
    AREA_LABELS,
    AREA_RANGES,
    coco_stat_names,
    default_iou_thresholds,
    default_rec_thresholds,
)
from objdet.ops.coco import descending_order_key, unpack_lanes

#: np.spacing(1): pycocotools adds it to the precision denominator.
_EPS = float(np.spacing(1))

__all__ = [
    "AREA_LABELS",
    "AREA_RANGES",
    "CocoTables",
    "coco_accumulate",
    "coco_accumulate_torch",
    "coco_stat_names",
    "coco_summarize",
    "contiguous_tables",
    "default_iou_thresholds",
    "default_rec_thresholds",
    "per_class_ap_ar",
]


@dataclass
class CocoTables:
    """pycocotools' ``eval`` arrays plus the class ids along K."""

    classes: Tensor  # (K,) int64, sorted
    precision: Tensor  # (T, R, K, A, M) float64, -1 where undefined
    recall: Tensor  # (T, K, A, M) float64
    scores: Tensor  # (T, R, K, A, M) float64


def contiguous_tables(tables: CocoTables) -> CocoTables:
    """``tables`` with contiguous tensors (the compiled engine fills strided views; a no-op otherwise)."""
    return CocoTables(
        classes=tables.classes,
        precision=tables.precision.contiguous(),
        recall=tables.recall.contiguous(),
        scores=tables.scores.contiguous(),
    )


def _min_count_reaching(rec_thresholds: Tensor, n_gt: Tensor) -> Tensor:
    """(K, R) smallest integer c with float64(c / n_gt[k]) >= r (exact, for searching TP counts)."""
    n = n_gt.to(torch.float64)[:, None]
    r = rec_thresholds[None, :]
    c = torch.ceil(r * n)
    c = torch.where(c / n >= r, c, c + 1)
    c = torch.where(((c - 1) / n >= r) & (c > 0), c - 1, c)
    return c.to(torch.int64)


def _accumulate_one(
    scores: Tensor,
    cls: Tensor,
    tp: Tensor,
    ignored: Tensor,
    n_gt: Tensor,
    n_classes: int,
    rec_thresholds: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """One (area range, maxDet) combination, all IoU thresholds and classes at once.

    ``scores``/``cls`` (N,) are sorted by class, then score (stable); ``tp``/``ignored`` (T, N).
    Returns precision (T, R, K), recall (T, K), scores (T, R, K).

    Between two true positives precision only falls (false positives) or stays (ignored
    detections), so its running maximum from the right, read at the first detection reaching
    recall r, is the maximum over the true positives from the c-th on, where c is the TP count
    that reaches r. The work is therefore done on the list of true positives only.
    """
    n_thr, n = tp.shape
    device = scores.device
    n_groups = n_thr * n_classes
    counts = torch.bincount(cls, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts

    count_dtype = torch.int32 if n < 2**31 else torch.int64  # int32 cumsum is much faster
    fp_cum = torch.cumsum(~tp & ~ignored, 1, dtype=count_dtype)  # (T, N), running over all classes
    if n:  # (T, K): false positives of earlier classes
        fp_before = torch.where(starts > 0, fp_cum[:, (starts - 1).clamp(min=0)], 0)
    else:
        fp_before = torch.zeros(n_thr, n_classes, dtype=fp_cum.dtype, device=device)
    t_idx, pos = tp.nonzero(as_tuple=True)  # ordered by (threshold, class, score)
    group = t_idx * n_classes + cls[pos]
    n_tp = torch.bincount(group, minlength=n_groups)
    group_start = torch.cumsum(n_tp, 0) - n_tp
    j = (torch.arange(group.numel(), device=device) - group_start[group] + 1).to(torch.float64)  # TP count
    fp_at = (fp_cum[t_idx, pos] - fp_before.reshape(-1)[group]).to(torch.float64)
    prec = j / (fp_at + j + _EPS)
    # Running max from the right inside each (threshold, class) group; a per-group offset keeps
    # groups apart (rounding error <= ulp(2 T K), far below 1e-9).
    offset = 2.0 * (n_groups - 1 - group).to(torch.float64)
    prec = torch.flip(torch.cummax(torch.flip(prec + offset, [0]), 0).values, [0]) - offset

    n_tp = n_tp.reshape(n_thr, n_classes)
    has_gt = n_gt > 0
    safe_n = torch.where(has_gt, n_gt, torch.ones_like(n_gt))
    recall = torch.where(has_gt, n_tp.to(torch.float64) / safe_n, -1.0)

    need = _min_count_reaching(rec_thresholds, safe_n)[None]  # (1, K, R) TP count reaching r
    reach = need.clamp(min=1)
    inside = reach <= n_tp[:, :, None]  # (T, K, R)
    at = (group_start.reshape(n_thr, n_classes)[:, :, None] + reach - 1).clamp(max=max(group.numel() - 1, 0))
    if group.numel():
        p_val = torch.where(inside, prec[at], 0.0)
        s_val = torch.where(inside, scores[pos[at]], 0.0)
    else:
        p_val = torch.zeros(inside.shape, dtype=torch.float64, device=device)
        s_val = torch.zeros_like(p_val)
    # r = 0 is reached by the class's first detection, TP or not (its score is reported).
    zero = (need == 0) & (counts > 0)[None, :, None]
    if n:
        first_score = scores[starts.clamp(max=n - 1)][None, :, None]
        s_val = torch.where(zero, first_score, s_val)
    p_val = torch.where(has_gt[None, :, None], p_val, -1.0)
    s_val = torch.where(has_gt[None, :, None], s_val, -1.0)
    return p_val.transpose(1, 2), recall, s_val.transpose(1, 2)


def coco_accumulate(
    scores: Tensor,
    labels: Tensor,
    rank: Tensor,
    tp_packed: Tensor,
    ignored_packed: Tensor,
    gt_labels: Tensor,
    gt_counts: Tensor,
    n_thresholds: int,
    rec_thresholds: Tensor,
    max_dets: list[int],
    full: bool = True,
) -> CocoTables:
    """pycocotools ``accumulate`` on the compact state.

    Args:
        scores, labels, rank: (N,) per kept detection, in image order (the update order).
        tp_packed, ignored_packed: (N, B) uint8 lane flags from :func:`~objdet.ops.coco.coco_match`, lane
            ``t * A + a`` for IoU threshold t and area range a.
        gt_labels: (G,) class of each row of ``gt_counts`` (classes may repeat).
        gt_counts: (G, A) number of non-ignored GT per row and area range.
        n_thresholds: T. rec_thresholds: (R,) float64. max_dets: M values (in any order).
        full: every (area, maxDet) combination; otherwise only what ``summarize`` reads
            (precision at the last maxDet and at maxDet = 100; recall everywhere).
    """
    device = scores.device
    if device.type == "cpu":  # the compiled engine; the torch code below serves CUDA tensors
        arrays = coco_accumulate_np(
            scores.numpy(),
            labels.numpy(),
            rank.numpy(),
            tp_packed.numpy(),
            ignored_packed.numpy(),
            gt_labels.numpy(),
            gt_counts.numpy(),
            n_thresholds,
            rec_thresholds.numpy(),
            max_dets,
            full=full,
        )
        classes_np, precision_np, recall_np, scores_np = arrays
        return CocoTables(
            classes=torch.from_numpy(classes_np),
            precision=torch.from_numpy(precision_np),
            recall=torch.from_numpy(recall_np),
            scores=torch.from_numpy(scores_np),
        )
    return coco_accumulate_torch(
        scores, labels.long(), rank.long(), tp_packed, ignored_packed, gt_labels.long(), gt_counts.long(),
        n_thresholds, rec_thresholds, max_dets, full,
    )  # fmt: skip


def coco_accumulate_torch(
    scores: Tensor,
    labels: Tensor,
    rank: Tensor,
    tp_packed: Tensor,
    ignored_packed: Tensor,
    gt_labels: Tensor,
    gt_counts: Tensor,
    n_thresholds: int,
    rec_thresholds: Tensor,
    max_dets: list[int],
    full: bool = True,
) -> CocoTables:
    """:func:`coco_accumulate` with torch ops on the state's device (the CUDA path; tested on CPU too)."""
    device = scores.device
    n_area = gt_counts.shape[1]
    n_lanes = n_thresholds * n_area
    classes = torch.unique(torch.cat([labels, gt_labels]))
    n_cls = classes.numel()
    n_gt = torch.zeros(n_cls, n_area, dtype=torch.int64, device=device)
    n_gt.index_add_(0, torch.searchsorted(classes, gt_labels), gt_counts)
    cls = torch.searchsorted(classes, labels)

    by_score = torch.sort(descending_order_key(scores), stable=True).indices
    order = by_score[torch.sort(cls[by_score], stable=True).indices]
    s_sorted, c_sorted, r_sorted = scores[order].to(torch.float64), cls[order], rank[order]
    tp_all = unpack_lanes(tp_packed[order], n_lanes).view(n_thresholds, n_area, -1)
    ign_all = unpack_lanes(ignored_packed[order], n_lanes).view(n_thresholds, n_area, -1)

    n_rec, n_md = rec_thresholds.numel(), len(max_dets)
    precision = torch.full(
        (n_thresholds, n_rec, n_cls, n_area, n_md), -1.0, dtype=torch.float64, device=device
    )
    score_tab = torch.full_like(precision, -1.0)
    recall = torch.full((n_thresholds, n_cls, n_area, n_md), -1.0, dtype=torch.float64, device=device)
    for m, max_det in enumerate(max_dets):
        sel = r_sorted < max_det
        everything = bool(sel.all())
        s_m, c_m = (s_sorted, c_sorted) if everything else (s_sorted[sel], c_sorted[sel])
        for a in range(n_area):
            tp = tp_all[:, a] if everything else tp_all[:, a][:, sel]
            if full or m == n_md - 1 or max_det == 100:
                ign = ign_all[:, a] if everything else ign_all[:, a][:, sel]
                p, r, s = _accumulate_one(s_m, c_m, tp, ign, n_gt[:, a], n_cls, rec_thresholds)
                precision[..., a, m], recall[..., a, m], score_tab[..., a, m] = p, r, s
            else:
                tp_total = torch.zeros(n_thresholds, n_cls, dtype=torch.int64, device=device)
                tp_total.index_add_(1, c_m, tp.long())
                has = n_gt[:, a] > 0
                recall[..., a, m] = torch.where(
                    has, tp_total.to(torch.float64) / n_gt[:, a].clamp(min=1), -1.0
                )
    return CocoTables(classes=classes, precision=precision, recall=recall, scores=score_tab)


def coco_summarize(
    tables: CocoTables, iou_thresholds: Tensor, max_dets: list[int], iou_type: str = "bbox"
) -> Tensor:
    """pycocotools' ``summarize`` (stats), float64 on the tables' device: 12 numbers, 10 for keypoints.

    See :func:`objdet.functional.coco_cpu.summarize_np` and
    :func:`~objdet.functional.coco_cpu.summarize_keypoints_np` (one implementation for both
    engines: the tables are small).
    """
    stats = summarize_for(
        iou_type,
        tables.precision.cpu().numpy(),
        tables.recall.cpu().numpy(),
        iou_thresholds.cpu().numpy(),
        max_dets,
    )
    return torch.from_numpy(stats).to(tables.precision.device)


def per_class_ap_ar(
    tables: CocoTables, max_dets: list[int], iou_index: int | None = None, ap_max_det: int = 100
) -> tuple[Tensor, Tensor]:
    """Per-class AP and AR at area 'all', as pycocotools' stats[0] and stats[8] for each class alone.

    AP is the mean over IoU thresholds and recall points at maxDets = ``ap_max_det`` (100:
    pycocotools' fixed value for stats[0]; -1 for every class when it is not one of
    ``max_dets``; keypoints pass 20), AR the mean over IoU thresholds at the last maxDet.
    Classes without GT give -1. ``iou_index`` restricts both to one IoU threshold (its index in
    the tables), e.g. the per-class AP50.
    """
    ap, ar = per_class_ap_ar_np(
        tables.precision.cpu().numpy(), tables.recall.cpu().numpy(), max_dets, iou_index, ap_max_det
    )
    device = tables.precision.device
    return torch.from_numpy(ap).to(device), torch.from_numpy(ar).to(device)
