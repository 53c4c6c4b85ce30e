"""Bootstrap over images of COCO AP, on the compact per-detection state, compiled for the CPU.

A bootstrap replicate draws the N evaluated images N times with replacement; image i then
counts ``w[i]`` times (``w`` multinomial, summing to N). Its COCO AP per (IoU threshold,
class), area "all", at ``max_det`` detections per image and class, is pycocotools' accumulate
with every detection and every ground truth of image i weighted by ``w[i]``: per class the
detections stay in score order, a true positive adds ``w`` to the TP count, a false positive
``w`` to the FP count, and the class's number of GTs is the weighted sum. Precision
``TP / (TP + FP + eps)``, made non-increasing from the right, read at the first detection
whose recall reaches each recall threshold, as pycocotools does; classes without weighted GT
get -1. With every weight 1 this is pycocotools' AP exactly (the copies of an image drawn twice
are ranked as one block: a weight, not two interleaved copies).

One compiled pass forward per class gives the totals; one pass backward computes, at each true
positive, the precision and the recall thresholds it reaches for all replicates at once (a
vector over replicates), carrying the envelope max from the right. The FP count is never kept
per threshold: FP = detections seen - TP - ignored. Work ~ (detections + true positives x
thresholds) x replicates; nothing of size detections x replicates is stored.

numpy and numba only (no torch).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numba import njit

from objdet.functional.coco_cpu import EPS, class_score_order

_jit = njit(cache=True, nogil=True)


@_jit
def _count_reached(recall: float, thresholds: np.ndarray, uniform: bool) -> int:
    """How many recall thresholds are <= ``recall`` (thresholds increasing)."""
    n = thresholds.shape[0]
    if recall <= 0.0:
        return 0  # before the first true positive (a zero threshold is read at the first one)
    if uniform:
        j = min(int(recall * (n - 1)), n - 1)  # a guess, then exact steps
        while j + 1 < n and thresholds[j + 1] <= recall:
            j += 1
        while j >= 0 and thresholds[j] > recall:
            j -= 1
        return j + 1
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if thresholds[mid] <= recall:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _bootstrap_ap(
    order: np.ndarray,
    start: np.ndarray,
    det_image: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    ignored: np.ndarray,
    lanes: np.ndarray,
    n_gt: np.ndarray,
    weights: np.ndarray,
    rec_thresholds: np.ndarray,
    uniform: bool,
    max_det: int,
) -> np.ndarray:
    n_cls = start.shape[0] - 1
    n_t = lanes.shape[0]
    n_b = weights.shape[1]
    n_r = rec_thresholds.shape[0]
    out = np.full((n_b, n_t, n_cls), -1.0)
    seen = np.zeros(n_b)
    n_tp = np.zeros((n_t, n_b))
    n_ign = np.zeros((n_t, n_b))
    env = np.zeros((n_t, n_b))
    reached = np.zeros((n_t, n_b), np.int64)
    total = np.zeros((n_t, n_b))
    for k in range(n_cls):
        gt = n_gt[k]
        if gt.max() <= 0.0:
            continue
        seen[:] = 0.0
        n_tp[:] = 0.0
        n_ign[:] = 0.0
        for i in range(start[k], start[k + 1]):  # forward: the totals
            d = order[i]
            if rank[d] >= max_det:
                continue
            w = weights[det_image[d]]
            seen += w
            for t in range(n_t):
                byte, bit = lanes[t] >> 3, lanes[t] & 7
                if (tp[d, byte] >> bit) & 1:
                    n_tp[t] += w
                elif (ignored[d, byte] >> bit) & 1:
                    n_ign[t] += w
        env[:] = 0.0
        total[:] = 0.0
        for t in range(n_t):
            for b in range(n_b):
                reached[t, b] = (
                    _count_reached(n_tp[t, b] / gt[b], rec_thresholds, uniform) if gt[b] > 0 else 0
                )
        for i in range(start[k + 1] - 1, start[k] - 1, -1):  # backward: precision at each TP
            d = order[i]
            if rank[d] >= max_det:
                continue
            w = weights[det_image[d]]
            for t in range(n_t):
                byte, bit = lanes[t] >> 3, lanes[t] & 7
                if (tp[d, byte] >> bit) & 1:
                    for b in range(n_b):
                        if w[b] == 0.0:
                            continue
                        c = n_tp[t, b]
                        p = c / (seen[b] - n_ign[t, b] + EPS)  # TP / (TP + FP + eps)
                        if p > env[t, b]:
                            env[t, b] = p
                        c -= w[b]
                        before = _count_reached(c / gt[b], rec_thresholds, uniform)
                        total[t, b] += env[t, b] * (reached[t, b] - before)
                        reached[t, b] = before
                        n_tp[t, b] = c
                elif (ignored[d, byte] >> bit) & 1:
                    n_ign[t] -= w
            seen -= w
        for t in range(n_t):
            for b in range(n_b):
                if gt[b] > 0:
                    out[b, t, k] = total[t, b] / n_r
    return out


@_jit
def _weighted_gt(
    gt_cls: np.ndarray, gt_image: np.ndarray, counts: np.ndarray, weights: np.ndarray, n_classes: int
) -> np.ndarray:
    """(K, B): per class and replicate, the GT rows' counts weighted by their images' weights."""
    out = np.zeros((n_classes, weights.shape[1]))
    for g in range(gt_cls.shape[0]):
        if counts[g] != 0.0:
            out[gt_cls[g]] += counts[g] * weights[gt_image[g]]
    return out


def bootstrap_weights(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_images, B) float64 multinomial image counts of B resamples with replacement (seeded)."""
    if n_images == 0:
        return np.zeros((0, n_resamples))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_resamples)
    return np.ascontiguousarray(counts.T, dtype=np.float64)


@dataclass
class ImageWeightedState:
    """The COCO state of one evaluation, images in evaluation order (ties between images follow it).

    ``scores``, ``labels``, ``rank``, ``tp``, ``ignored``: the kept detections; ``det_image``
    (D,) the position of each one's image among the N evaluated images. ``gt_labels``,
    ``gt_counts_all``, ``gt_image``: per GT row its class, its non-ignored GTs of area "all"
    and its image's position. ``lanes``: (T,) the lane of each IoU threshold at area "all";
    ``rec_thresholds``: (R,) increasing; ``max_det``: detections per image and class;
    ``iou_thresholds``: (T,) the thresholds (map_50 and map_75 read 0.5 and 0.75);
    ``n_images``: N, the evaluated images (also those without detections or GTs).
    """

    scores: np.ndarray
    labels: np.ndarray
    rank: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    det_image: np.ndarray
    gt_labels: np.ndarray
    gt_counts_all: np.ndarray
    gt_image: np.ndarray
    lanes: np.ndarray
    rec_thresholds: np.ndarray
    max_det: int
    iou_thresholds: np.ndarray
    n_images: int


def weighted_class_ap(state: ImageWeightedState, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP of every (replicate, IoU threshold, class) with image ``weights`` (N, B) (module docstring).

    Returns ``(classes, ap)``: the sorted classes and (B, T, K) float64 AP, -1 where a class has
    no weighted GT.
    """
    labels = np.asarray(state.labels, np.int64)
    gt_labels = np.asarray(state.gt_labels, np.int64)
    classes = np.unique(np.concatenate([labels, gt_labels]))
    cls = np.searchsorted(classes, labels)
    gt_cls = np.searchsorted(classes, gt_labels)
    weights = np.ascontiguousarray(weights, np.float64)
    # weighted GTs per (class, replicate): one compiled pass over the GT rows, on this thread
    # (no BLAS thread pool, no (GT rows, B) temporary); integer counts: the sums are exact
    n_gt = _weighted_gt(
        gt_cls,
        np.asarray(state.gt_image, np.int64),
        state.gt_counts_all.astype(np.float64),
        weights,
        classes.size,
    )
    order, start = class_score_order(cls, np.ascontiguousarray(state.scores, np.float64), classes.size)
    rec = np.ascontiguousarray(state.rec_thresholds, np.float64)
    steps = np.diff(rec)
    uniform = bool(steps.size == 0 or np.allclose(steps, steps[0], rtol=0, atol=1e-12))
    ap = _bootstrap_ap(
        order, start, np.asarray(state.det_image, np.int64), np.asarray(state.rank, np.int64),
        np.ascontiguousarray(state.tp), np.ascontiguousarray(state.ignored),
        np.asarray(state.lanes, np.int64), n_gt, weights, rec, uniform, int(state.max_det),
    )  # fmt: skip
    return classes, ap


@dataclass
class BootstrapResult:
    """Percentile bootstrap intervals over images of the COCO AP numbers.

    ``estimate`` / ``low`` / ``high``: {"map", "map_50", "map_75"} floats (for a paired
    comparison: the difference, this metric minus the other) and ``map_per_class`` (K,) float64
    arrays over ``classes`` (NaN: the class has no GT). ``replicates``: (B, 3) map, map_50,
    map_75 of each resample (NaN where undefined); ``class_replicates``: (B, K). ``bias``: the
    replicates' mean minus the estimate, per summary number. AP is not a smooth function of
    the images (the precision envelope is a running maximum), so its resamples lean upwards:
    with thousands of images the bias can exceed the spread and the interval then lies above
    the estimate; ``bias`` shows it.
    """

    estimate: dict[str, object]
    low: dict[str, object]
    high: dict[str, object]
    level: float
    n_resamples: int
    seed: int
    classes: np.ndarray
    replicates: np.ndarray
    class_replicates: np.ndarray
    bias: dict[str, float]


def summary_of_replicates(ap: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3) map, map_50, map_75 and (B, K) per-class AP of (B, T, K) replicate APs (NaN: undefined).

    As pycocotools' summary: means over the defined (> -1) entries; a threshold not among
    ``thresholds`` (0.5, 0.75) gives NaN.
    """
    defined = np.where(ap > -1, ap, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing defined: NaN, as meant
        per_class = np.nanmean(defined, axis=1)  # (B, K): mean over thresholds
        overall = np.nanmean(defined.reshape(ap.shape[0], -1), axis=1)
        columns = [overall]
        for value in (0.5, 0.75):
            idx = np.flatnonzero(np.isclose(thresholds, value, rtol=0, atol=1e-12))
            columns.append(
                np.nanmean(defined[:, idx[0]], axis=1) if idx.size else np.full(ap.shape[0], np.nan)
            )
    return np.stack(columns, 1), per_class


def bootstrap_intervals(
    state: ImageWeightedState,
    n_resamples: int,
    level: float,
    seed: int,
    other: ImageWeightedState | None = None,
) -> BootstrapResult:
    """Percentile intervals of map, map_50, map_75 and per-class AP over ``n_resamples`` resamples.

    Every one of ``state.n_images`` images is drawn, also those without detections or GTs.
    With ``other`` (the same images, in the same order) the paired difference ``state - other``,
    both weighted by the same draws; per-class differences over ``state``'s classes (NaN for a
    class ``other`` has not).
    """
    n_images = int(state.n_images)
    if other is not None and int(other.n_images) != n_images:
        raise ValueError(f"`other` must have the same images: {n_images} and {int(other.n_images)} images")
    weights = bootstrap_weights(n_images, n_resamples, seed)
    ones = np.ones((n_images, 1))
    classes, ap = weighted_class_ap(state, weights)
    replicates, class_replicates = summary_of_replicates(ap, state.iou_thresholds)
    estimate, class_estimate = summary_of_replicates(weighted_class_ap(state, ones)[1], state.iou_thresholds)
    if other is not None:
        their_classes, their_ap = weighted_class_ap(other, weights)
        their_rep, their_class_rep = summary_of_replicates(their_ap, other.iou_thresholds)
        their_est, their_class_est = summary_of_replicates(
            weighted_class_ap(other, ones)[1], other.iou_thresholds
        )
        at = np.searchsorted(their_classes, classes).clip(max=max(their_classes.size - 1, 0))
        known = (their_classes[at] == classes) if their_classes.size else np.zeros(classes.size, bool)
        replicates = replicates - their_rep
        class_replicates = class_replicates - np.where(known, their_class_rep[:, at], np.nan)
        estimate = estimate - their_est
        class_estimate = class_estimate - np.where(known, their_class_est[:, at], np.nan)
    q = 100.0 * np.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN bounds
        bounds = np.nanpercentile(replicates, q, axis=0)
        class_bounds = np.nanpercentile(class_replicates, q, axis=0)
        bias = np.nanmean(replicates, 0) - estimate[0]
    names = ("map", "map_50", "map_75")

    def pick(values: np.ndarray, per_class: np.ndarray) -> dict[str, object]:
        out: dict[str, object] = {n: float(v) for n, v in zip(names, values, strict=True)}
        out["map_per_class"] = per_class
        return out

    return BootstrapResult(
        estimate=pick(estimate[0], class_estimate[0]),
        low=pick(bounds[0], class_bounds[0]),
        high=pick(bounds[1], class_bounds[1]),
        level=level,
        n_resamples=n_resamples,
        seed=seed,
        classes=classes,
        replicates=replicates,
        class_replicates=class_replicates,
        bias=dict(zip(names, bias.tolist(), strict=True)),
    )
