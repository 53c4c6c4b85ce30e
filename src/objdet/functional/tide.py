"""TIDE's dAP of each error type (Bolya et al., ECCV 2020), from the compact per-detection state.

The state is what :func:`objdet.ops.tide_cpu.tide_classify_np` decides in ``update()``: per
kept detection its score, class, code byte (error type and flags) and the class it takes when
its error is fixed; per non-crowd GT its class and status (matched, fixable, missed). Rows come
image by image in evaluation order, detections by descending score inside an image; that order
breaks score ties, as the insertion order does in ``tidecv``.

AP is ``tidecv``'s: one IoU threshold (the foreground one), per class the precision at the 101
recall points ``r / 100`` (the first detection reaching each, precision made non-increasing),
averaged, in AP points; a class with detections but no GT counts with AP 0; the mean runs
over the classes that have a GT or a detection counted *in the data set at hand*, so a fix
that removes a class's last detection also removes the class from the mean.

Each main error type T (``cls``, ``loc``, ``both``, ``dupe``, ``bkg``, ``miss``) is fixed on
its own (not progressively), by the paper's oracle: classification and localisation errors
become true positives (of the target GT's class, resp. of their own) where they are the best
detection for an unmatched GT and are removed otherwise; duplicate, background and "both" errors are removed;
missed GTs are removed from the GT count. dAP(T) = max(AP fixed - AP, 0). The special errors:
``fp`` scores every true positive 1 and every false positive 0 (perfect precision at the same
recall); ``fn`` removes every unmatched GT (perfect recall at the same precision); their dAP
is not clipped. As in ``tidecv``, a fixed data set lists the points of the errors first and
the true positives after them, which breaks score ties between the two that way.

Everything here is numpy (and numba): no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from objdet.ops.tide_cpu import (
    BKG,
    BOTH,
    CLS,
    DUPE,
    FIXABLE,
    FIXES,
    IGNORED,
    LOC,
    MATCHED,
    MISSED,
    TP,
    TYPE_MASK,
)

__all__ = [
    "MAIN_ERRORS",
    "SPECIAL_ERRORS",
    "TideResult",
    "tide_ap_np",
    "tide_errors_np",
    "tide_image_scores_np",
    "tide_label_error_rows_np",
    "worst_image_order",
]

#: the main error types, in tidecv's order
MAIN_ERRORS = ("cls", "loc", "both", "dupe", "bkg", "miss")
#: the special error types (all false positives, all false negatives)
SPECIAL_ERRORS = ("fp", "fn")
_CODES = {"cls": CLS, "loc": LOC, "both": BOTH, "dupe": DUPE, "bkg": BKG}

_jit = njit(cache=True, nogil=True)


@_jit
def _class_ap(cls: np.ndarray, tp: np.ndarray, num_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tidecv's AP of each class (points sorted by class, then rank) and whether the class counts."""
    n_classes = num_gt.shape[0]
    ap = np.zeros(n_classes)
    present = num_gt > 0
    n = cls.shape[0]
    prec = np.empty(n)
    rec = np.empty(n)
    i = 0
    while i < n:
        c = cls[i]
        end = i
        while end < n and cls[end] == c:
            end += 1
        present[c] = True
        g = num_gt[c]
        if g > 0:
            n_true = 0
            for j in range(i, end):
                if tp[j]:
                    n_true += 1
                prec[j] = n_true / (j - i + 1)
                rec[j] = n_true / g
            for j in range(end - 1, i, -1):  # non-increasing precision
                if prec[j] > prec[j - 1]:
                    prec[j - 1] = prec[j]
            total = 0.0
            j = i
            for r in range(101):
                x = r / 100
                while j < end and rec[j] < x:
                    j += 1
                if j < end:
                    total += prec[j]
            ap[c] = total / 101 * 100
        i = end
    return ap, present


def tide_ap_np(
    cls: np.ndarray, score: np.ndarray, tp: np.ndarray, num_gt: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """tidecv's mAP (AP points) of points listed in tie-break order; per-class AP and presence.

    Args:
        cls: (P,) int class (0..K-1) of each point. score: (P,) float. tp: (P,) bool.
        num_gt: (K,) int GTs of each class.

    Returns:
        ``(map, ap, present)``: the mean over present classes (0 with none), (K,) float64 AP
        (0 where absent or without GT), (K,) bool (a GT or a point).

    Example:
        >>> import numpy as np
        >>> m, ap, present = tide_ap_np(np.array([0, 0, 1]), np.array([0.9, 0.8, 0.7]),
        ...                             np.array([True, False, False]), np.array([2, 0]))
        >>> round(m, 6), ap.round(4).tolist(), present.tolist()
        (25.247525, [50.495, 0.0], [True, True])
    """
    cls = np.asarray(cls, np.int64)
    order = np.lexsort((-np.asarray(score, np.float64), cls))  # stable: ties keep the listed order
    ap, present = _class_ap(cls[order], np.asarray(tp, np.bool_)[order], np.asarray(num_gt, np.int64))
    mean = float(ap[present].sum() / present.sum()) if present.any() else 0.0
    return mean, ap, present


@dataclass
class TideResult:
    """What :func:`tide_errors_np` computes; dAP in AP points (0-100), as tidecv prints them.

    ``ap``: tidecv's AP at the foreground threshold. ``main`` / ``special``: dAP of each error
    type (:data:`MAIN_ERRORS`, :data:`SPECIAL_ERRORS`). ``classes``: the classes evaluated
    (a GT or a counted detection), ascending; ``ap_per_class`` and ``main_per_class`` /
    ``special_per_class`` the same per class (a class's AP after a fix that empties it counts
    as 0; main ones clipped at 0 like the overall ones). ``counts``: detections of each error
    type (crowd-covered ones included, as tidecv counts them) and missed GTs.
    """

    ap: float
    main: dict[str, float]
    special: dict[str, float]
    classes: np.ndarray
    ap_per_class: np.ndarray
    main_per_class: dict[str, np.ndarray] = field(default_factory=dict)
    special_per_class: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def tide_errors_np(
    det_score: np.ndarray,
    det_label: np.ndarray,
    det_code: np.ndarray,
    det_fix_label: np.ndarray,
    gt_label: np.ndarray,
    gt_status: np.ndarray,
) -> TideResult:
    """TIDE's AP and the dAP of every error type from the compact state (rules in the module docstring).

    Args:
        det_score: (D,) float scores of the kept detections, in evaluation order.
        det_label: (D,) int class. det_code: (D,) uint8 code (see :mod:`objdet.ops.tide_cpu`).
        det_fix_label: (D,) int class of the true positive a fixable error becomes.
        gt_label: (G,) int class of each non-crowd GT. gt_status: (G,) uint8 status.

    Example:
        >>> import numpy as np
        >>> from objdet.ops.tide_cpu import tide_classify_np
        >>> gt = np.array([[0.0, 0, 10, 10], [50.0, 50, 10, 10]])
        >>> det = np.array([[0.0, 0, 10, 10], [52.0, 50, 10, 20]])
        >>> s = tide_classify_np(np.array([0, 0]), np.array([0, 1]), np.array([0.9, 0.8]), det,
        ...                      np.array([0, 0]), np.array([0, 1]), gt, np.array([False, False]), 1)
        >>> r = tide_errors_np(np.array([0.9, 0.8]), np.array([0, 1]), s["code"], s["fix_label"],
        ...                    np.array([0, 1]), s["gt_status"])
        >>> r.ap, r.main["loc"], r.special["fn"], r.counts["loc"]
        (50.0, 50.0, 0.0, 1)
    """
    score = np.asarray(det_score, np.float64)
    label = np.asarray(det_label, np.int64)
    code = np.asarray(det_code, np.uint8)
    fix_label = np.asarray(det_fix_label, np.int64)
    gt_label = np.asarray(gt_label, np.int64)
    gt_status = np.asarray(gt_status, np.uint8)
    kind = code & TYPE_MASK
    ignored = (code & IGNORED) != 0
    fixes = (code & FIXES) != 0
    counted = ~ignored  # tidecv's AP data: every detection but the crowd-covered ones
    classes = np.unique(np.concatenate([gt_label, label[counted]]))
    k = classes.shape[0]
    idx = {
        "det": np.searchsorted(classes, label),
        "fix": np.searchsorted(classes, fix_label).clip(max=max(k - 1, 0)),
        "gt": np.searchsorted(classes, gt_label),
    }
    num_gt = np.bincount(idx["gt"], minlength=k)
    num_fn = np.bincount(idx["gt"][gt_status != MATCHED], minlength=k)
    num_miss = np.bincount(idx["gt"][gt_status == MISSED], minlength=k)
    is_tp = kind == TP
    error = ~is_tp

    def fixed(cls: np.ndarray, sc: np.ndarray, tp: np.ndarray, gt: np.ndarray) -> tuple[float, np.ndarray]:
        m, ap, _ = tide_ap_np(cls, sc, tp, gt)
        return m, ap

    base, base_pc = fixed(idx["det"][counted], score[counted], is_tp[counted], num_gt)

    # a fixed data set: the error points first (fixed or as they were), then the true positives
    tp_part = (idx["det"][is_tp], score[is_tp], np.ones(int(is_tp.sum()), np.bool_))

    def with_errors(
        err_cls: np.ndarray, err_score: np.ndarray, err_tp: np.ndarray, gt: np.ndarray
    ) -> tuple[float, np.ndarray]:
        return fixed(
            np.concatenate([err_cls, tp_part[0]]),
            np.concatenate([err_score, tp_part[1]]),
            np.concatenate([err_tp, tp_part[2]]),
            gt,
        )

    as_was = error & counted
    main: dict[str, float] = {}
    main_pc: dict[str, np.ndarray] = {}
    for name in MAIN_ERRORS:
        if name == "miss":
            sel = as_was
            m, pc = with_errors(
                idx["det"][sel], score[sel], np.zeros(int(sel.sum()), np.bool_), num_gt - num_miss
            )
        else:
            this = error & (kind == _CODES[name])
            keep_as_was = as_was & ~this
            promoted = this & fixes if name in ("cls", "loc") else np.zeros_like(this)
            # error order is row order: merge the two kinds of error points by row
            rows = np.flatnonzero(keep_as_was | promoted)
            cls_rows = np.where(promoted[rows], idx["fix"][rows], idx["det"][rows])
            m, pc = with_errors(cls_rows, score[rows], promoted[rows], num_gt)
        main[name] = max(m - base, 0.0)
        main_pc[name] = np.maximum(pc - base_pc, 0.0)
    special: dict[str, float] = {}
    special_pc: dict[str, np.ndarray] = {}
    n_fp = int(as_was.sum())
    m, pc = fixed(
        np.concatenate([idx["det"][as_was], tp_part[0]]),
        np.concatenate([np.zeros(n_fp), np.ones(tp_part[0].shape[0])]),
        np.concatenate([np.zeros(n_fp, np.bool_), tp_part[2]]),
        num_gt,
    )
    special["fp"], special_pc["fp"] = m - base, pc - base_pc
    m, pc = with_errors(idx["det"][as_was], score[as_was], np.zeros(n_fp, np.bool_), num_gt - num_fn)
    special["fn"], special_pc["fn"] = m - base, pc - base_pc

    counts = {name: int(np.count_nonzero(error & (kind == code_))) for name, code_ in _CODES.items()}
    counts["miss"] = int(np.count_nonzero(gt_status == MISSED))
    counts["fixable_gt"] = int(np.count_nonzero(gt_status == FIXABLE))
    return TideResult(
        ap=base,
        main=main,
        special=special,
        classes=classes,
        ap_per_class=base_pc,
        main_per_class=main_pc,
        special_per_class=special_pc,
        counts=counts,
    )


def tide_image_scores_np(
    det_score: np.ndarray,
    det_code: np.ndarray,
    det_count: np.ndarray,
    gt_status: np.ndarray,
    gt_count: np.ndarray,
    conf_threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Per image: its number of errors of each TIDE type, and TP / FP / FN / F1 at a confidence.

    Error counts (``cls``, ``loc``, ``both``, ``dupe``, ``bkg``: detections of that type;
    ``miss``: missed GTs; ``errors``: their sum) count every kept detection, whatever its
    score, crowd-covered ones included, as ``TideResult.counts`` does: summed over the
    images they are those counts. At ``conf_threshold``, among the kept detections scored
    ``>= conf_threshold``: ``tp`` the true positives (IoU >= the foreground threshold with a GT
    of their class, one-to-one; greedy matching by score makes them those of matching only
    these detections), ``fp`` the others but the crowd-covered ones, ``fn`` the non-crowd GTs
    they leave unmatched, ``f1`` = 2 tp / (2 tp + fp + fn) (1.0 for an image with neither a
    GT nor a confident detection: nothing is wrong there).

    Args:
        det_score: (D,) scores of the kept detections, image by image.
        det_code: (D,) uint8 codes (see :mod:`objdet.ops.tide_cpu`).
        det_count: (N,) kept detections of each image. gt_status: (G,) uint8 status of each
            non-crowd GT, image by image. gt_count: (N,) non-crowd GTs of each image.
        conf_threshold: the confidence of ``tp`` / ``fp`` / ``fn`` / ``f1``.

    Returns:
        (N,) int64 arrays ``cls`` ... ``miss``, ``errors``, ``tp``, ``fp``, ``fn`` and float64 ``f1``.

    Example:
        >>> import numpy as np
        >>> from objdet.ops.tide_cpu import TP, BKG, MISSED, MATCHED
        >>> codes, status = np.array([TP, BKG, BKG], np.uint8), np.array([MATCHED, MISSED], np.uint8)
        >>> scores, per_image = np.array([0.9, 0.3, 0.8]), np.array([2, 1])
        >>> s = tide_image_scores_np(scores, codes, per_image, status, np.array([1, 1]))
        >>> s["bkg"].tolist(), s["miss"].tolist(), s["errors"].tolist(), s["f1"].tolist()
        ([1, 1], [0, 1], [1, 2], [1.0, 0.0])
    """
    det_count = np.asarray(det_count, np.int64)
    gt_count = np.asarray(gt_count, np.int64)
    n = det_count.shape[0]
    code = np.asarray(det_code, np.uint8)
    kind = code & TYPE_MASK
    det_img = np.repeat(np.arange(n), det_count)
    gt_img = np.repeat(np.arange(n), gt_count)

    def per_image(rows: np.ndarray, image: np.ndarray) -> np.ndarray:
        return np.bincount(image[rows], minlength=n).astype(np.int64)

    out = {name: per_image(kind == c, det_img) for name, c in _CODES.items()}
    out["miss"] = per_image(np.asarray(gt_status, np.uint8) == MISSED, gt_img)
    out["errors"] = np.sum([out[name] for name in MAIN_ERRORS], axis=0, dtype=np.int64).reshape(n)
    confident = np.asarray(det_score, np.float64) >= conf_threshold
    out["tp"] = per_image(confident & (kind == TP), det_img)
    out["fp"] = per_image(confident & (kind != TP) & ((code & IGNORED) == 0), det_img)
    out["fn"] = gt_count - out["tp"]
    denominator = 2 * out["tp"] + out["fp"] + out["fn"]
    out["f1"] = np.where(denominator > 0, 2 * out["tp"] / np.maximum(denominator, 1), 1.0)
    return out


def tide_label_error_rows_np(
    det_score: np.ndarray, det_code: np.ndarray, min_score: float, max_candidates: int
) -> np.ndarray:
    """Rows of the label-error candidates, most confident first: at most ``max_candidates``.

    A candidate is a kept detection scored ``>= min_score`` that TIDE calls a classification
    error (IoU >= foreground with a GT of another class, and not a localisation error of its
    own class, which TIDE tests first) or a background error (no GT in the image, or IoU <=
    background with every GT), not covered by a crowd GT of its class. Ties in score keep the
    rows' order (images in evaluation order, by score inside).

    Example:
        >>> import numpy as np
        >>> from objdet.ops.tide_cpu import TP, CLS, BKG, LOC
        >>> codes = np.array([TP, CLS, LOC, BKG, BKG], np.uint8)
        >>> tide_label_error_rows_np(np.array([0.9, 0.6, 0.8, 0.7, 0.2]), codes, 0.5, 10).tolist()
        [3, 1]
    """
    code = np.asarray(det_code, np.uint8)
    kind = code & TYPE_MASK
    score = np.asarray(det_score, np.float64)
    rows = np.flatnonzero((score >= min_score) & ((kind == CLS) | (kind == BKG)) & ((code & IGNORED) == 0))
    return rows[np.argsort(-score[rows], kind="stable")][:max_candidates]


def worst_image_order(errors: np.ndarray, f1: np.ndarray, by: str = "errors") -> np.ndarray:
    """Positions of images sorted worst first; ties keep the given order.

    As :meth:`objdet.training.metrics.TIDE.worst_images` sorts them. ``by="errors"``: more
    errors first, then lower F1; ``by="f1"``: lower F1 first, then more errors.

    Example:
        >>> import numpy as np
        >>> worst_image_order(np.array([1, 3, 3, 0]), np.array([0.5, 0.8, 0.2, 0.0])).tolist()
        [2, 1, 0, 3]
        >>> worst_image_order(np.array([1, 3, 3, 0]), np.array([0.5, 0.8, 0.2, 0.0]), by="f1").tolist()
        [3, 2, 0, 1]
    """
    errors = np.asarray(errors, np.int64)
    f1 = np.asarray(f1, np.float64)
    keys = (f1, -errors) if by == "errors" else (-errors, f1)  # np.lexsort: the last key is the first
    return np.lexsort(keys).astype(np.int64)
