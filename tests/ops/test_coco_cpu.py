"""The compiled CPU engine against the torch kernels (CUDA's path), on CPU.

Both engines are also checked against pycocotools by the parity tests (which run once per
engine); here they are compared directly on generated cases full of ties: equal scores, equal
IoUs (copied boxes), crowd GTs, areas on the range edges, more detections than ``max_det``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.functional.coco import (
    AREA_RANGES,
    coco_accumulate_torch,
    default_iou_thresholds,
    default_rec_thresholds,
)
from objdet.functional.coco_cpu import coco_accumulate_np
from objdet.ops.boxes import box_convert
from objdet.ops.coco import coco_match
from objdet.ops.coco_cpu import (
    coco_match_cpu,
    gt_class_counts,
    gt_image_class_counts,
    stable_argsort,
    stable_argsort_descending,
    xywh_from,
)

THRESHOLDS = np.array(default_iou_thresholds())
RANGES = np.array(AREA_RANGES)
#: threshold sets of the matching test: COCO's 40 lanes, one lane per range, 64 lanes (the
#: top bit of the word), 68 (past one word: matched lane by lane), thresholds out of order
THRESHOLD_SETS = {
    "coco": THRESHOLDS,
    "one": np.array([0.5]),
    "sixteen": np.linspace(0.2, 0.95, 16),
    "seventeen": np.linspace(0.1, 1.0, 17),
    "shuffled": THRESHOLDS[[3, 0, 9, 5, 1, 7, 2, 8, 4, 6]],
}


def _case(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_img, n_cls = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    n_det, n_gt = int(rng.integers(0, 70)), int(rng.integers(0, 30))
    gt = np.concatenate([rng.integers(0, 60, (n_gt, 2)), rng.choice([8, 16, 32, 40, 96], (n_gt, 2))], 1)
    gt = gt.astype(np.float64)
    det = np.concatenate([rng.integers(0, 60, (n_det, 2)), rng.choice([8, 16, 32, 40], (n_det, 2))], 1)
    det = det.astype(np.float64)
    gt_img = np.sort(rng.integers(0, n_img, n_gt))
    det_img = rng.integers(0, n_img, n_det)  # unsorted on purpose: the kernel must not rely on order
    if n_gt and n_det:  # copies of GTs: IoU exactly 1 and equal IoUs with several detections
        copy = rng.random(n_det) < 0.4
        src = rng.integers(0, n_gt, n_det)
        det[copy] = gt[src[copy]]
        det_img[copy] = gt_img[src[copy]]
    return {
        "det_img": det_img,
        "det_label": rng.integers(0, n_cls, n_det),
        "det_score": rng.integers(0, 4, n_det) / 3.0,  # many ties
        "det_xywh": det,
        "gt_img": gt_img,
        "gt_label": rng.integers(0, n_cls, n_gt),
        "gt_xywh": gt,
        "gt_crowd": rng.random(n_gt) < 0.15,
        "gt_area": gt[:, 2] * gt[:, 3],
    }


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    max_det=st.sampled_from([1, 3, 10, 100]),
    ious=st.booleans(),
    spread=st.booleans(),
    thresholds=st.sampled_from(sorted(THRESHOLD_SETS)),
)
def test_matching_equals_the_torch_kernel(
    seed: int, max_det: int, ious: bool, spread: bool, thresholds: str
) -> None:
    """``spread``: ids far apart (too many (image, label) buckets to count in: the sorting path).

    ``thresholds``: up to 64 lanes every threshold is matched at once in one int64, beyond lane
    by lane; both against the torch kernel.
    """
    thr = THRESHOLD_SETS[thresholds]
    c = _case(seed)
    if spread:
        for key in ("det_img", "gt_img"):
            c[key] = c[key] * 10**8 + 7  # image indices stay below 2**31 (both kernels key on them)
        for key in ("det_label", "gt_label"):
            c[key] = c[key] * 10**8 - 2 * 10**8  # negative labels too: the kernel takes any int32
    t = {k: torch.from_numpy(v) for k, v in c.items()}
    ref = coco_match(
        t["det_img"], t["det_label"], t["det_score"], t["det_xywh"], t["gt_img"], t["gt_label"],
        t["gt_xywh"], t["gt_crowd"], t["gt_area"], torch.from_numpy(thr), torch.from_numpy(RANGES),
        max_det, return_ious=ious,
    )  # fmt: skip
    out = coco_match_cpu(
        c["det_img"], c["det_label"], c["det_score"], c["gt_img"], c["gt_label"], c["gt_crowd"],
        c["gt_area"], c["det_xywh"][:, 2] * c["det_xywh"][:, 3], thr, RANGES, max_det,
        det_xywh=c["det_xywh"], gt_xywh=c["gt_xywh"], return_ious=ious,
    )  # fmt: skip
    np.testing.assert_array_equal(out["keep"], ref.keep.numpy())
    np.testing.assert_array_equal(out["rank"], ref.rank.numpy())
    np.testing.assert_array_equal(out["tp"], ref.tp.numpy())
    np.testing.assert_array_equal(out["ignored"], ref.ignored.numpy())
    if ious:
        assert ref.iou_groups is not None and ref.iou_values is not None
        np.testing.assert_array_equal(out["iou_groups"], ref.iou_groups.numpy())
        np.testing.assert_array_equal(out["iou_values"], ref.iou_values.numpy())


def test_pair_iou_callback_gives_the_same_flags_as_boxes() -> None:
    """The masks' path (IoU of candidate pairs from a callback) equals the boxes' path."""
    c = _case(7)
    t = {k: torch.from_numpy(v) for k, v in c.items()}
    det_area = c["det_xywh"][:, 2] * c["det_xywh"][:, 3]
    common = (c["det_img"], c["det_label"], c["det_score"], c["gt_img"], c["gt_label"], c["gt_crowd"])
    boxes = coco_match_cpu(
        *common, c["gt_area"], det_area, THRESHOLDS, RANGES, 100, det_xywh=c["det_xywh"], gt_xywh=c["gt_xywh"]
    )

    def pair_iou(pair_det: np.ndarray, pair_gt: np.ndarray) -> np.ndarray:
        from objdet.ops.coco import coco_pair_iou

        d, g = torch.from_numpy(pair_det), torch.from_numpy(pair_gt)
        return coco_pair_iou(t["det_xywh"][d], t["gt_xywh"][g], t["gt_crowd"][g]).numpy()

    callback = coco_match_cpu(*common, c["gt_area"], det_area, THRESHOLDS, RANGES, 100, pair_iou=pair_iou)
    for key in ("keep", "rank", "tp", "ignored"):
        np.testing.assert_array_equal(callback[key], boxes[key])


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    full=st.booleans(),
    n_cls=st.integers(1, 5),
    # unsorted and without 100 too: with full=False a recall-only maxDet larger than every full
    # one takes the full pass
    max_dets=st.sampled_from([[1, 10, 100], [2, 100, 50], [7, 150, 20], [3, 7], [100]]),
    offset=st.sampled_from([0, -3, 10**12]),  # class ids: small (a lookup table), negative or large (sorted)
)
def test_accumulate_equals_the_torch_code(
    seed: int, full: bool, n_cls: int, max_dets: list[int], offset: int
) -> None:
    rng = np.random.default_rng(seed)
    n, n_area, n_thr = int(rng.integers(0, 400)), 4, 10
    tp = rng.integers(0, 256, (n, 5)).astype(np.uint8) & rng.integers(0, 256, (n, 5)).astype(np.uint8)
    ignored = (
        rng.integers(0, 256, (n, 5)).astype(np.uint8) & ~tp & rng.integers(0, 256, (n, 5)).astype(np.uint8)
    )
    args = (
        rng.integers(0, 6, n) / 5.0,  # scores with ties
        rng.integers(0, n_cls, n) + offset,
        rng.integers(0, 160, n),  # ranks around every maxDet
        tp,
        ignored,
        rng.integers(0, n_cls + 1, int(rng.integers(0, 8))) + offset,  # GT rows' classes (some without dets)
    )
    gt_counts = rng.integers(0, 30, (args[-1].size, n_area))
    rec = np.array(default_rec_thresholds())
    ref = coco_accumulate_torch(
        *(torch.from_numpy(x) for x in (*args, gt_counts)), n_thr, torch.from_numpy(rec), max_dets, full
    )
    classes, precision, recall, scores = coco_accumulate_np(*args, gt_counts, n_thr, rec, max_dets, full)
    np.testing.assert_array_equal(classes, ref.classes.numpy())
    np.testing.assert_allclose(precision, ref.precision.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(recall, ref.recall.numpy())
    np.testing.assert_array_equal(scores, ref.scores.numpy())


@pytest.mark.parametrize("box_format", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_conversion_rounds_like_torch_in_the_input_precision(box_format: str, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(3)
    boxes = torch.from_numpy(rng.uniform(0, 1000, (500, 4)) * rng.choice([1e-3, 1, 1e3], (500, 1))).to(dtype)
    boxes[:, 2:] += boxes[:, :2] if box_format == "xyxy" else 0
    expected = (
        box_convert(box_convert(boxes, box_format, "xyxy"), "xyxy", "xywh") if box_format != "xywh" else boxes
    )
    codes = {"xyxy": 0, "xywh": 1, "cxcywh": 2}
    ours = xywh_from(boxes.to(torch.float64).numpy(), codes[box_format], dtype == torch.float32)
    np.testing.assert_array_equal(ours, expected.to(torch.float64).numpy())


def test_gt_class_counts_skip_crowds_and_use_inclusive_ranges() -> None:
    labels = np.array([5, 2, 5, 2, 9])
    crowd = np.array([False, False, True, False, False])
    area = np.array([32.0**2, 10.0, 50.0, 96.0**2, 1e11])
    classes, counts = gt_class_counts(labels, crowd, area, RANGES)
    assert classes.tolist() == [2, 5, 9]
    # rows: class 2 (areas 10 and 96^2), class 5 (32^2; the crowd is left out), class 9 (past every range)
    assert counts.tolist() == [[2, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]]


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_images=st.integers(1, 6), many=st.booleans())
def test_gt_image_class_counts_equal_a_count_per_image_and_class(
    seed: int, n_images: int, many: bool
) -> None:
    # `many`: images with more GTs than the insertion sort takes
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300 if many else 20))
    img = np.sort(rng.integers(0, n_images, n))
    labels = rng.integers(-3, 6 if not many else 60, n)
    crowd = rng.random(n) < 0.2
    area = rng.choice([10.0, 32.0**2, 50.0 * 50.0, 96.0**2, 1e11], n)
    classes, counts, per_image = gt_image_class_counts(img, labels, crowd, area, RANGES, n_images)
    expected_rows, expected_counts = [], []
    for i in range(n_images):
        for c in sorted(set(labels[img == i].tolist())):
            sel = (img == i) & (labels == c) & ~crowd
            expected_rows.append((i, c))
            expected_counts.append([int(((area[sel] >= lo) & (area[sel] <= hi)).sum()) for lo, hi in RANGES])
    assert classes.tolist() == [c for _, c in expected_rows]
    assert counts.reshape(-1, len(RANGES)).tolist() == expected_counts
    assert per_image.tolist() == [sum(1 for i, _ in expected_rows if i == k) for k in range(n_images)]


def test_extreme_ids_take_the_sorting_path_without_overflow() -> None:
    """Image and label spans whose product overflows int64 must not be counted in buckets."""
    c = _case(0)  # two images or more, two labels or more
    top = max(c["det_img"].max(), c["gt_img"].max())
    for key in ("det_img", "gt_img"):
        c[key] = np.where(c[key] == top, 2**31 - 1, c[key])  # image indices 0 .. 2**31 - 1
    for key in ("det_label", "gt_label"):
        c[key] = np.where(c[key] == 0, -(2**31), 2**31 - c[key])  # both ends of int32
    ids = np.concatenate([c["det_img"], c["gt_img"]])
    labels = np.concatenate([c["det_label"], c["gt_label"]])
    # 2**31 images x 2**32 labels: the product is 2**63, one past int64
    assert ids.min() == 0 and ids.max() == 2**31 - 1
    assert labels.min() == -(2**31) and labels.max() == 2**31 - 1
    t = {k: torch.from_numpy(v) for k, v in c.items()}
    ref = coco_match(
        t["det_img"], t["det_label"], t["det_score"], t["det_xywh"], t["gt_img"], t["gt_label"],
        t["gt_xywh"], t["gt_crowd"], t["gt_area"], torch.from_numpy(THRESHOLDS), torch.from_numpy(RANGES),
        100,
    )  # fmt: skip
    out = coco_match_cpu(
        c["det_img"], c["det_label"], c["det_score"], c["gt_img"], c["gt_label"], c["gt_crowd"],
        c["gt_area"], c["det_xywh"][:, 2] * c["det_xywh"][:, 3], THRESHOLDS, RANGES, 100,
        det_xywh=c["det_xywh"], gt_xywh=c["gt_xywh"],
    )  # fmt: skip
    for key in ("keep", "rank", "tp", "ignored"):
        np.testing.assert_array_equal(out[key], getattr(ref, key).numpy())


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(-5, 3000), max_size=40),
    gt_labels=st.lists(st.integers(-5, 3000), max_size=40),
    big=st.booleans(),
)
def test_class_index_is_unique_and_searchsorted(labels: list[int], gt_labels: list[int], big: bool) -> None:
    from objdet.functional.coco_cpu import class_index

    dets, gts = np.array(labels, np.int64), np.array(gt_labels, np.int64)
    if big:  # ids far beyond the lookup table's reach
        dets, gts = dets * 10**12, gts * 10**12
    classes, cls, gt_cls = class_index(dets, gts)
    expected = np.unique(np.concatenate([dets, gts]))
    np.testing.assert_array_equal(classes, expected)
    np.testing.assert_array_equal(classes[cls], dets)
    np.testing.assert_array_equal(classes[gt_cls], gts)


def test_image_counts_refuse_images_outside_n_images() -> None:
    args = (np.array([0, 3]), np.zeros(2, np.int64), np.array([0.9, 0.8]), np.zeros(1, np.int64))
    gts = (np.zeros(1, np.int64), np.zeros(1, bool), np.array([100.0]), np.array([100.0, 100.0]))
    boxes = {"det_xywh": np.ones((2, 4)), "gt_xywh": np.ones((1, 4))}
    out = coco_match_cpu(*args, *gts, THRESHOLDS, RANGES, 100, **boxes, n_images=4)
    assert out["image_dets"].tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="n_images"):
        coco_match_cpu(*args, *gts, THRESHOLDS, RANGES, 100, **boxes, n_images=2)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-3, 3), max_size=300), scale=st.sampled_from([1.0, 0.5, -1e300]))
def test_stable_argsorts_equal_numpy_stable_sorts_ties_included(values: list[int], scale: float) -> None:
    key = np.asarray(values, np.int64)
    np.testing.assert_array_equal(stable_argsort(key), np.argsort(key, kind="stable"))
    score = key * scale  # few distinct values: many ties, kept in input order
    np.testing.assert_array_equal(stable_argsort_descending(score), np.argsort(-score, kind="stable"))
    with_nan = np.where(key == 0, np.nan, score)  # NaN last, in input order, as numpy puts them
    np.testing.assert_array_equal(stable_argsort_descending(with_nan), np.argsort(-with_nan, kind="stable"))
