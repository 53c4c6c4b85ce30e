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

from objdet.ops.coco_cpu import LOW_BIT

#: np.spacing(1): pycocotools adds it to the precision denominator.
EPS = float(np.spacing(1))

#: compiled once, cached on disk; runs on the calling thread without the GIL (no thread pool)
_jit = njit(cache=True, nogil=True)


@_jit
def descending_keys(scores: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is the scores' descending order, equal scores equal keys.

    Finite float64 bits map to integers monotonically (flip every bit of negatives, the sign
    bit of the others); ``+ 0.0`` turns -0.0 into 0.0 so that the two stay a tie, as in
    pycocotools' stable sort of ``-score``.
    """
    n = scores.shape[0]
    bits = (scores + 0.0).view(np.uint64)
    out = np.empty(n, np.uint64)
    sign = np.uint64(1) << np.uint64(63)
    for i in range(n):
        b = bits[i]
        asc = ~b if b & sign else b | sign
        out[i] = ~asc
    return out


@_jit
def class_score_order(cls: np.ndarray, scores: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Detections by (class, score descending, state order), and each class's first position (K + 1,).

    A stable counting sort by class, then an LSD radix sort of each class's segment over the
    bytes of its score keys (every byte's histogram from one read; a byte that is the same for
    the whole segment is skipped). A segment's passes stay in cache; no comparisons; ties keep
    state order, as pycocotools' mergesort does.
    """
    n = cls.shape[0]
    start = np.zeros(n_classes + 1, np.int64)
    for i in range(n):
        start[cls[i] + 1] += 1
    for k in range(n_classes):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):  # stable: state order inside a class
        order[fill[cls[i]]] = i
        fill[cls[i]] += 1
    all_keys = descending_keys(scores)
    keys = np.empty(n, np.uint64)
    for i in range(n):
        keys[i] = all_keys[order[i]]
    tmp_idx = np.empty(n, np.int64)
    tmp_keys = np.empty(n, np.uint64)
    hist = np.zeros((8, 257), np.int64)
    byte = np.uint64(255)
    for k in range(n_classes):
        s0, s1 = start[k], start[k + 1]
        if s1 - s0 < 2:
            continue
        hist[:] = 0
        for i in range(s0, s1):
            key = keys[i]
            for p in range(8):
                hist[p, ((key >> np.uint64(8 * p)) & byte) + 1] += 1
        idx, key_in, idx_out, key_out = order, keys, tmp_idx, tmp_keys
        for p in range(8):
            count = hist[p]
            if count.max() == s1 - s0:
                continue  # this byte is the same in the whole segment: the order stays
            count[0] = s0
            for d in range(256):
                count[d + 1] += count[d]
            sh = np.uint64(8 * p)
            for i in range(s0, s1):
                d = (key_in[i] >> sh) & byte
                pos = count[d]
                count[d] = pos + 1
                idx_out[pos] = idx[i]
                key_out[pos] = key_in[i]
            idx, key_in, idx_out, key_out = idx_out, key_out, idx, key_in
        if idx is not order:  # an odd number of passes: the result is in the scratch arrays
            for i in range(s0, s1):
                order[i] = idx[i]
                keys[i] = key_in[i]
    return order, start


@_jit
def _gather_rows(
    order: np.ndarray,
    start: np.ndarray,
    scores: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    max_det: int,
) -> tuple:
    """The rows in ``order`` (classes in ``start`` segments), and the most true positives of one
    lane in one class among detections of rank < ``max_det``.

    Matching makes that count at most the class's non-ignored GTs, but the state may come from
    elsewhere: counting it here sizes the buffers exactly, so the hot pass never grows them
    (growing an array inside it costs more than this count).
    """
    n, n_bytes = order.shape[0], tp.shape[1]
    s = np.empty(n, np.float64)
    r = np.empty(n, np.int64)
    t = np.empty((n, n_bytes), np.uint8)
    g = np.empty((n, n_bytes), np.uint8)
    counts = np.zeros(8 * n_bytes, np.int64)
    most = 0
    for k in range(start.shape[0] - 1):
        counts[:] = 0
        for i in range(start[k], start[k + 1]):
            j = order[i]
            s[i] = scores[j]
            r[i] = rank[j]
            for b in range(n_bytes):
                tb = tp[j, b]
                t[i, b] = tb
                g[i, b] = ignored[j, b]
                if r[i] < max_det:
                    while tb:
                        low = tb & -tb
                        counts[b * 8 + LOW_BIT[low]] += 1
                        tb ^= low
        if start[k + 1] > start[k]:
            most = max(most, counts.max())
    return s, r, t, g, most


#: byte j of ``_SPREAD[v]`` is bit j of v: one add counts the bits of eight lanes (8-bit counters)
_SPREAD = np.zeros(256, np.int64)
for _v in range(256):
    for _j in range(8):
        if _v >> _j & 1:
            _SPREAD[_v] |= 1 << (8 * _j)
#: detections added between two flushes: a counter stays <= 127, so the int64 stays positive
_SPREAD_FLUSH = 127


@_jit
def _flush_counts(words: np.ndarray, counts: np.ndarray) -> None:
    """Add the 8-bit counters of ``words`` (byte j of word b: lane ``8 b + j``) to ``counts``; zero them."""
    for b in range(words.shape[0]):
        w = words[b]
        for j in range(8):
            counts[b * 8 + j] += (w >> (8 * j)) & 255
        words[b] = 0


@_jit
def _fill_recall(
    recall: np.ndarray, n_tp: np.ndarray, seen: int, n_gt: np.ndarray, k: int, m: int, n_thresholds: int
) -> None:
    """Recall of class k at maxDet m from its TPs per lane (0 without detections; -1 stays without GT)."""
    n_area = n_gt.shape[1]
    for a in range(n_area):
        npig = n_gt[k, a]
        if npig == 0:
            continue
        for t in range(n_thresholds):
            recall[t, k, a, m] = n_tp[t * n_area + a] / npig if seen else 0.0


@_jit
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
    # filled class by class: (K, A, M, T, R) keeps each class's values together in memory; the
    # tables are returned as (T, R, K, A, M) views of them
    precision = np.full((n_cls, n_area, n_md, n_thresholds, n_rec), -1.0)
    score_tab = np.full((n_cls, n_area, n_md, n_thresholds, n_rec), -1.0)
    recall = np.full((n_thresholds, n_cls, n_area, n_md), -1.0)
    order, start = class_score_order(cls, scores, n_cls)
    # gathered once in (class, score) order, so that the passes below read memory in sequence
    top_md = max_dets.max() if n_md else 0
    scores, rank, tp, ignored, most = _gather_rows(order, start, scores, rank, tp, ignored, top_md)
    n_lanes = n_thresholds * n_area
    prec_buf = np.empty((n_lanes, most), np.float64)
    score_buf = np.empty((n_lanes, most), np.float64)
    n_bytes = tp.shape[1]
    # counters for every bit of the packed bytes (the last byte's unused bits included)
    n_tp = np.zeros(8 * n_bytes, np.int64)
    n_ign = np.zeros(8 * n_bytes, np.int64)
    ign_word = np.zeros(n_bytes, np.int64)  # eight 8-bit counters per byte, flushed into n_ign
    # The maxDets that need only recall are counted in the pass of the largest full maxDet
    # (it reads every detection they read); one larger than it takes a full pass of its own
    # (its precision and scores are reset to -1 at the end).
    requested = full_m  # what the caller asked for; full_m below: the maxDets given a full pass
    full_m = full_m.copy()
    top = -1
    for m in range(n_md):
        if full_m[m] and (top < 0 or max_dets[m] > max_dets[top]):
            top = m
    for m in range(n_md):
        if not full_m[m] and (top < 0 or max_dets[m] > max_dets[top]):
            full_m[m] = True
    part = np.flatnonzero(~full_m)
    n_part = part.shape[0]
    part_md = max_dets[part]
    part_tp = np.zeros((n_part, 8 * n_bytes), np.int64)
    part_seen = np.zeros(n_part, np.int64)
    for k in range(n_cls):
        s0, s1 = start[k], start[k + 1]
        for m in range(n_md):
            if not full_m[m]:
                continue
            md = max_dets[m]
            parts = n_part if m == top else 0
            # One pass in score order for every lane at once. A detection is a TP, ignored or a
            # FP per lane; FPs are never counted one by one: FP = seen - TP - ignored. Ignored
            # bits are counted eight lanes at a time (one add of a spread byte), flushed to
            # n_ign before a counter can pass 127. Recall of the smaller maxDets needs only
            # TP counts (in any order): they are counted here too.
            n_tp[:] = 0
            n_ign[:] = 0
            ign_word[:] = 0
            part_tp[:] = 0
            part_seen[:] = 0
            seen = 0
            first = -1
            pending = 0
            for d in range(s0, s1):
                det_rank = rank[d]
                if det_rank >= md:
                    continue
                if first < 0:
                    first = d
                seen += 1
                for i in range(parts):
                    if det_rank < part_md[i]:
                        part_seen[i] += 1
                for b in range(n_bytes):
                    ib = ignored[d, b]
                    if ib:
                        ign_word[b] += _SPREAD[ib]
                    tb = tp[d, b]
                    while tb:
                        low = tb & -tb
                        j = LOW_BIT[low]
                        lane = b * 8 + j
                        c = n_tp[lane]
                        n_tp[lane] = c + 1
                        fp = seen - (c + 1) - (n_ign[lane] + ((ign_word[b] >> (8 * j)) & 255))
                        prec_buf[lane, c] = (c + 1) / (fp + (c + 1) + EPS)
                        score_buf[lane, c] = scores[d]
                        for i in range(parts):
                            if det_rank < part_md[i]:
                                part_tp[i, lane] += 1
                        tb ^= low
                pending += 1
                if pending == _SPREAD_FLUSH:
                    _flush_counts(ign_word, n_ign)
                    pending = 0
            for i in range(parts):
                _fill_recall(recall, part_tp[i], part_seen[i], n_gt, k, part[i], n_thresholds)
            _fill_recall(recall, n_tp, seen, n_gt, k, m, n_thresholds)
            for a in range(n_area):
                npig = n_gt[k, a]
                if npig == 0:
                    continue
                for t in range(n_thresholds):
                    lane = t * n_area + a
                    count = n_tp[lane]
                    # precision made non-increasing from the right (read only at true positives:
                    # between two of them it only falls or stays)
                    for j in range(count - 2, -1, -1):
                        if prec_buf[lane, j + 1] > prec_buf[lane, j]:
                            prec_buf[lane, j] = prec_buf[lane, j + 1]
                    j = 0
                    for r in range(n_rec):
                        thr = rec_thresholds[r]
                        if seen == 0:
                            p_val, s_val = 0.0, 0.0
                        elif thr <= 0.0:  # reached by the first detection, whatever it is
                            p_val = prec_buf[lane, 0] if count else 0.0
                            s_val = scores[first]
                        else:  # the first true positive whose recall j / npig reaches thr
                            while j < count and (j + 1) / npig < thr:
                                j += 1
                            if j < count:
                                p_val, s_val = prec_buf[lane, j], score_buf[lane, j]
                            else:
                                p_val, s_val = 0.0, 0.0
                        precision[k, a, m, t, r] = p_val
                        score_tab[k, a, m, t, r] = s_val
    for m in range(n_md):
        if not requested[m] and full_m[m]:
            precision[:, :, m] = -1.0
            score_tab[:, :, m] = -1.0
    return precision.transpose(3, 4, 0, 1, 2), recall, score_tab.transpose(3, 4, 0, 1, 2)


@_jit
def _class_gt_counts(gt_cls: np.ndarray, gt_counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Non-ignored GTs per class and area range (K, A) int64: the rows of ``gt_counts`` summed by class."""
    n_gt = np.zeros((n_classes, gt_counts.shape[1]), np.int64)
    for i in range(gt_cls.shape[0]):
        for a in range(gt_counts.shape[1]):
            n_gt[gt_cls[i], a] += gt_counts[i, a]
    return n_gt


@_jit
def _class_lookup(
    labels: np.ndarray, gt_labels: np.ndarray
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`class_index` through a lookup table when the ids are small and non-negative (else False)."""
    n, lo, hi = labels.shape[0] + gt_labels.shape[0], 0, -1
    for i in range(labels.shape[0]):
        lo, hi = min(lo, labels[i]), max(hi, labels[i])
    for i in range(gt_labels.shape[0]):
        lo, hi = min(lo, gt_labels[i]), max(hi, gt_labels[i])
    if lo < 0 or hi >= 4 * n + 1024:
        empty = np.zeros(0, np.int64)
        return False, empty, empty, empty
    lookup = np.zeros(hi + 1, np.int64)
    for i in range(labels.shape[0]):
        lookup[labels[i]] = 1
    for i in range(gt_labels.shape[0]):
        lookup[gt_labels[i]] = 1
    classes = np.flatnonzero(lookup)
    lookup[classes] = np.arange(classes.shape[0])
    cls = np.empty(labels.shape[0], np.int64)
    for i in range(labels.shape[0]):
        cls[i] = lookup[labels[i]]
    gt_cls = np.empty(gt_labels.shape[0], np.int64)
    for i in range(gt_labels.shape[0]):
        gt_cls[i] = lookup[gt_labels[i]]
    return True, classes, cls, gt_cls


def _sorted_class_index(
    labels: np.ndarray, gt_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`class_index` by sorting and binary search (any int64 ids)."""
    classes = np.unique(np.concatenate([labels, gt_labels]))
    return classes, np.searchsorted(classes, labels), np.searchsorted(classes, gt_labels)


def class_index(labels: np.ndarray, gt_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted classes seen on either side and each label's index among them (int64 arrays in)."""
    small, classes, cls, gt_cls = _class_lookup(labels, gt_labels)
    return (classes, cls, gt_cls) if small else _sorted_class_index(labels, gt_labels)


@_jit
def _accumulate_classes(
    scores: np.ndarray,
    cls: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    gt_cls: np.ndarray,
    gt_counts: np.ndarray,
    n_classes: int,
    n_thresholds: int,
    rec_thresholds: np.ndarray,
    max_dets: np.ndarray,
    full_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`accumulate_tables` from class indices and the GT rows' class indices and counts."""
    n_gt = _class_gt_counts(gt_cls, gt_counts, n_classes)
    return accumulate_tables(
        scores, cls, rank, tp, ignored, n_gt, n_thresholds, rec_thresholds, max_dets, full_m
    )


@_jit
def _accumulate_labels(
    scores: np.ndarray,
    labels: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    gt_labels: np.ndarray,
    gt_counts: np.ndarray,
    n_thresholds: int,
    rec_thresholds: np.ndarray,
    max_dets: np.ndarray,
    full_m: np.ndarray,
) -> tuple:
    """:func:`_accumulate_classes` from labels, in one compiled call (one cache load at start-up);
    the first value is False, and nothing is computed, when the class ids are not small."""
    small, classes, cls, gt_cls = _class_lookup(labels, gt_labels)
    if not small:
        empty = np.zeros((0, 0, 0, 0, 0))
        return False, classes, empty, np.zeros((0, 0, 0, 0)), empty
    precision, recall, score_tab = _accumulate_classes(
        scores, cls, rank, tp, ignored, gt_cls, gt_counts, classes.shape[0],
        n_thresholds, rec_thresholds, max_dets, full_m,
    )  # fmt: skip
    return True, classes, precision, recall, score_tab


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
    md = np.asarray(max_dets, np.int64)
    full_m = np.array([full or i == len(md) - 1 or m == 100 for i, m in enumerate(md)], np.bool_)
    labels, gt_labels = np.ascontiguousarray(labels, np.int64), np.ascontiguousarray(gt_labels, np.int64)
    gt_counts = np.ascontiguousarray(gt_counts, np.int64)
    scores, rank = np.ascontiguousarray(scores, np.float64), np.ascontiguousarray(rank, np.int64)
    tp, ignored = np.ascontiguousarray(tp), np.ascontiguousarray(ignored)
    n_thr, rec = int(n_thresholds), np.ascontiguousarray(rec_thresholds, np.float64)
    small, classes, precision, recall, score_tab = _accumulate_labels(
        scores, labels, rank, tp, ignored, gt_labels, gt_counts, n_thr, rec, md, full_m
    )
    if not small:  # large or negative class ids: classes found by sorting
        classes, cls, gt_cls = _sorted_class_index(labels, gt_labels)
        precision, recall, score_tab = _accumulate_classes(
            scores, cls, rank, tp, ignored, gt_cls, gt_counts, classes.size, n_thr, rec, md, full_m
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

    # the area and maxDet first: an integer index is a view, so only the slice read is copied
    def ap(iou: float | None, area: int, max_det: int) -> float:
        return _mean_defined(precision[:, :, :, area][..., det(max_det)][thr(iou)])

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


def summarize_keypoints_np(
    precision: np.ndarray, recall: np.ndarray, iou_thresholds: np.ndarray, max_dets: Sequence[int]
) -> np.ndarray:
    """The 10 numbers of pycocotools' keypoint summary (``_summarizeKps``), float64 (10,).

    AP at every threshold, at 0.5, at 0.75, AP medium/large, then AR the same five ways, all at
    the last maxDet (pycocotools: 20); the tables' area ranges are (all, medium, large).
    """
    iou_thresholds = np.asarray(iou_thresholds, np.float64)
    last = len(max_dets) - 1

    def thr(value: float | None) -> np.ndarray:
        return np.arange(iou_thresholds.size) if value is None else np.flatnonzero(iou_thresholds == value)

    out = []
    for table in (precision, recall):
        for iou, area in ((None, 0), (0.5, 0), (0.75, 0), (None, 1), (None, 2)):
            # the area and maxDet first (views), then the thresholds (a copy of that slice only)
            if table is precision:
                out.append(_mean_defined(table[:, :, :, area, last][thr(iou)]))
            else:
                out.append(_mean_defined(table[:, :, area, last][thr(iou)]))
    return np.array(out, dtype=np.float64)


def summarize_for(
    iou_type: str,
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray,
    max_dets: Sequence[int],
) -> np.ndarray:
    """pycocotools' summary of ``iou_type``: :func:`summarize_np`, or :func:`summarize_keypoints_np`."""
    summarize = summarize_keypoints_np if iou_type == "keypoints" else summarize_np
    return summarize(precision, recall, iou_thresholds, max_dets)


def per_class_ap_ar_np(
    precision: np.ndarray,
    recall: np.ndarray,
    max_dets: Sequence[int],
    iou_index: int | None = None,
    ap_max_det: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and AR at area 'all', as pycocotools' first and overall-AR stats per class alone.

    AP is the mean over IoU thresholds and recall points at maxDets = ``ap_max_det`` (100 for
    COCO, -1 for every class when it is not one of ``max_dets``; keypoints pass 20), AR the mean
    over IoU thresholds at the last maxDet. Classes without GT give -1. ``iou_index``
    restricts both to one IoU threshold.
    """
    at_100 = [i for i, m in enumerate(max_dets) if m == ap_max_det]
    if iou_index is not None:
        precision = precision[iou_index : iou_index + 1]
        recall = recall[iou_index : iou_index + 1]
    prec = precision[..., 0, :][..., at_100]  # (T, R, K, #100)
    n_cls = precision.shape[2]
    # C-order copies whatever the tables' strides, so that the sums run in one order on every
    # engine and route (numpy sums a contiguous axis pairwise, others row by row)
    prec = np.ascontiguousarray(
        np.moveaxis(prec, 2, -1).reshape(prec.shape[0] * prec.shape[1] * prec.shape[3], n_cls)
    )
    rec = np.ascontiguousarray(recall[..., 0, len(max_dets) - 1])  # (T, K)
    defined_p = prec > -1
    ap = np.where(defined_p, prec, 0.0).sum(0) / np.maximum(defined_p.sum(0), 1)
    ap = np.where(defined_p.any(0), ap, -1.0)
    defined_r = rec > -1
    ar = np.where(defined_r, rec, 0.0).sum(0) / np.maximum(defined_r.sum(0), 1)
    ar = np.where(defined_r.any(0), ar, -1.0)
    return ap, ar
