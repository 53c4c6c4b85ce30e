"""TIDE's per-image matching and error classification, compiled for the CPU (numba), numpy in and out.

The rules are those of the TIDE paper (Bolya et al., ECCV 2020) as its reference code,
``tidecv`` 1.0.1, applies them; :doc:`the guide </guide/tide>` lists where that code departs
from the paper. In every image:

* detections by descending score, stable (ties keep input order); only the first
  ``max_dets`` take part (100, over all classes), the others are dropped entirely;
* IoU is pycocotools' ``bbIou`` on float64 xywh boxes (or, with ``pair_iou``, any IoU such
  as pycocotools' mask IoU, tidecv's mask mode); crowd GTs (``iscrowd=1``) are "ignore
  regions", every other GT is a ground truth;
* matching: each detection in turn takes, among the GTs of its class not taken yet, the one
  of highest IoU (the first on ties) when that IoU >= ``pos_threshold``: a true positive;
* an unmatched detection whose crowd IoU (intersection / detection area) with a crowd GT of
  its class is > ``pos_threshold`` is ignored by AP (it still gets an error type below);
* every unmatched detection gets the first error type that applies, tested in this order
  (IoUs over all GTs of the image, matched or not; "the best GT" is the first of highest IoU):

  1. no GT in the image: background;
  2. ``bg <= max IoU with a GT of its class <= pos``: localisation (target: that GT);
  3. ``max IoU with a GT of another class >= pos``: classification (target: that GT);
  4. ``max IoU with a matched GT of its class >= pos``: duplicate;
  5. ``max IoU with any GT <= bg``: background;
  6. otherwise: "both" (classification and localisation);

* oracle fixes of localisation and classification errors: among the detections whose target
  is an unmatched GT, the first (highest score) becomes a true positive when the error is
  fixed (of the GT's class for a classification error, of its own class for a localisation
  error); the others, and those whose target is matched, are removed. A GT that
  no detection matched and no such error targets is *missed*.

Outputs, per detection kept (``keep``, image by image in image-index order, by score inside)
a code byte: the error type (``TP``, ``CLS``, ``LOC``, ``BOTH``,
``DUPE``, ``BKG``) in the low bits, plus ``IGNORED`` (covered by a crowd GT) and
``FIXES`` (turns into a true positive of ``fix_label`` when its error is fixed), and
``fix_label``: for every classification error the class of the GT it overlaps (its
target), for every other detection its own class; per
non-crowd GT (``gt_keep``, image by image, input order inside) a status byte: ``MATCHED``,
``FIXABLE`` (unmatched, the target of a fixable error) or ``MISSED``. That is all
:mod:`objdet.functional.tide` needs: no box is kept.

This module imports numpy and numba only (no torch), so the command line can use it without
importing torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

__all__ = ["tide_classify_np"]

#: error types of a detection (the low 3 bits of its code)
TP, CLS, LOC, BOTH, DUPE, BKG = 0, 1, 2, 3, 4, 5
TYPE_MASK = 7
#: flag: an unmatched detection covered by a crowd GT of its class (left out of AP)
IGNORED = 8
#: flag: a localisation / classification error that becomes a true positive when fixed
FIXES = 16
#: status of a non-crowd GT
MATCHED, FIXABLE, MISSED = 0, 1, 2

_jit = njit(cache=True, nogil=True)


@_jit
def _iou(d: np.ndarray, g: np.ndarray, crowd: bool) -> float:
    """pycocotools' ``bbIou`` of two xywh boxes (crowd: intersection / detection area)."""
    w = min(d[2] + d[0], g[2] + g[0]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[3] + d[1], g[3] + g[1]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    inter = w * h
    union = d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - inter
    return inter / union


@_jit
def _order(
    det_img: np.ndarray, det_score: np.ndarray, gt_img: np.ndarray, n_images: int, max_dets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The detections that take part, image by image by descending score; the GTs image by image.

    Returns ``keep`` (K,), ``det_count`` (n_images,) (rows of ``keep`` per image), ``g_order``
    (G,) (every GT, crowd or not, image by image, input order inside) and ``gt_all`` (n_images,).
    """
    n_det, n_gt = det_img.shape[0], gt_img.shape[0]
    by_score = np.argsort(-det_score, kind="mergesort")
    d_order = by_score[np.argsort(det_img[by_score], kind="mergesort")]  # image, then score desc
    g_order = np.argsort(gt_img, kind="mergesort")
    keep = np.empty(n_det, np.int64)
    det_count = np.zeros(n_images, np.int64)
    gt_all = np.zeros(n_images, np.int64)
    for j in range(n_gt):
        gt_all[gt_img[j]] += 1
    n_keep = 0
    a = 0
    for image in range(n_images):
        a0 = a
        while a < n_det and det_img[d_order[a]] == image:
            a += 1
        nd = min(a - a0, max_dets)
        for k in range(nd):
            keep[n_keep + k] = d_order[a0 + k]
        det_count[image] = nd
        n_keep += nd
    return keep[:n_keep], det_count, g_order, gt_all


@_jit
def _pairs(
    keep: np.ndarray, det_count: np.ndarray, g_order: np.ndarray, gt_all: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(detection, GT) input indices of every IoU the classification reads: image by image, row-major."""
    n = 0
    for image in range(det_count.shape[0]):
        n += det_count[image] * gt_all[image]
    pair_det = np.empty(n, np.int64)
    pair_gt = np.empty(n, np.int64)
    p = 0
    a = 0
    b = 0
    for image in range(det_count.shape[0]):
        nd, nb = det_count[image], gt_all[image]
        for k in range(nd):
            for j in range(nb):
                pair_det[p] = keep[a + k]
                pair_gt[p] = g_order[b + j]
                p += 1
        a += nd
        b += nb
    return pair_det, pair_gt


@_jit
def _box_pair_iou(
    pair_det: np.ndarray, pair_gt: np.ndarray, det_xywh: np.ndarray, gt_xywh: np.ndarray, gt_crowd: np.ndarray
) -> np.ndarray:
    out = np.empty(pair_det.shape[0])
    for p in range(pair_det.shape[0]):
        g = pair_gt[p]
        out[p] = _iou(det_xywh[pair_det[p]], gt_xywh[g], gt_crowd[g])
    return out


@_jit
def _classify(
    keep: np.ndarray,
    det_count: np.ndarray,
    g_order: np.ndarray,
    gt_all: np.ndarray,
    pair_iou: np.ndarray,
    det_label: np.ndarray,
    gt_label: np.ndarray,
    gt_crowd: np.ndarray,
    pos: float,
    bg: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_images = det_count.shape[0]
    n_keep_all, n_gt = keep.shape[0], g_order.shape[0]
    code = np.zeros(n_keep_all, np.uint8)
    fix_label = np.empty(n_keep_all, np.int64)
    gt_keep = np.empty(n_gt, np.int64)
    gt_status = np.empty(n_gt, np.uint8)
    gt_count = np.zeros(n_images, np.int64)
    n_gt_keep = 0
    first = 0  # first row of the image in keep
    b = 0  # first GT of the image in g_order
    p0 = 0  # first pair of the image in pair_iou
    for image in range(n_images):
        nd, nb = det_count[image], gt_all[image]
        dets = keep[first : first + nd]
        block = pair_iou[p0 : p0 + nd * nb]
        gts = np.empty(nb, np.int64)  # non-crowd GTs, and their columns in the block
        cols = np.empty(nb, np.int64)
        crowds = np.empty(nb, np.int64)
        crowd_cols = np.empty(nb, np.int64)
        ng = 0
        nc = 0
        for j in range(nb):
            g = g_order[b + j]
            if gt_crowd[g]:
                crowds[nc] = g
                crowd_cols[nc] = j
                nc += 1
            else:
                gts[ng] = g
                cols[ng] = j
                ng += 1
        for k in range(nd):
            fix_label[first + k] = det_label[dets[k]]
        gt_count[image] = ng
        for j in range(ng):
            gt_keep[n_gt_keep + j] = gts[j]
        if nd == 0:
            for j in range(ng):
                gt_status[n_gt_keep + j] = MISSED
            n_gt_keep += ng
            b += nb
            continue

        iou = np.zeros((nd, ng))
        same = np.zeros((nd, ng), np.bool_)
        for k in range(nd):
            d = dets[k]
            for j in range(ng):
                iou[k, j] = block[k * nb + cols[j]]
                same[k, j] = det_label[d] == gt_label[gts[j]]
        # matching: in score order, the best GT of the class not taken yet (first on ties)
        gt_used = np.zeros(ng, np.bool_)
        matched = np.zeros(nd, np.bool_)
        for k in range(nd):
            best, best_v = 0, -1.0
            for j in range(ng):
                v = iou[k, j] if same[k, j] and not gt_used[j] else 0.0
                if v > best_v:
                    best, best_v = j, v
            if ng > 0 and best_v >= pos:
                matched[k] = True
                gt_used[best] = True
        # crowd GTs: ignore regions for unmatched detections of their class
        for k in range(nd):
            d = dets[k]
            if matched[k]:
                continue
            for j in range(nc):
                if gt_label[crowds[j]] == det_label[d] and block[k * nb + crowd_cols[j]] > pos:
                    code[first + k] = IGNORED
                    break
        # error type of each unmatched detection
        usable = np.zeros(ng, np.bool_)
        best_det = np.full(ng, -1, np.int64)
        target = np.full(nd, -1, np.int64)
        for k in range(nd):
            if matched[k]:
                continue
            row = first + k
            if ng == 0:
                code[row] |= BKG
                continue
            j_cls, v_cls, j_other, v_other, v_dupe, v_any = 0, -1.0, 0, -1.0, -1.0, -1.0
            for j in range(ng):
                v = iou[k, j]
                s = v if same[k, j] else 0.0
                o = 0.0 if same[k, j] else v
                u = s if gt_used[j] else 0.0
                if s > v_cls:
                    j_cls, v_cls = j, s
                if o > v_other:
                    j_other, v_other = j, o
                v_dupe = max(v_dupe, u)
                v_any = max(v_any, v)
            if bg <= v_cls <= pos:
                code[row] |= LOC
                target[k] = j_cls
            elif v_other >= pos:
                code[row] |= CLS
                target[k] = j_other
            elif v_dupe >= pos:
                code[row] |= DUPE
            elif v_any <= bg:
                code[row] |= BKG
            else:
                code[row] |= BOTH
            j = target[k]
            if code[row] & TYPE_MASK == CLS:  # the class of the GT it overlaps (taken when fixed)
                fix_label[row] = gt_label[gts[j]]
            if j >= 0 and not gt_used[j]:
                usable[j] = True
                if best_det[j] < 0:  # detections come by descending score: the first is the best
                    best_det[j] = k
        for j in range(ng):
            k = best_det[j]
            if k >= 0:
                code[first + k] |= FIXES
            gt_status[n_gt_keep + j] = MATCHED if gt_used[j] else (FIXABLE if usable[j] else MISSED)
        n_gt_keep += ng
        first += nd
        b += nb
        p0 += nd * nb
    return code, fix_label, gt_keep[:n_gt_keep], gt_status[:n_gt_keep], gt_count


def tide_classify_np(
    det_img: np.ndarray,
    det_label: np.ndarray,
    det_score: np.ndarray,
    det_xywh: np.ndarray | None,
    gt_img: np.ndarray,
    gt_label: np.ndarray,
    gt_xywh: np.ndarray | None,
    gt_crowd: np.ndarray,
    n_images: int,
    pos_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    max_dets: int = 100,
    pair_iou: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """TIDE's error type of every detection and status of every GT (rules in the module docstring).

    Args:
        det_img: (D,) int image index (0..n_images-1) of each detection, any order.
        det_label: (D,) int class. det_score: (D,) float scores. det_xywh: (D, 4) float64 xywh.
        gt_img, gt_label: (G,) int. gt_xywh: (G, 4) float64 xywh. gt_crowd: (G,) bool.
        n_images: number of images.
        pos_threshold: foreground IoU (0.5). bg_threshold: background IoU (0.1).
        max_dets: detections per image that take part (100).
        pair_iou: another IoU than the boxes' (masks: tidecv's mask mode). Called once with
            (P,) int64 detection and GT indices (pairs of one image) and returns their (P,)
            float64 IoU, for crowd GTs intersection / detection area (pycocotools' ``iou``
            with ``iscrowd``); the boxes are then not read (pass None).

    Returns:
        ``keep`` (K,) int64 detection indices, image by image, by descending score inside;
        ``code`` (K,) uint8 and ``fix_label`` (K,) int64 for them; ``gt_keep`` (M,) int64
        non-crowd GT indices, image by image; ``gt_status`` (M,) uint8; ``det_count`` and
        ``gt_count`` (n_images,) int64 rows per image.

    Example:
        >>> import numpy as np
        >>> from objdet.ops.tide_cpu import tide_classify_np, LOC, FIXES
        >>> boxes = np.array([[0.0, 0, 10, 10], [50.0, 50, 10, 10]])
        >>> out = tide_classify_np(np.array([0, 0]), np.array([0, 1]), np.array([0.9, 0.8]),
        ...                        np.array([[0.0, 0, 10, 10], [52.0, 50, 10, 20]]),
        ...                        np.array([0, 0]), np.array([0, 1]), boxes, np.array([False, False]), 1)
        >>> out["code"].tolist(), bool(out["code"][1] == LOC | FIXES), out["gt_status"].tolist()
        ([0, 18], True, [0, 1])
    """
    if not 0.0 < pos_threshold <= 1.0:
        raise ValueError(f"`pos_threshold` must be in (0, 1], got {pos_threshold!r}")
    if not 0.0 <= bg_threshold <= pos_threshold:
        raise ValueError(f"`bg_threshold` must be in [0, pos_threshold], got {bg_threshold!r}")
    if max_dets < 1:
        raise ValueError(f"`max_dets` must be a positive int, got {max_dets!r}")
    det_img = np.ascontiguousarray(det_img, np.int64)
    gt_img = np.ascontiguousarray(gt_img, np.int64)
    gt_crowd = np.ascontiguousarray(gt_crowd, np.bool_)
    keep, det_count, g_order, gt_all = _order(
        det_img, np.ascontiguousarray(det_score, np.float64), gt_img, int(n_images), int(max_dets)
    )
    pair_det, pair_gt = _pairs(keep, det_count, g_order, gt_all)
    if pair_iou is None:
        if det_xywh is None or gt_xywh is None:
            raise ValueError("tide_classify_np needs the boxes (det_xywh, gt_xywh) or a pair_iou")
        iou = _box_pair_iou(
            pair_det,
            pair_gt,
            np.ascontiguousarray(det_xywh, np.float64).reshape(-1, 4),
            np.ascontiguousarray(gt_xywh, np.float64).reshape(-1, 4),
            gt_crowd,
        )
    else:
        iou = np.ascontiguousarray(pair_iou(pair_det, pair_gt), np.float64).reshape(-1)
        if iou.shape[0] != pair_det.shape[0]:
            raise ValueError(f"pair_iou returned {iou.shape[0]} values for {pair_det.shape[0]} pairs")
    code, fix_label, gt_keep, gt_status, gt_count = _classify(
        keep,
        det_count,
        g_order,
        gt_all,
        iou,
        np.ascontiguousarray(det_label, np.int64),
        np.ascontiguousarray(gt_label, np.int64),
        gt_crowd,
        float(pos_threshold),
        float(bg_threshold),
    )
    return {
        "keep": keep,
        "code": code,
        "fix_label": fix_label,
        "gt_keep": gt_keep,
        "gt_status": gt_status,
        "det_count": det_count,
        "gt_count": gt_count,
    }
