"""The TIDE metric: against the plain reference (COCO files, generated data), properties, ids, state size."""

from __future__ import annotations

import gzip
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.functional.tide import MAIN_ERRORS, SPECIAL_ERRORS
from objdet.io import load_coco_dt, load_coco_gt
from objdet.training.metrics import TIDE
from tests.functional.test_tide import TIDECV_COCO100, max_diff
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.coco_segm_reference import coco_segm_json, make_segm_dataset, to_torch_segm
from tests.helpers.cocoapi_files import BBOX, FIXTURES, GT
from tests.helpers.tide_reference import reference_tide, to_coco

TOL = 1e-9


def _numbers(metric: TIDE) -> dict:
    r = metric.result()
    return {"ap": r.ap, "main": r.main, "special": r.special, "counts": {k: r.counts[k] for k in MAIN_ERRORS}}


def _load(name: str) -> object:
    with gzip.open(FIXTURES / f"{name}.gz", "rb") as f:
        return json.load(f)


def test_coco100_files_equal_tidecv() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = load_coco_gt(_load(GT))  # type: ignore[arg-type]
        preds = load_coco_dt(_load(BBOX), gt)  # type: ignore[arg-type]
    metric = TIDE(box_format="xywh")
    for a in range(0, len(preds), 16):  # several updates
        metric.update(preds[a : a + 16], gt.target[a : a + 16])
    got = _numbers(metric)
    assert max_diff(got, TIDECV_COCO100) < TOL
    assert got["counts"] == TIDECV_COCO100["counts"]
    out = metric.compute()
    assert out["main_cls"].dtype == torch.float32
    assert out["main_cls"].item() == pytest.approx(TIDECV_COCO100["main"]["cls"], rel=1e-6)


@pytest.mark.parametrize("box_format", ["xyxy", "xywh", "cxcywh"])
def test_generated_equal_reference(box_format: str) -> None:
    for seed in range(12):
        images = make_dataset(seed, n_images=9)
        preds, target = to_torch(images, box_format)
        metric = TIDE(box_format=box_format)
        metric.update(preds[:4], target[:4])
        metric.update(preds[4:], target[4:])
        ref = reference_tide(*to_coco(images))
        got = _numbers(metric)
        assert max_diff(got, ref) < TOL, seed
        assert got["counts"] == ref["counts"], seed


def test_masks_equal_reference() -> None:
    """iou_type="segm": mask IoU from the pixels (polygon and crowd GTs, empty masks, > 100 dets)."""
    seen = dict.fromkeys(MAIN_ERRORS, 0)
    for seed in range(8):
        images = make_segm_dataset(seed, n_images=8)
        preds, target = to_torch_segm(images)
        metric = TIDE(iou_type="segm", class_metrics=True)
        metric.update(preds[:3], target[:3])
        metric.update(preds[3:], target[3:])
        ref = reference_tide(*coco_segm_json(images), iou_type="segm")
        got = _numbers(metric)
        assert max_diff(got, ref) < TOL, seed
        assert got["counts"] == ref["counts"], seed
        for k in MAIN_ERRORS:
            seen[k] += got["counts"][k]
    assert all(n > 0 for n in seen.values()), seen  # every error type occurred
    # the boxes of the same objects give other numbers: the masks are what is read
    images = make_segm_dataset(0, n_images=8)
    preds, target = to_torch_segm(images, with_boxes=True)
    by_box, by_mask = TIDE(box_format="xywh"), TIDE(iou_type="segm")
    by_box.update(preds, target)
    by_mask.update(preds, target)
    assert by_box.result().main != by_mask.result().main


def test_masks_bad_inputs() -> None:
    with pytest.raises(ValueError, match="iou_type"):
        TIDE(iou_type="keypoints")  # type: ignore[arg-type]
    preds, target = to_torch(make_dataset(1, n_images=2), "xyxy")  # boxes only
    with pytest.raises(ValueError, match="masks"):
        TIDE(iou_type="segm").update(preds, target)


def test_thresholds_and_max_dets_follow_the_reference() -> None:
    images = make_dataset(5, n_images=10)
    preds, target = to_torch(images, "xywh")
    for pos, bg in [(0.75, 0.25), (0.3, 0.0)]:
        metric = TIDE(pos_threshold=pos, bg_threshold=bg, box_format="xywh")
        metric.update(preds, target)
        assert max_diff(_numbers(metric), reference_tide(*to_coco(images), pos, bg)) < TOL
    metric = TIDE(max_detection_threshold=5, box_format="xywh")
    metric.update(preds, target)
    assert max_diff(_numbers(metric), reference_tide(*to_coco(images), max_dets=5)) < TOL


def test_image_ids_order_and_copies() -> None:
    """With ids: images by id, repeated ids once (as a DistributedSampler pads), any update order."""
    images = make_dataset(8, n_images=10)
    ids = [31, 4, 17, 9, 2, 40, 11, 23, 5, 8]
    preds, target = to_torch(images, "xywh")
    for t, i in zip(target, ids, strict=True):
        t["image_id"] = torch.tensor(i)
    by_id = sorted(range(10), key=lambda k: ids[k])
    ref = reference_tide(*to_coco([images[k] for k in by_id], [ids[k] for k in by_id]))
    metric = TIDE(box_format="xywh")
    order = [7, 3, 0, 9, 1, 5, 2, 8, 4, 6, 3, 0]  # shuffled, with two copies
    for k in range(0, len(order), 5):
        metric.update([preds[j] for j in order[k : k + 5]], [target[j] for j in order[k : k + 5]])
    assert max_diff(_numbers(metric), ref) < TOL


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_class_metrics() -> None:
    images = make_dataset(3, n_images=8)
    preds, target = to_torch(images, "xywh")
    metric = TIDE(box_format="xywh", class_metrics=True)
    metric.update(preds, target)
    out = metric.compute()
    k = out["classes"].numel()
    assert k > 1
    for name in [*(f"main_{e}" for e in MAIN_ERRORS), *(f"special_{e}" for e in SPECIAL_ERRORS)]:
        assert out[f"{name}_per_class"].shape == (k,)
        assert torch.isfinite(out[f"{name}_per_class"]).all()
    assert (out["main_cls_per_class"] >= 0).all()
    assert out["ap_per_class"].shape == (k,)
    assert not any(key.endswith("_per_class") for key in TIDE(box_format="xywh").compute())


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_empty_metric_is_zero_and_finite() -> None:
    out = TIDE().compute()
    assert all(v.item() == 0.0 for v in out.values())
    metric = TIDE()
    empty = dict(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long))
    metric.update([empty], [dict(boxes=torch.tensor([[0.0, 0, 5, 5]]), labels=torch.tensor([3]))])
    out = metric.compute()
    assert out["ap"].item() == 0.0 and out["main_miss"].item() == 0.0  # the class vanishes with its GT


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="pos_threshold"):
        TIDE(pos_threshold=0.0)
    with pytest.raises(ValueError, match="bg_threshold"):
        TIDE(bg_threshold=0.6)
    with pytest.raises(TypeError, match="max_detection_threshold"):
        TIDE(max_detection_threshold=0)
    with pytest.raises(ValueError, match="box_format"):
        TIDE(box_format="yxyx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="class_metrics"):
        TIDE(class_metrics=1)  # type: ignore[arg-type]
    metric = TIDE()
    with pytest.raises(ValueError, match="scores"):
        metric.update([dict(boxes=torch.zeros(1, 4), labels=torch.zeros(1, dtype=torch.long))],
                      [dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))])  # fmt: skip


def test_state_bytes_per_detection() -> None:
    images = make_dataset(11, n_images=20, crowded_image=False)
    preds, target = to_torch(images, "xywh")
    metric = TIDE(box_format="xywh")
    metric.update(preds, target)
    names = ("det_scores", "det_labels", "det_codes", "det_fix_labels", "det_index")
    det = sum(t.numel() * t.element_size() for name in names for t in getattr(metric, name))
    gt = sum(
        t.numel() * t.element_size() for name in ("gt_labels", "gt_status") for t in getattr(metric, name)
    )
    n_det = sum(int(p["scores"].numel()) for p in preds)
    n_gt = sum(int((t["iscrowd"] == 0).sum()) for t in target)
    assert det == 21 * n_det  # score 8 + class 4 + code 1 + GT class of a cls error 4 + index in image 4
    assert gt == 5 * n_gt  # class 4 + status 1
    assert sum(t.numel() * t.element_size() for t in metric.image_records) == 32 * len(images)


def test_state_moves_without_recast() -> None:
    metric = TIDE(box_format="xywh")
    preds, target = to_torch(make_dataset(2, n_images=4), "xywh")
    metric.update(preds, target)
    before = metric.result().main
    metric.set_dtype(torch.float16)
    assert metric.det_codes[0].dtype == torch.uint8 and metric.det_scores[0].dtype == torch.float64
    assert metric.result().main == before


# ---------------------------------------------------------------------------------------- properties
_box = st.tuples(
    st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)
)  # positive xywh on a small canvas: overlaps are common
_image = st.lists(st.tuples(_box, st.integers(0, 2)), min_size=0, max_size=6)


def _perfect(images: list, scores: list) -> tuple[list[dict], list[dict]]:
    preds, target = [], []
    for gts, s in zip(images, scores, strict=True):
        boxes = torch.tensor([list(b) for b, _ in gts], dtype=torch.float64).reshape(-1, 4)
        labels = torch.tensor([c for _, c in gts], dtype=torch.long)
        target.append(dict(boxes=boxes, labels=labels))
        preds.append(dict(boxes=boxes.clone(), labels=labels.clone(), scores=torch.tensor(s[: len(gts)])))
    return preds, target


@settings(max_examples=40, deadline=None)
@given(
    st.lists(_image, min_size=1, max_size=5),
    st.lists(st.lists(st.floats(0.01, 1.0), min_size=6, max_size=6), min_size=5, max_size=5),
)
def test_perfect_predictions_have_no_error(images: list, scores: list) -> None:
    preds, target = _perfect(images, scores[: len(images)])
    metric = TIDE(box_format="xywh")
    metric.update(preds, target)
    out = metric.result()
    if any(len(g) for g in images):
        assert out.ap == pytest.approx(100.0, abs=1e-9)
    assert all(v == 0.0 for v in out.main.values())
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in out.special.values())


def _random_inputs(data: st.DataObject, n: int) -> tuple[list[dict], list[dict]]:
    preds, target = [], []
    for _ in range(n):
        gts = data.draw(_image)
        dts = data.draw(
            st.lists(st.tuples(_box, st.integers(0, 2), st.sampled_from([0.2, 0.5, 0.9])), max_size=8)
        )
        target.append(
            dict(
                boxes=torch.tensor([list(b) for b, _ in gts], dtype=torch.float64).reshape(-1, 4),
                labels=torch.tensor([c for _, c in gts], dtype=torch.long),
                iscrowd=torch.tensor(data.draw(st.lists(st.sampled_from([0, 0, 0, 1]), min_size=len(gts),
                                                        max_size=len(gts))), dtype=torch.long),
            )
        )  # fmt: skip
        preds.append(
            dict(
                boxes=torch.tensor([list(b) for b, _, _ in dts], dtype=torch.float64).reshape(-1, 4),
                labels=torch.tensor([c for _, c, _ in dts], dtype=torch.long),
                scores=torch.tensor([s for _, _, s in dts], dtype=torch.float64),
            )
        )
    return preds, target


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_finite_and_split_and_permutation_invariant(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 6))
    preds, target = _random_inputs(data, n)
    one = TIDE(box_format="xywh", class_metrics=True)
    one.update(preds, target)
    r = one.result()
    values = [r.ap, *r.main.values(), *r.special.values()]
    assert all(math.isfinite(v) for v in values)
    assert all(v >= 0 for v in r.main.values())
    for arrays in (r.main_per_class, r.special_per_class):
        assert all(np.isfinite(a).all() for a in arrays.values())
    # any split into updates: the same numbers, bit for bit
    cut = data.draw(st.integers(0, n))
    split = TIDE(box_format="xywh")
    split.update(preds[:cut], target[:cut])
    split.update(preds[cut:], target[cut:])
    s = split.result()
    assert (s.ap, s.main, s.special) == (r.ap, r.main, r.special)
    # with ids, any image order gives the numbers of the id order
    perm = data.draw(st.permutations(list(range(n))))
    for i, t in enumerate(target):
        t["image_id"] = torch.tensor(i)
    a, b = TIDE(box_format="xywh"), TIDE(box_format="xywh")
    a.update(preds, target)
    b.update([preds[i] for i in perm], [target[i] for i in perm])
    ra, rb = a.result(), b.result()
    assert (ra.ap, ra.main, ra.special) == (rb.ap, rb.main, rb.special) == (r.ap, r.main, r.special)
