"""The compiled confusion-matrix matching equals the torch kernel (agnostic) and the spec (class_first)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.functional.confusion import confusion_precision_recall_f1, detection_confusion_matrix
from objdet.ops.confusion import greedy_match
from objdet.ops.confusion_cpu import (
    confusion_precision_recall_f1_np,
    detection_confusion_matrix_np,
    greedy_match_np,
)

# boxes on a coarse grid and scores from a few values: many exact ties in IoU and in score
_box = st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 5), st.integers(0, 5)).map(
    lambda b: [float(b[0]), float(b[1]), float(b[2]), float(b[3])]
)


@st.composite
def _case(draw: st.DrawFn) -> dict:
    n_img = draw(st.integers(1, 3))
    n_cls = draw(st.integers(1, 3))
    n_det = draw(st.integers(0, 12))
    n_gt = draw(st.integers(0, 10))
    return {
        "det_img": np.array(
            draw(st.lists(st.integers(0, n_img - 1), min_size=n_det, max_size=n_det)), np.int64
        ),
        "det_label": np.array(
            draw(st.lists(st.integers(0, n_cls - 1), min_size=n_det, max_size=n_det)), np.int64
        ),
        "det_score": np.array(
            draw(st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.9]), min_size=n_det, max_size=n_det))
        ),
        "det_xywh": np.array(draw(st.lists(_box, min_size=n_det, max_size=n_det)), np.float64).reshape(-1, 4),
        "gt_img": np.array(draw(st.lists(st.integers(0, n_img - 1), min_size=n_gt, max_size=n_gt)), np.int64),
        "gt_label": np.array(
            draw(st.lists(st.integers(0, n_cls - 1), min_size=n_gt, max_size=n_gt)), np.int64
        ),
        "gt_xywh": np.array(draw(st.lists(_box, min_size=n_gt, max_size=n_gt)), np.float64).reshape(-1, 4),
        "gt_crowd": np.array(draw(st.lists(st.booleans(), min_size=n_gt, max_size=n_gt)), bool),
        "n_cls": n_cls,
        "iou": draw(st.sampled_from([0.1, 1 / 3, 0.5, 1.0])),
        "conf": draw(st.sampled_from([-np.inf, 0.3, 0.5])),
    }


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@settings(max_examples=300, deadline=None)
@given(_case())
def test_agnostic_equals_the_torch_kernel(c: dict) -> None:
    ours = greedy_match_np(
        c["det_img"], c["det_score"], c["det_xywh"], c["gt_img"], c["gt_xywh"], c["gt_crowd"], c["iou"]
    )
    ref = greedy_match(
        _t(c["det_img"]), _t(c["det_score"]), _t(c["det_xywh"]), _t(c["gt_img"]), _t(c["gt_xywh"]),
        _t(c["gt_crowd"]), c["iou"],
    )  # fmt: skip
    assert ours[0].tolist() == ref.det_to_gt.tolist()
    assert ours[1].tolist() == ref.gt_to_det.tolist()
    assert ours[2].tolist() == ref.crowd_covered.tolist()
    args = [c[k] for k in ("det_img", "det_label", "det_score", "det_xywh", "gt_img", "gt_label", "gt_xywh")]
    matrix = detection_confusion_matrix_np(
        *args, c["gt_crowd"], c["n_cls"], iou_threshold=c["iou"], conf_threshold=c["conf"]
    )
    expected = detection_confusion_matrix(
        *map(_t, args), _t(c["gt_crowd"]), c["n_cls"], iou_threshold=c["iou"], conf_threshold=c["conf"]
    )
    assert matrix.tolist() == expected.tolist()
    pr, pr_ref = confusion_precision_recall_f1_np(matrix), confusion_precision_recall_f1(expected)
    for key in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(pr[key], pr_ref[key].numpy())


def _spec_class_first(c: dict) -> tuple[list[int], list[int], list[bool]]:
    """DESIGN.md's class_first rule, written out pair by pair in plain Python."""
    n_det, n_gt = len(c["det_img"]), len(c["gt_img"])

    def iou(d: int, g: int) -> float:
        dx, dy, dw, dh = c["det_xywh"][d].tolist()
        gx, gy, gw, gh = c["gt_xywh"][g].tolist()
        w = min(dx + dw, gx + gw) - max(dx, gx)
        h = min(dy + dh, gy + gh) - max(dy, gy)
        if not (w > 0 and h > 0):
            return 0.0
        union = dw * dh if c["gt_crowd"][g] else dw * dh + gw * gh - w * h
        return w * h / union

    pairs = [
        (-iou(d, g), -float(c["det_score"][d]), d, g)
        for d in range(n_det)
        for g in range(n_gt)
        if c["det_img"][d] == c["gt_img"][g] and not c["gt_crowd"][g] and iou(d, g) >= c["iou"]
    ]
    pairs.sort()
    d2g, g2d = [-1] * n_det, [-1] * n_gt
    for same in (True, False):
        for _, _, d, g in pairs:
            if d2g[d] < 0 and g2d[g] < 0 and (not same or c["det_label"][d] == c["gt_label"][g]):
                d2g[d], g2d[g] = g, d
    covered = [
        d2g[d] < 0
        and any(
            c["gt_crowd"][g] and c["gt_img"][g] == c["det_img"][d] and iou(d, g) >= c["iou"]
            for g in range(n_gt)
        )
        for d in range(n_det)
    ]
    return d2g, g2d, covered


@settings(max_examples=300, deadline=None)
@given(_case())
def test_class_first_follows_the_spec(c: dict) -> None:
    ours = greedy_match_np(
        c["det_img"], c["det_score"], c["det_xywh"], c["gt_img"], c["gt_xywh"], c["gt_crowd"], c["iou"],
        c["det_label"], c["gt_label"], matching="class_first",
    )  # fmt: skip
    d2g, g2d, covered = _spec_class_first(c)
    assert ours[0].tolist() == d2g and ours[1].tolist() == g2d and ours[2].tolist() == covered
    # same-class matches come first: never fewer diagonal counts than the agnostic matching
    args = [c[k] for k in ("det_img", "det_label", "det_score", "det_xywh", "gt_img", "gt_label", "gt_xywh")]
    kw = {"iou_threshold": c["iou"], "conf_threshold": -np.inf}
    first = detection_confusion_matrix_np(*args, c["gt_crowd"], c["n_cls"], matching="class_first", **kw)
    agnostic = detection_confusion_matrix_np(*args, c["gt_crowd"], c["n_cls"], **kw)
    assert first[:-1].sum(1).tolist() == agnostic[:-1].sum(1).tolist()  # rows: the non-crowd GTs


def test_bad_matching_name() -> None:
    with pytest.raises(ValueError, match="matching"):
        empty, boxes = np.zeros(0), np.zeros((0, 4))
        greedy_match_np(empty, empty, boxes, empty, boxes, empty, 0.5, matching="nearest")
