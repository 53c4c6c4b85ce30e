"""COCO matching compiled for the CPU: pycocotools' ``evaluateImg`` as one loop per (image, class).

The same contract as :func:`objdet.ops.coco.coco_match` (the torch kernel, which stays for
CUDA tensors), on numpy arrays, compiled to machine code by numba. Why numba: it installs from
wheels on every platform torch does (no compiler on the user's machine), compiles the loops
once and caches them on disk (``cache=True``), and its functions run on the calling thread
alone (``nogil=True``, no intra-op thread pool), so their speed holds when DataLoader workers
keep every core busy. Greedy matching is sequential per (image, class) group; a compiled loop
does it in the order pycocotools does, with no rounds, no temporary (lanes x pairs) arrays and
no per-op dispatch.

Rules (pycocotools' ``evaluateImg``, applied per group and per (IoU threshold, area range)
lane ``l = t * A + a``):

* detections by descending score, stable (ties keep input order); the first ``max_det`` take
  part, the others are dropped (``rank >= max_det``);
* GTs in input order, the non-ignored ones first (a crowd GT or one whose area lies outside
  the range, inclusive at both ends, is ignored);
* a detection takes the best GT with IoU >= ``min(t, 1 - 1e-10)`` not yet taken (crowd GTs can
  be taken any number of times); on equal IoU the later GT in that order wins; once it holds a
  non-ignored GT it stops at the first ignored one;
* matched to an ignored GT: ignored; unmatched and its own area outside the range: ignored;
  matched to a non-ignored GT: true positive.

This module imports numpy and numba only (no torch), so the command line can use it without
importing torch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: pycocotools caps every IoU threshold at this value (so IoU = 1 matches at t = 1).
IOU_CAP = 1.0 - 1e-10

_LABEL_OFFSET = 2**31  # labels are int32: label + 2**31 fits in the low 32 bits of a group key

#: compiled once, cached on disk; runs on the calling thread without the GIL (no thread pool)
_jit = njit(cache=True, nogil=True)


@_jit
def cache_probe(x: int) -> int:
    """A kernel that compiles in a moment: whether numba's cache holds it tells whether this
    installation's kernels are compiled yet (they are all compiled anew after an install)."""
    return x + 1


@_jit
def _before(key: np.ndarray, score: np.ndarray, i: int, j: int) -> bool:
    """Whether item i sorts strictly before item j: key ascending, then score descending."""
    return key[i] < key[j] or (key[i] == key[j] and score[i] > score[j])


@_jit
def _argsort_key_score(key: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Stable argsort by (key ascending, score descending): ties keep input order.

    A bottom-up merge sort on indices after insertion-sorting runs of 16, with one comparison
    of two keys: one pass instead of two stable sorts and their gathers. Runs that are already
    in order (the common case: detections come image by image) are merged by a single check.
    """
    n = key.shape[0]
    idx = np.arange(n)
    run = 16
    for lo in range(0, n, run):  # insertion sort of each run (stable)
        hi = min(lo + run, n)
        for i in range(lo + 1, hi):
            v = idx[i]
            j = i - 1
            while j >= lo and _before(key, score, v, idx[j]):
                idx[j + 1] = idx[j]
                j -= 1
            idx[j + 1] = v
    buf = np.empty(n, np.int64)
    width = run
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            if mid >= hi or not _before(key, score, idx[mid], idx[mid - 1]):
                continue  # already in order
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _before(key, score, idx[j], idx[i]):
                    buf[k] = idx[j]
                    j += 1
                else:
                    buf[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                buf[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                buf[k] = idx[j]
                j += 1
                k += 1
            idx[lo:hi] = buf[lo:hi]
        width *= 2
    return idx


@_jit
def stable_argsort(key: np.ndarray) -> np.ndarray:
    """Stable ascending argsort of int64 ``key`` (numba's own sorts would each add a second or two to the
    first compile; this shares :func:`_argsort_key_score`, which is compiled anyway)."""
    return _argsort_key_score(key, np.zeros(key.shape[0], np.float64))


@_jit
def stable_argsort_descending(score: np.ndarray) -> np.ndarray:
    """Stable descending argsort of float64 ``score`` (ties keep input order; NaN last, in input order,
    as ``np.argsort(-score, kind="stable")``), as :func:`stable_argsort`."""
    n = score.shape[0]
    nan = np.zeros(n, np.int64)
    finite = np.empty(n, np.float64)
    for i in range(n):
        if np.isnan(score[i]):
            nan[i] = 1
            finite[i] = 0.0
        else:
            finite[i] = score[i]
    return _argsort_key_score(nan, finite)


#: most (image, label) buckets :func:`group_plan` counts in, per detection and GT of the batch
_BUCKETS_PER_ITEM = 8
_BUCKETS_MIN = 1 << 16
#: segments up to this size are ordered by insertion sort, longer ones by a merge sort
_INSERTION_MAX = 32


@_jit
def _bucket_orders(
    det_img: np.ndarray,
    det_label: np.ndarray,
    det_score: np.ndarray,
    gt_img: np.ndarray,
    gt_label: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Detections and GTs by (image, label) bucket with counting sorts, where the buckets are few.

    The bucket of an item is ``(image - min image) * L + (label - min label)``, so bucket order
    is (image, label) order. A stable counting sort keeps input order inside a bucket; each
    bucket's detections are then put in descending score order (stable: ties keep input
    order) by insertion, or a merge sort for long ones. Returns the two orders, each
    bucket's first detection and GT (n_buckets + 1,), and False instead when the ids
    spread over too many buckets (the caller then sorts by comparisons).
    """
    n_det, n_gt = det_img.shape[0], gt_img.shape[0]
    empty = np.zeros(0, np.int64)
    if n_det == 0:
        return empty, empty, empty, empty, False
    i_lo, i_hi = det_img[0], det_img[0]
    l_lo, l_hi = det_label[0], det_label[0]
    for i in range(n_det):
        i_lo, i_hi = min(i_lo, det_img[i]), max(i_hi, det_img[i])
        l_lo, l_hi = min(l_lo, det_label[i]), max(l_hi, det_label[i])
    for i in range(n_gt):
        i_lo, i_hi = min(i_lo, gt_img[i]), max(i_hi, gt_img[i])
        l_lo, l_hi = min(l_lo, gt_label[i]), max(l_hi, gt_label[i])
    n_images, n_labels = i_hi - i_lo + 1, l_hi - l_lo + 1
    most = max(_BUCKETS_PER_ITEM * (n_det + n_gt), _BUCKETS_MIN)
    # each factor checked first, so that their product cannot overflow int64
    if n_images > most or n_labels > most or n_images * n_labels > most:
        return empty, empty, empty, empty, False
    n_buckets = n_images * n_labels
    d_start = np.zeros(n_buckets + 1, np.int64)
    g_start = np.zeros(n_buckets + 1, np.int64)
    d_bucket = (det_img - i_lo) * n_labels + (det_label - l_lo)
    g_bucket = (gt_img - i_lo) * n_labels + (gt_label - l_lo)
    for i in range(n_det):
        d_start[d_bucket[i] + 1] += 1
    for i in range(n_gt):
        g_start[g_bucket[i] + 1] += 1
    for b in range(n_buckets):
        d_start[b + 1] += d_start[b]
        g_start[b + 1] += g_start[b]
    d_order = np.empty(n_det, np.int64)
    g_order = np.empty(n_gt, np.int64)
    fill = d_start[:-1].copy()
    for i in range(n_det):
        d_order[fill[d_bucket[i]]] = i
        fill[d_bucket[i]] += 1
    fill = g_start[:-1].copy()
    for i in range(n_gt):
        g_order[fill[g_bucket[i]]] = i
        fill[g_bucket[i]] += 1
    for b in range(n_buckets):
        s0, s1 = d_start[b], d_start[b + 1]
        if s1 - s0 < 2:
            continue
        if s1 - s0 > _INSERTION_MAX:
            seg = d_order[s0:s1].copy()
            d_order[s0:s1] = seg[stable_argsort_descending(det_score[seg])]
            continue
        for i in range(s0 + 1, s1):
            v = d_order[i]
            sv = det_score[v]
            j = i - 1
            while j >= s0 and det_score[d_order[j]] < sv:  # strictly lower moves: ties stay
                d_order[j + 1] = d_order[j]
                j -= 1
            d_order[j + 1] = v
    return d_order, g_order, d_start, g_start, True


@_jit
def _add_group(
    groups: np.ndarray,
    pair_start: np.ndarray,
    n_groups: int,
    d_first: int,
    n_dets: int,
    g_first: int,
    n_gts: int,
    max_det: int,
) -> None:
    """Write group ``n_groups`` of :func:`group_plan`: its rows in the orders and its IoU block's end."""
    kept = min(n_dets, max_det)
    groups[n_groups, 0] = d_first
    groups[n_groups, 1] = kept
    groups[n_groups, 2] = g_first
    groups[n_groups, 3] = n_gts
    pair_start[n_groups + 1] = pair_start[n_groups] + kept * n_gts


@_jit
def group_plan(
    det_img: np.ndarray,
    det_label: np.ndarray,
    det_score: np.ndarray,
    gt_img: np.ndarray,
    gt_label: np.ndarray,
    max_det: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order detections and GTs by (image, class) group.

    Args:
        det_img, det_label, det_score: (D,) int64, int64 (int32 range), float64.
        gt_img, gt_label: (G,) int64.
        max_det: detections per group that take part.

    Returns:
        ``d_order`` (D,): detections by (image, label, score descending, input order);
        ``rank`` (D,) int64: each detection's place in its group (input order);
        ``g_order`` (G,): GTs by (image, label, input order);
        ``groups`` (Q, 4) int64: per group with detections, (first position in ``d_order``,
        kept detections, first position in ``g_order``, GTs);
        ``pair_start`` (Q + 1,) int64: offset of each group's (kept x GT) IoU block, row-major.
    """
    n_det, n_gt = det_img.shape[0], gt_img.shape[0]
    rank = np.empty(n_det, np.int64)
    groups = np.empty((n_det, 4), np.int64)
    pair_start = np.zeros(n_det + 1, np.int64)
    n_groups = 0
    d_order, g_order, d_start, g_start, bucketed = _bucket_orders(
        det_img, det_label, det_score, gt_img, gt_label
    )
    if bucketed:  # a batch's ids are usually close together: counting sorts
        for b in range(d_start.shape[0] - 1):
            i, end = d_start[b], d_start[b + 1]
            if i == end:
                continue
            for p in range(i, end):
                rank[d_order[p]] = p - i
            _add_group(
                groups, pair_start, n_groups, i, end - i, g_start[b], g_start[b + 1] - g_start[b], max_det
            )
            n_groups += 1
        return d_order, rank, g_order, groups[:n_groups].copy(), pair_start[: n_groups + 1].copy()
    dkey = (det_img << 32) + (det_label + _LABEL_OFFSET)
    gkey = (gt_img << 32) + (gt_label + _LABEL_OFFSET)
    d_order = _argsort_key_score(dkey, det_score)
    g_order = stable_argsort(gkey)
    i = 0
    j = 0
    while i < n_det:
        key = dkey[d_order[i]]
        end = i
        while end < n_det and dkey[d_order[end]] == key:
            rank[d_order[end]] = end - i
            end += 1
        while j < n_gt and gkey[g_order[j]] < key:
            j += 1
        g_first = j
        while j < n_gt and gkey[g_order[j]] == key:
            j += 1
        _add_group(groups, pair_start, n_groups, i, end - i, g_first, j - g_first, max_det)
        n_groups += 1
        i = end
    return d_order, rank, g_order, groups[:n_groups].copy(), pair_start[: n_groups + 1].copy()


@_jit
def plan_pairs(
    d_order: np.ndarray, g_order: np.ndarray, groups: np.ndarray, pair_start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Input-order (detection, GT) indices of every IoU block of :func:`group_plan`, in block order."""
    n_pairs = pair_start[-1]
    pair_det = np.empty(n_pairs, np.int64)
    pair_gt = np.empty(n_pairs, np.int64)
    for q in range(groups.shape[0]):
        d0, nd, g0, ng = groups[q, 0], groups[q, 1], groups[q, 2], groups[q, 3]
        p = pair_start[q]
        for d in range(nd):
            for g in range(ng):
                pair_det[p] = d_order[d0 + d]
                pair_gt[p] = g_order[g0 + g]
                p += 1
    return pair_det, pair_gt


@_jit
def box_block_ious(
    det_xywh: np.ndarray,
    gt_xywh: np.ndarray,
    gt_crowd: np.ndarray,
    d_order: np.ndarray,
    g_order: np.ndarray,
    groups: np.ndarray,
    pair_start: np.ndarray,
) -> np.ndarray:
    """IoU of every block of :func:`group_plan`, float64, with pycocotools' ``bbIou`` formula.

    xywh boxes; a crowd GT's union is the detection's area; no overlap (width or height of the
    intersection <= 0) gives 0.
    """
    out = np.zeros(pair_start[-1], np.float64)
    for q in range(groups.shape[0]):
        d0, nd, g0, ng = groups[q, 0], groups[q, 1], groups[q, 2], groups[q, 3]
        p = pair_start[q]
        for d in range(nd):
            di = d_order[d0 + d]
            dx, dy, dw, dh = det_xywh[di, 0], det_xywh[di, 1], det_xywh[di, 2], det_xywh[di, 3]
            da = dw * dh
            for g in range(ng):
                gi = g_order[g0 + g]
                gx, gy, gw, gh = gt_xywh[gi, 0], gt_xywh[gi, 1], gt_xywh[gi, 2], gt_xywh[gi, 3]
                w = min(dw + dx, gw + gx) - max(dx, gx)
                if w > 0:
                    h = min(dh + dy, gh + gy) - max(dy, gy)
                    if h > 0:
                        inter = w * h
                        union = da if gt_crowd[gi] else da + gw * gh - inter
                        out[p + g] = inter / union
            p += ng
    return out


@_jit
def _prefer(g: int, v: float, h: int, w: float, g_ign: np.ndarray) -> bool:
    """Whether GT g (IoU v) is preferred to GT h (IoU w): non-ignored first, higher IoU, later GT."""
    if g_ign[g] != g_ign[h]:
        return not g_ign[g]
    if v != w:
        return v > w
    return g > h


@_jit
def _kept_rows(d_order: np.ndarray, groups: np.ndarray, n_det: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The detections that take part (the first ``max_det`` of each group, as :func:`group_plan` counts
    them): ``keep`` (D,) bool, each detection's row among the kept ones (input order), and their number."""
    keep = np.zeros(n_det, np.bool_)
    for q in range(groups.shape[0]):
        d0, nd = groups[q, 0], groups[q, 1]
        for d in range(nd):
            keep[d_order[d0 + d]] = True
    row_of = np.empty(n_det, np.int64)
    n_kept = 0
    for i in range(n_det):
        row_of[i] = n_kept
        n_kept += keep[i]
    return keep, row_of, n_kept


@_jit
def _match_groups_lanes(
    d_order: np.ndarray,
    rank: np.ndarray,
    g_order: np.ndarray,
    groups: np.ndarray,
    pair_start: np.ndarray,
    ious: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    det_area: np.ndarray,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_groups` lane by lane: any number of lanes (the path for more than 64)."""
    n_det = rank.shape[0]
    n_thr, n_area = iou_thresholds.shape[0], area_ranges.shape[0]
    n_bytes = (n_thr * n_area + 7) // 8
    tp = np.zeros((n_det, n_bytes), np.uint8)
    ign = np.zeros((n_det, n_bytes), np.uint8)
    thr = np.minimum(iou_thresholds, IOU_CAP)
    area_lanes = np.zeros((n_area, n_bytes), np.uint8)  # the bits of every threshold of each area range
    for a in range(n_area):
        for t in range(n_thr):
            lane = t * n_area + a
            area_lanes[a, lane >> 3] |= np.uint8(1 << (lane & 7))
    max_gt = 0
    for q in range(groups.shape[0]):
        max_gt = max(max_gt, groups[q, 3])
    g_ign = np.zeros(max_gt, np.bool_)
    g_crowd = np.zeros(max_gt, np.bool_)
    taken = np.zeros((n_thr, max_gt), np.bool_)
    cand = np.zeros(max_gt, np.int64)
    max_kept = 0
    for q in range(groups.shape[0]):
        max_kept = max(max_kept, groups[q, 1])
    det_best = np.zeros(max_kept, np.float64)
    for q in range(groups.shape[0]):
        d0, nd, g0, ng = groups[q, 0], groups[q, 1], groups[q, 2], groups[q, 3]
        if ng == 0:  # nothing to match: only the area rule for unmatched detections
            for d in range(nd):
                di = d_order[d0 + d]
                for a in range(n_area):
                    if det_area[di] < area_ranges[a, 0] or det_area[di] > area_ranges[a, 1]:
                        for b in range(n_bytes):
                            ign[di, b] |= area_lanes[a, b]
            continue
        block = pair_start[q]
        for g in range(ng):
            g_crowd[g] = gt_crowd[g_order[g0 + g]]
        group_best = 0.0
        for d in range(nd):  # a detection whose best IoU is below t takes nothing at t
            best = 0.0
            for g in range(ng):
                best = max(best, ious[block + d * ng + g])
            det_best[d] = best
            group_best = max(group_best, best)
        thr_min = thr.min()
        for a in range(n_area):
            lo, hi = area_ranges[a, 0], area_ranges[a, 1]
            for g in range(ng):
                area = gt_area[g_order[g0 + g]]
                g_ign[g] = g_crowd[g] or area < lo or area > hi
            taken[:, :ng] = False
            for d in range(nd):
                di = d_order[d0 + d]
                row = block + d * ng
                # This detection's candidates in pycocotools' order of preference: non-ignored GTs
                # first, then the higher IoU, then the later GT (its loop keeps the last of equals).
                # Thresholds are then independent: at each one the first candidate still free
                # with IoU >= t wins, or, if the first free non-ignored one is below t, the first
                # free ignored one (every later candidate of a part has a lower IoU).
                n_cand = 0
                if det_best[d] >= thr_min:
                    for g in range(ng - 1, -1, -1):
                        v = ious[row + g]
                        if v < thr_min:
                            continue
                        j = n_cand
                        while j > 0 and _prefer(g, v, cand[j - 1], ious[row + cand[j - 1]], g_ign):
                            cand[j] = cand[j - 1]
                            j -= 1
                        cand[j] = g
                        n_cand += 1
                out = det_area[di] < lo or det_area[di] > hi
                for t in range(n_thr):
                    lane = t * n_area + a
                    byte, bit = lane >> 3, np.uint8(1 << (lane & 7))
                    m = -1
                    if det_best[d] >= thr[t]:
                        j = 0
                        while j < n_cand:
                            g = cand[j]
                            if taken[t, g] and not g_crowd[g]:
                                j += 1
                                continue
                            if ious[row + g] >= thr[t]:
                                m = g
                                break
                            if g_ign[g]:
                                break
                            j += 1  # the best free non-ignored GT is below t: try the ignored part
                            while j < n_cand and not g_ign[cand[j]]:
                                j += 1
                    if m > -1:
                        taken[t, m] = True
                        if g_ign[m]:
                            ign[di, byte] |= bit
                        else:
                            tp[di, byte] |= bit
                    elif out:
                        ign[di, byte] |= bit
    keep, _, n_kept = _kept_rows(d_order, groups, n_det)
    tp_kept = np.empty((n_kept, n_bytes), np.uint8)
    ign_kept = np.empty((n_kept, n_bytes), np.uint8)
    k = 0
    for i in range(n_det):
        if keep[i]:
            for b in range(n_bytes):
                tp_kept[k, b] = tp[i, b]
                ign_kept[k, b] = ign[i, b]
            k += 1
    return keep, tp_kept, ign_kept


#: most lanes (IoU thresholds x area ranges) :func:`match_groups` handles as one 64-bit word
_WORD_LANES = 64
#: position of the lowest set bit of a byte (index: the byte value; 0 gives -1)
LOW_BIT = np.array([(v & -v).bit_length() - 1 for v in range(256)], np.int64)


@_jit
def _threshold_mask(v: float, thr: np.ndarray) -> int:
    """Bit t set where IoU ``v`` reaches threshold t."""
    mask = 0
    for t in range(thr.shape[0]):
        if v >= thr[t]:
            mask |= 1 << t
    return mask


@_jit
def _spread_lanes(mask: int, a: int, spread: np.ndarray) -> int:
    """The lane word (bit ``t * A + a``) of threshold mask ``mask`` in area range a."""
    word = 0
    for c in range(spread.shape[1]):
        word |= spread[a, c, (mask >> (8 * c)) & 255]
    return word


@_jit
def _match_groups_words(
    d_order: np.ndarray,
    rank: np.ndarray,
    g_order: np.ndarray,
    groups: np.ndarray,
    pair_start: np.ndarray,
    ious: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    det_area: np.ndarray,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_groups` with every threshold of a detection at once, as bits of one int64.

    Per (detection, area range) the candidates are walked once, in pycocotools' order of
    preference (non-ignored GTs first, then the higher IoU, then the later GT): at each threshold
    the first candidate not taken there whose IoU reaches it wins, which is the GT pycocotools'
    loop picks. Threshold masks say where the detection is still unmatched (``pending``) and
    where each GT is taken. Needs T * A <= 64.
    """
    n_det = rank.shape[0]
    n_thr, n_area = iou_thresholds.shape[0], area_ranges.shape[0]
    n_bytes = (n_thr * n_area + 7) // 8
    thr = np.minimum(iou_thresholds, IOU_CAP)
    thr_min = thr.min() if n_thr else np.inf
    all_t = -1 if n_thr == 64 else (1 << n_thr) - 1
    n_chunks = (n_thr + 7) // 8
    spread = np.zeros((n_area, max(n_chunks, 1), 256), np.int64)
    for a in range(n_area):
        for c in range(n_chunks):
            for v in range(1, 256):  # v's lowest bit's lane, with the lanes of v without it
                j = LOW_BIT[v]
                t = 8 * c + j
                spread[a, c, v] = spread[a, c, v & (v - 1)] | ((1 << (t * n_area + a)) if t < n_thr else 0)
    area_word = np.zeros(n_area, np.int64)
    for a in range(n_area):
        area_word[a] = _spread_lanes(all_t, a, spread)
    keep, row_of, n_kept = _kept_rows(d_order, groups, n_det)
    max_kept = groups[:, 1].max() if groups.shape[0] else 0
    max_gt = groups[:, 3].max() if groups.shape[0] else 0
    tp_word = np.zeros(n_kept, np.int64)
    ign_word = np.zeros(n_kept, np.int64)
    g_ign = np.zeros(max_gt, np.bool_)
    g_crowd = np.zeros(max_gt, np.bool_)
    taken = np.zeros(max_gt, np.int64)
    cand = np.zeros(max_gt, np.int64)
    det_best = np.zeros(max_kept, np.float64)
    best_mask = np.zeros(max_kept, np.int64)
    reach = np.zeros(ious.shape[0], np.int64)  # thresholds each pair's IoU reaches
    for q in range(groups.shape[0]):
        d0, nd, g0, ng = groups[q, 0], groups[q, 1], groups[q, 2], groups[q, 3]
        if ng == 0:  # nothing to match: only the area rule for unmatched detections
            for d in range(nd):
                di = d_order[d0 + d]
                word = 0
                for a in range(n_area):
                    if det_area[di] < area_ranges[a, 0] or det_area[di] > area_ranges[a, 1]:
                        word |= area_word[a]
                ign_word[row_of[di]] = word
            continue
        block = pair_start[q]
        for g in range(ng):
            g_crowd[g] = gt_crowd[g_order[g0 + g]]
        for d in range(nd):  # a detection whose best IoU is below t takes nothing at t
            best = -1.0
            for g in range(ng):
                v = ious[block + d * ng + g]
                best = max(best, v)
                if v >= thr_min:
                    reach[block + d * ng + g] = _threshold_mask(v, thr)
            det_best[d] = best
            best_mask[d] = _threshold_mask(best, thr)
        for a in range(n_area):
            lo, hi = area_ranges[a, 0], area_ranges[a, 1]
            for g in range(ng):
                area = gt_area[g_order[g0 + g]]
                g_ign[g] = g_crowd[g] or area < lo or area > hi
                taken[g] = 0
            for d in range(nd):
                di = d_order[d0 + d]
                k = row_of[di]
                out = det_area[di] < lo or det_area[di] > hi
                if det_best[d] < thr_min:  # no candidate: unmatched at every threshold
                    if out:
                        ign_word[k] |= area_word[a]
                    continue
                row = block + d * ng
                # candidates in pycocotools' order of preference (see _match_groups_lanes)
                n_cand = 0
                for g in range(ng - 1, -1, -1):
                    v = ious[row + g]
                    if v < thr_min:
                        continue
                    j = n_cand
                    while j > 0 and _prefer(g, v, cand[j - 1], ious[row + cand[j - 1]], g_ign):
                        cand[j] = cand[j - 1]
                        j -= 1
                    cand[j] = g
                    n_cand += 1
                # at each threshold the first free candidate whose IoU reaches it wins
                pending = best_mask[d]  # thresholds not matched yet that some candidate reaches
                tp_mask = 0
                ign_mask = 0
                for j in range(n_cand):
                    if pending == 0:
                        break
                    g = cand[j]
                    match = pending & reach[row + g]
                    if not g_crowd[g]:  # a crowd GT can be taken any number of times
                        match &= ~taken[g]
                        taken[g] |= match
                    if g_ign[g]:
                        ign_mask |= match
                    else:
                        tp_mask |= match
                    pending &= ~match
                if out:
                    ign_mask |= all_t & ~(tp_mask | ign_mask)
                if tp_mask:
                    tp_word[k] |= _spread_lanes(tp_mask, a, spread)
                if ign_mask:
                    ign_word[k] |= _spread_lanes(ign_mask, a, spread)
    tp_kept = np.empty((n_kept, n_bytes), np.uint8)
    ign_kept = np.empty((n_kept, n_bytes), np.uint8)
    for k in range(n_kept):
        tw, iw = tp_word[k], ign_word[k]
        for b in range(n_bytes):
            tp_kept[k, b] = (tw >> (8 * b)) & 255
            ign_kept[k, b] = (iw >> (8 * b)) & 255
    return keep, tp_kept, ign_kept


@_jit
def _kept_columns(
    keep: np.ndarray, rank: np.ndarray, score: np.ndarray, label: np.ndarray, img: np.ndarray, n_images: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kept detections' score, label, rank and image (input order) in one pass, and their count
    per image (``n_images`` > 0; otherwise an empty count)."""
    n_kept = 0
    for i in range(keep.shape[0]):
        n_kept += keep[i]
    score_k = np.empty(n_kept, score.dtype)
    label_k = np.empty(n_kept, label.dtype)
    rank_k = np.empty(n_kept, rank.dtype)
    img_k = np.empty(n_kept, img.dtype)
    per_image = np.zeros(n_images, np.int32)
    k = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            score_k[k], label_k[k], rank_k[k], img_k[k] = score[i], label[i], rank[i], img[i]
            if n_images:
                if img[i] < 0 or img[i] >= n_images:
                    raise ValueError("coco_match_cpu: det_img must lie in [0, n_images)")
                per_image[img[i]] += 1
            k += 1
    return score_k, label_k, rank_k, img_k, per_image


@_jit
def match_groups(
    d_order: np.ndarray,
    rank: np.ndarray,
    g_order: np.ndarray,
    groups: np.ndarray,
    pair_start: np.ndarray,
    ious: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    det_area: np.ndarray,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
    det_score: np.ndarray,
    det_label: np.ndarray,
    det_img: np.ndarray,
    n_images: int,
) -> tuple:
    """Greedy matching of every group; flags and columns of the kept detections, in input order.

    Args:
        d_order, rank, g_order, groups, pair_start: from :func:`group_plan`.
        ious: IoU blocks of every group (``pair_start`` layout), float64.
        gt_crowd: (G,) bool. gt_area: (G,) float64. det_area: (D,) float64 (for the area ranges).
        iou_thresholds: (T,) float64. area_ranges: (A, 2) float64.

        det_score, det_label, det_img: (D,) columns of the detections; n_images: images of the
            batch, numbered from 0 in ``det_img`` (0: no per-image counts).

    Returns:
        ``keep`` (D,) bool, per kept detection (input order) ``tp`` and ``ignored`` (K, B)
        uint8, lane ``t * A + a`` at bit ``l % 8`` of byte ``l // 8``, then the kept detections'
        score, label, rank and image and their number per image (see :func:`_kept_columns`).
        Up to 64 lanes every threshold is matched at once (:func:`_match_groups_words`), beyond
        lane by lane.
    """
    if iou_thresholds.shape[0] * area_ranges.shape[0] <= _WORD_LANES:
        keep, tp, ign = _match_groups_words(
            d_order, rank, g_order, groups, pair_start, ious, gt_crowd, gt_area, det_area,
            iou_thresholds, area_ranges,
        )  # fmt: skip
    else:
        keep, tp, ign = _match_groups_lanes(
            d_order, rank, g_order, groups, pair_start, ious, gt_crowd, gt_area, det_area,
            iou_thresholds, area_ranges,
        )  # fmt: skip
    score_k, label_k, rank_k, img_k, per_image = _kept_columns(
        keep, rank, det_score, det_label, det_img, n_images
    )
    return keep, tp, ign, score_k, label_k, rank_k, img_k, per_image


@_jit
def xywh_from(boxes: np.ndarray, box_format: int, single: bool) -> np.ndarray:
    """(N, 4) boxes in ``box_format`` (0 xyxy, 1 xywh, 2 cxcywh) -> float64 xywh.

    Converted through xyxy in the input's precision, as torchmetrics does (``single``: the
    input was float32, so every step is rounded to float32; rounding the float64 result of one
    operation on float32 values gives exactly the float32 operation's result).
    """
    n = boxes.shape[0]
    out = np.empty((n, 4), np.float64)
    for i in range(n):
        a, b, c, d = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if box_format == 1:
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = a, b, c, d
            continue
        if box_format == 0:
            x1, y1, x2, y2 = a, b, c, d
        else:
            hw, hh = c / 2, d / 2
            if single:
                hw, hh = np.float32(hw), np.float32(hh)
            x1, y1, x2, y2 = a - hw, b - hh, a + hw, b + hh
            if single:
                x1, y1, x2, y2 = np.float32(x1), np.float32(y1), np.float32(x2), np.float32(y2)
        w, h = x2 - x1, y2 - y1
        if single:
            w, h = np.float32(w), np.float32(h)
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = x1, y1, w, h
    return out


def coco_match_cpu(
    det_img: np.ndarray,
    det_label: np.ndarray,
    det_score: np.ndarray,
    gt_img: np.ndarray,
    gt_label: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    det_area: np.ndarray,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
    max_det: int,
    det_xywh: np.ndarray | None = None,
    gt_xywh: np.ndarray | None = None,
    pair_iou: object = None,
    return_ious: bool = False,
    n_images: int = 0,
) -> dict[str, np.ndarray]:
    """Match a batch with pycocotools' rules (module docstring); numpy in, numpy out.

    Boxes (``det_xywh`` / ``gt_xywh`` float64 xywh) give pycocotools' box IoU; otherwise
    ``pair_iou(pair_det, pair_gt)`` gives the IoU (float64) of the candidate pairs, input-order
    indices (masks). Returns ``keep`` (D,) bool and, per kept detection in input order,
    ``rank`` (int64), ``tp`` and ``ignored`` (K, B) uint8, and its ``scores``, ``labels`` and
    ``img``, and ``image_dets``: the kept detections of each of ``n_images`` images (numbered
    from 0) (n_images,) int32 (empty by default); with ``return_ious`` also
    ``iou_groups`` (Q, 4) (image, label, kept detections, GTs) and ``iou_values`` (pycocotools'
    ``computeIoU`` blocks, detections by score, GTs in input order).
    """
    d_order, rank, g_order, groups, pair_start = group_plan(
        det_img, det_label, det_score, gt_img, gt_label, max_det
    )
    if pair_iou is None:
        assert det_xywh is not None and gt_xywh is not None
        ious = box_block_ious(det_xywh, gt_xywh, gt_crowd, d_order, g_order, groups, pair_start)
    else:
        pair_det, pair_gt = plan_pairs(d_order, g_order, groups, pair_start)
        ious = np.ascontiguousarray(pair_iou(pair_det, pair_gt), dtype=np.float64)  # type: ignore[operator]
    matched = match_groups(
        d_order, rank, g_order, groups, pair_start, ious, gt_crowd, gt_area, det_area,
        iou_thresholds, area_ranges, det_score, det_label, det_img, n_images,
    )  # fmt: skip
    names = ("keep", "tp", "ignored", "scores", "labels", "rank", "img", "image_dets")
    out = dict(zip(names, matched, strict=True))
    if return_ious:
        with_gt = (groups[:, 1] > 0) & (groups[:, 3] > 0)
        heads = d_order[groups[with_gt, 0]]
        out["iou_groups"] = np.stack(
            [det_img[heads], det_label[heads], groups[with_gt, 1], groups[with_gt, 3]], 1
        ).astype(np.int64)
        out["iou_values"] = ious
    return out


#: codes of the first failed check returned by :func:`check_dets` / :func:`check_gts`
CHECK_OK, BAD_BOX_VALUES, BAD_BOX_SIZE, BAD_SCORES, BAD_LABELS, BAD_CROWD, BAD_AREA = range(7)


@_jit
def _first_bad_boxes(boxes: np.ndarray, xywh: np.ndarray) -> tuple[int, int]:
    """(code, row) of the first failed box check: non-finite values first, then negative sizes."""
    for i in range(boxes.shape[0]):
        for c in range(4):
            if not np.isfinite(boxes[i, c]):
                return BAD_BOX_VALUES, i
    for i in range(boxes.shape[0]):
        if xywh[i, 2] < 0 or xywh[i, 3] < 0:
            return BAD_BOX_SIZE, i
    return CHECK_OK, -1


@_jit
def _first_outside(labels: np.ndarray, lo: int, hi: int) -> int:
    for i in range(labels.shape[0]):
        if labels[i] < lo or labels[i] > hi:
            return i
    return -1


@_jit
def check_dets(
    boxes: np.ndarray, box_format: int, single: bool, scores: np.ndarray, labels: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, int, int]:
    """Detections' boxes converted to float64 xywh (see :func:`xywh_from`) and checked.

    Returns ``(xywh, code, row)``: the first failed check in the order boxes finite, boxes with
    non-negative width and height, scores finite, labels in [lo, hi], and its first row
    (``CHECK_OK``, -1 when all pass).
    """
    xywh = xywh_from(boxes, box_format, single)
    code, row = _first_bad_boxes(boxes, xywh)
    if code != CHECK_OK:
        return xywh, code, row
    for i in range(scores.shape[0]):
        if not np.isfinite(scores[i]):
            return xywh, BAD_SCORES, i
    row = _first_outside(labels, lo, hi)
    return xywh, (BAD_LABELS if row >= 0 else CHECK_OK), row


@_jit
def check_gts(
    boxes: np.ndarray,
    box_format: int,
    single: bool,
    labels: np.ndarray,
    crowd: np.ndarray,
    area: np.ndarray,
    lo: int,
    hi: int,
    use_boxes: bool,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """GTs' boxes as float64 xywh and their areas, checked like :func:`check_dets`.

    Checks in order: boxes finite, boxes' sizes, ``iscrowd`` in {0, 1}, ``area`` finite >= 0,
    labels in [lo, hi]. The area is the given one where positive, else the box's (with
    ``use_boxes``; without boxes the given area, 0 where none).
    """
    xywh = xywh_from(boxes, box_format, single)
    out_area = area.copy()
    code, row = _first_bad_boxes(boxes, xywh) if use_boxes else (CHECK_OK, -1)
    if code != CHECK_OK:
        return xywh, out_area, code, row
    for i in range(crowd.shape[0]):
        if crowd[i] != 0 and crowd[i] != 1:
            return xywh, out_area, BAD_CROWD, i
    for i in range(area.shape[0]):
        if not np.isfinite(area[i]) or area[i] < 0:
            return xywh, out_area, BAD_AREA, i
        if use_boxes and not area[i] > 0:
            out_area[i] = xywh[i, 2] * xywh[i, 3]
    row = _first_outside(labels, lo, hi)
    return xywh, out_area, (BAD_LABELS if row >= 0 else CHECK_OK), row


def gt_class_counts(
    gt_label: np.ndarray, gt_crowd: np.ndarray, gt_area: np.ndarray, area_ranges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Classes present among the GTs (sorted) and their non-ignored GTs per area range (K, A) int32.

    A GT counts in an area range unless it is a crowd or its area lies outside the range.
    """
    labels, counts, _ = gt_image_class_counts(
        np.zeros(gt_label.shape[0], np.int64), gt_label, gt_crowd, gt_area, area_ranges, 1
    )
    return labels, counts


@_jit
def gt_image_class_counts(
    gt_img: np.ndarray,
    gt_label: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    area_ranges: np.ndarray,
    n_images: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (image, class) of the GTs: the class and its non-ignored GTs per area range.

    ``gt_img`` must be non-decreasing (the GTs grouped by image). Returns the rows' classes
    (R,) (sorted within each image, images in order), their counts (R, A) int32 and the
    number of rows of each image (n_images,) int32. A GT counts in an area range unless it is
    a crowd or its area lies outside the range.
    """
    n = gt_label.shape[0]
    labels = np.empty(n, gt_label.dtype)
    counts = np.zeros((n, area_ranges.shape[0]), np.int32)
    per_image = np.zeros(n_images, np.int32)
    rows, start = 0, 0
    while start < n:
        end = start + 1
        while end < n and gt_img[end] == gt_img[start]:
            end += 1
        # the image's classes, sorted and unique, written in place (an image has a few GTs:
        # insertion sort, no allocation; a merge sort for many)
        m = end - start
        classes = labels[rows : rows + m]
        if m > _INSERTION_MAX:
            image_labels = gt_label[start:end].astype(np.int64)
            classes[:] = image_labels[stable_argsort(image_labels)]
        else:
            for i in range(m):
                v = gt_label[start + i]
                j = i - 1
                while j >= 0 and classes[j] > v:
                    classes[j + 1] = classes[j]
                    j -= 1
                classes[j + 1] = v
        u = 1
        for i in range(1, m):
            if classes[i] != classes[u - 1]:
                classes[u] = classes[i]
                u += 1
        classes = classes[:u]
        for g in range(start, end):
            if gt_crowd[g]:
                continue
            k = rows + np.searchsorted(classes, gt_label[g])
            for a in range(area_ranges.shape[0]):
                if area_ranges[a, 0] <= gt_area[g] <= area_ranges[a, 1]:
                    counts[k, a] += 1
        per_image[gt_img[start]] += u
        rows += u
        start = end
    return labels[:rows], counts[:rows], per_image
