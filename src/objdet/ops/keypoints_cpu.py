"""Object keypoint similarity (OKS) compiled for the CPU: pycocotools' ``computeOks`` per pair.

numpy and numba only (no torch), so the command line uses it without importing torch. The
torch version for any device is :func:`objdet.ops.keypoint_oks`.

pycocotools' rules, for a detection d and a GT g with K keypoints, sigmas s and
``var = (2 s)**2``:

* if g has labelled keypoints (visibility > 0): ``e_k = ((xd - xg)**2 + (yd - yg)**2) / var_k
  / (area_g + eps) / 2`` over those keypoints only;
* if it has none, the distance of each detected keypoint to the GT box enlarged by its own
  size on every side, ``[x - w, x + 2 w] x [y - h, y + 2 h]`` (0 inside), over all K keypoints;
* ``OKS = sum_k exp(-e_k) / n`` with n the number of terms, summed in numpy's order (eight
  running sums from eight terms on), so the values are pycocotools' to the last bit of the sum;
  ``eps = np.spacing(1)``; the detection's visibility values are not read.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["COCO_PERSON_SIGMAS", "keypoint_extent_area", "pair_oks"]

#: pycocotools' ``kpt_oks_sigmas`` for COCO's 17 person keypoints (nose, eyes, ears, shoulders,
#: elbows, wrists, hips, knees, ankles), the same float64 values.
COCO_PERSON_SIGMAS = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)

_EPS = float(np.spacing(1))

_jit = njit(cache=True, nogil=True)


@_jit
def _block_sum(a: np.ndarray, start: int, n: int) -> float:
    """numpy's sum of ``a[start:start + n]`` for n <= 128: in order below 8 terms, else 8 running sums."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    while i + 8 <= n:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for j in range(start + i, start + n):
        res += a[j]
    return res


@_jit
def _numpy_sum(a: np.ndarray, start: int, n: int) -> float:
    """``np.sum(a[start:start + n])`` in numpy's summation order (pairwise over blocks of <= 128).

    numpy halves a longer range (the first half a multiple of 8) and adds the halves' sums;
    the halving runs on an explicit stack here (numba cannot cache recursive functions).
    """
    if n <= 128:
        return _block_sum(a, start, n)
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    phases = np.zeros(64, np.int64)
    sums = np.empty(64, np.float64)
    top, n_sums = 0, 0
    starts[0], sizes[0], phases[0] = start, n, 0
    while top >= 0:
        s0, size = starts[top], sizes[top]
        if size <= 128:
            sums[n_sums] = _block_sum(a, s0, size)
            n_sums += 1
            top -= 1
            continue
        half = size // 2
        half -= half % 8
        if phases[top] == 0:  # the first half
            phases[top] = 1
            top += 1
            starts[top], sizes[top], phases[top] = s0, half, 0
        elif phases[top] == 1:  # the second half
            phases[top] = 2
            top += 1
            starts[top], sizes[top], phases[top] = s0 + half, size - half, 0
        else:  # both halves summed
            sums[n_sums - 2] = sums[n_sums - 2] + sums[n_sums - 1]
            n_sums -= 1
            top -= 1
    return sums[0]


@_jit
def pair_oks(
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    det_kpts: np.ndarray,
    gt_kpts: np.ndarray,
    gt_area: np.ndarray,
    gt_xywh: np.ndarray,
    gt_has_box: np.ndarray,
    sigmas: np.ndarray,
) -> np.ndarray:
    """OKS (float64) of the pairs ``(pair_det[p], pair_gt[p])`` (module docstring).

    ``det_kpts`` (D, K, >= 2) and ``gt_kpts`` (G, K, 3) float64 as (x, y, visibility);
    ``gt_area`` (G,); ``gt_xywh`` (G, 4) the GT boxes, read only for a GT without labelled
    keypoints, whose OKS is 0 when ``gt_has_box`` is False (pycocotools needs the box).
    """
    n_k = sigmas.shape[0]
    var = np.empty(n_k, np.float64)
    for k in range(n_k):
        var[k] = (sigmas[k] * 2.0) ** 2
    out = np.zeros(pair_det.shape[0], np.float64)
    terms = np.empty(n_k, np.float64)
    for p in range(pair_det.shape[0]):
        d, g = pair_det[p], pair_gt[p]
        denom = gt_area[g] + _EPS
        n = 0
        for k in range(n_k):
            if gt_kpts[g, k, 2] > 0:
                dx = det_kpts[d, k, 0] - gt_kpts[g, k, 0]
                dy = det_kpts[d, k, 1] - gt_kpts[g, k, 1]
                terms[n] = np.exp(-((dx**2 + dy**2) / var[k] / denom / 2.0))
                n += 1
        if n == 0:
            if not gt_has_box[g]:
                continue
            bx, by, bw, bh = gt_xywh[g, 0], gt_xywh[g, 1], gt_xywh[g, 2], gt_xywh[g, 3]
            x0, x1, y0, y1 = bx - bw, bx + bw * 2, by - bh, by + bh * 2
            for k in range(n_k):
                xd, yd = det_kpts[d, k, 0], det_kpts[d, k, 1]
                dx = max(0.0, x0 - xd) + max(0.0, xd - x1)
                dy = max(0.0, y0 - yd) + max(0.0, yd - y1)
                terms[k] = np.exp(-((dx**2 + dy**2) / var[k] / denom / 2.0))
            n = n_k
        out[p] = _numpy_sum(terms, 0, n) / n
    return out


@_jit
def keypoint_extent_area(kpts: np.ndarray) -> np.ndarray:
    """(N,) area of the box spanned by all K keypoints of each pose (pycocotools' ``loadRes``).

    Every keypoint counts, whatever its visibility (unlabelled ones at (0, 0) included), as
    pycocotools computes a result's ``area`` from its keypoints.
    """
    n = kpts.shape[0]
    out = np.zeros(n, np.float64)
    for i in range(n):
        if kpts.shape[1] == 0:
            continue
        x0 = x1 = kpts[i, 0, 0]
        y0 = y1 = kpts[i, 0, 1]
        for k in range(1, kpts.shape[1]):
            x, y = kpts[i, k, 0], kpts[i, k, 1]
            x0, x1 = min(x0, x), max(x1, x)
            y0, y1 = min(y0, y), max(y1, y)
        out[i] = (x1 - x0) * (y1 - y0)
    return out
