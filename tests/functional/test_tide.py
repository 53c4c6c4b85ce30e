"""TIDE's compiled kernel and dAP against the plain reference (always) and tidecv (when importable)."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from objdet.functional.tide import MAIN_ERRORS, tide_ap_np, tide_errors_np
from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays
from objdet.ops.tide_cpu import BKG, CLS, DUPE, FIXES, IGNORED, LOC, MISSED, TP, tide_classify_np
from tests.helpers.coco_reference import make_dataset
from tests.helpers.coco_segm_reference import coco_segm_json, make_segm_dataset
from tests.helpers.cocoapi_files import BBOX, FIXTURES, GT, SEGM
from tests.helpers.tide_reference import reference_tide, tidecv_available, tidecv_tide, to_coco

TOL = 1e-9


def objdet_tide(gt: dict, dt: list[dict], pos: float = 0.5, bg: float = 0.1) -> dict:
    """objdet's numbers on COCO dicts, through the command line's arrays (no torch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = read_gt_arrays(gt)
        d = read_dt_arrays(dt, g)
    assert g.boxes is not None
    s = tide_classify_np(
        d.img,
        d.label,
        d.score,
        d.boxes,
        g.img,
        g.label,
        g.boxes,
        g.crowd.astype(bool),
        len(g.image_ids),
        pos,
        bg,
    )
    k = s["keep"]
    r = tide_errors_np(
        d.score[k], d.label[k], s["code"], s["fix_label"], g.label[s["gt_keep"]], s["gt_status"]
    )
    counts = {name: r.counts[name] for name in MAIN_ERRORS}
    return {"ap": r.ap, "main": r.main, "special": r.special, "counts": counts}


def max_diff(a: dict, b: dict) -> float:
    out = abs(a["ap"] - b["ap"])
    for part in ("main", "special"):
        assert set(a[part]) == set(b[part])
        out = max(out, *(abs(a[part][k] - b[part][k]) for k in a[part]))
    return out


def _load(name: str) -> object:
    with gzip.open(FIXTURES / f"{name}.gz", "rb") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def coco100() -> tuple[dict, list[dict]]:
    gt, dt = _load(GT), _load(BBOX)
    assert isinstance(gt, dict) and isinstance(dt, list)
    return gt, dt


# tidecv 1.0.1 on instances_val2014_100 + fakebbox100 (images in file order), printed with repr:
# the reference and objdet must find these (tests/helpers/tide_reference.py reruns tidecv)
TIDECV_COCO100 = {
    "ap": 64.20498881733425,
    "main": {
        "cls": 22.2460397441685,
        "loc": 0.22789102370710168,
        "both": 0.0,
        "dupe": 0.018972971237033676,
        "bkg": 0.0,
        "miss": 8.523573787723365,
    },
    "special": {"fp": 6.821587524510463, "fn": 17.684978535217184},
    "counts": {"cls": 83, "loc": 1, "both": 0, "dupe": 1, "bkg": 0, "miss": 97},
}


def test_coco100_reference_and_objdet_equal_tidecv_numbers(coco100: tuple[dict, list[dict]]) -> None:
    gt, dt = coco100
    ref, ours = reference_tide(gt, dt), objdet_tide(gt, dt)
    assert max_diff(ref, TIDECV_COCO100) < TOL
    assert max_diff(ours, TIDECV_COCO100) < TOL
    assert ref["counts"] == ours["counts"] == TIDECV_COCO100["counts"]


@pytest.mark.parametrize("pos, bg", [(0.5, 0.1), (0.75, 0.25), (0.3, 0.0)])
def test_generated_equal_reference(pos: float, bg: float) -> None:
    worst = 0.0
    seen: dict[str, int] = dict.fromkeys(MAIN_ERRORS, 0)
    for seed in range(40):
        gt, dt = to_coco(make_dataset(seed, n_images=9, integer_coords=seed % 3 == 0))
        ref, ours = reference_tide(gt, dt, pos, bg), objdet_tide(gt, dt, pos, bg)
        worst = max(worst, max_diff(ref, ours))
        assert ref["counts"] == ours["counts"], seed
        for k in MAIN_ERRORS:
            seen[k] += ours["counts"][k]
    assert worst < TOL
    if bg > 0:  # every error type occurs (with bg = 0 a detection with no IoU is a localisation error)
        assert all(n > 0 for n in seen.values()), seen


@pytest.mark.skipif(not tidecv_available(), reason="tidecv is not installed (not a test dependency)")
def test_reference_equals_tidecv(coco100: tuple[dict, list[dict]]) -> None:
    """The plain reference is itself checked against tidecv, when tidecv can be imported."""
    gt, dt = coco100
    got = tidecv_tide(gt, dt)
    assert max_diff(got, TIDECV_COCO100) < TOL
    assert got["counts"] == TIDECV_COCO100["counts"]
    for seed in range(30):
        g, d = to_coco(make_dataset(seed, n_images=9))
        for pos, bg in [(0.5, 0.1), (0.75, 0.25), (0.3, 0.0)]:
            ref, tide = reference_tide(g, d, pos, bg), tidecv_tide(g, d, pos, bg)
            assert max_diff(ref, tide) < TOL, seed
            assert ref["counts"] == tide["counts"], seed


# tidecv 1.0.1 in its mask mode on instances_val2014_100 + fakesegm100 through its own COCO loaders
# (``datasets.COCO`` / ``COCOResult``, ``TIDE().evaluate(gt, dt, mode=TIDE.MASK)``), printed with repr
TIDECV_COCO100_SEGM = {
    "ap": 51.80081155512982,
    "main": {
        "cls": 16.186000852974452,
        "loc": 11.600722789458686,
        "both": 1.0128509521506288,
        "dupe": 0.0,
        "bkg": 0.2681107488310275,
        "miss": 7.778639338018046,
    },
    "special": {"fp": 8.660366141587232, "fn": 23.74583810883663},
    "counts": {"cls": 76, "loc": 82, "both": 7, "dupe": 0, "bkg": 4, "miss": 109},
}


def test_mask_reference_on_coco100_equals_tidecv_numbers() -> None:
    """The plain reference in mask mode finds tidecv's numbers on the real segm results."""
    gt, dt = _load(GT), _load(SEGM)
    assert isinstance(gt, dict) and isinstance(dt, list)
    ref = reference_tide(gt, dt, iou_type="segm")
    assert max_diff(ref, TIDECV_COCO100_SEGM) < TOL
    assert ref["counts"] == TIDECV_COCO100_SEGM["counts"]


@pytest.mark.skipif(not tidecv_available(), reason="tidecv is not installed (not a test dependency)")
def test_mask_reference_equals_tidecv() -> None:
    """Masks (polygons, compressed and uncompressed crowd RLEs, empty masks): reference == tidecv."""
    for seed in range(12):
        gt, dt = coco_segm_json(make_segm_dataset(seed, n_images=8))
        for pos, bg in [(0.5, 0.1), (0.75, 0.25)]:
            ref, tide = reference_tide(gt, dt, pos, bg, iou_type="segm"), tidecv_tide(gt, dt, pos, bg, "segm")
            assert max_diff(ref, tide) < TOL, seed
            assert ref["counts"] == tide["counts"], seed


def test_pair_iou_replaces_the_boxes() -> None:
    """The kernel with a given pair IoU equal to the box IoU gives the box run's output; pairs per image."""
    gt_box = np.array([[0.0, 0, 10, 10], [50.0, 50, 10, 10], [0.0, 0, 30, 30]])
    det_box = np.array([[0.0, 0, 10, 12], [51.0, 50, 10, 10], [300.0, 0, 5, 5], [1.0, 1, 9, 9]])
    det_img, gt_img = np.array([0, 0, 1, 0]), np.array([0, 0, 1])
    args = (np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.95]))
    gt_args = (np.array([0, 1, 0]), np.array([False, False, True]))
    seen: list[tuple[list[int], list[int]]] = []

    def pair_iou(pair_det: np.ndarray, pair_gt: np.ndarray) -> np.ndarray:
        from pycocotools import mask as mask_utils

        seen.append((pair_det.tolist(), pair_gt.tolist()))
        return np.array(
            [
                mask_utils.iou([det_box[d]], [gt_box[g]], [int(gt_args[1][g])])[0, 0]
                for d, g in zip(pair_det, pair_gt, strict=True)
            ]
        )

    boxes = tide_classify_np(det_img, *args, det_box, gt_img, gt_args[0], gt_box, gt_args[1], 2)
    given = tide_classify_np(det_img, *args, None, gt_img, gt_args[0], None, gt_args[1], 2, pair_iou=pair_iou)
    for key in boxes:
        assert np.array_equal(boxes[key], given[key]), key
    # image 0: detections by score (3, 0, 1) x its GTs (0, 1); image 1: detection 2 x GT 2 (a crowd)
    assert seen == [([3, 3, 0, 0, 1, 1, 2], [0, 1, 0, 1, 0, 1, 2])]
    with pytest.raises(ValueError, match="needs the boxes"):
        tide_classify_np(det_img, *args, None, gt_img, gt_args[0], None, gt_args[1], 2)
    with pytest.raises(ValueError, match="returned 1 values for 7 pairs"):
        tide_classify_np(
            det_img, *args, None, gt_img, gt_args[0], None, gt_args[1], 2, pair_iou=lambda d, g: np.zeros(1)
        )


def test_kernel_codes_on_a_small_image() -> None:
    gt = np.array([[0.0, 0, 10, 10], [50.0, 50, 10, 10], [100.0, 100, 10, 10], [200.0, 200, 40, 40]])
    gt_label = np.array([0, 1, 0, 2])
    crowd = np.array([False, False, False, True])
    det = np.array(
        [
            [0.0, 0, 10, 10],  # TP of GT 0
            [0.5, 0, 10, 10],  # duplicate of GT 0
            [50.0, 50, 10, 10],  # class 0 on GT 1 (class 1): classification, fixes GT 1
            [103.0, 100, 10, 10],  # loc on GT 2, iou 7/13
            [300.0, 300, 5, 5],  # background
            [205.0, 205, 10, 10],  # class 2 inside the crowd: ignored, background
        ]
    )
    s = tide_classify_np(
        np.zeros(6, np.int64), np.array([0, 0, 0, 0, 0, 2]), np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), det,
        np.zeros(4, np.int64), gt_label, gt, crowd, 1,
    )  # fmt: skip
    assert s["keep"].tolist() == [0, 1, 2, 3, 4, 5]
    assert s["code"].tolist() == [TP, DUPE, CLS | FIXES, TP, BKG, BKG | IGNORED]
    assert s["fix_label"][2] == 1
    assert s["gt_keep"].tolist() == [0, 1, 2]
    assert s["gt_status"].tolist() == [0, 1, 0]  # GT 2: IoU 7/13 >= 0.5 is a match
    s = tide_classify_np(
        np.zeros(1, np.int64), np.array([0]), np.array([0.9]), det[3:4] + np.array([2.0, 0, 0, 0]),
        np.zeros(4, np.int64), gt_label, gt, crowd, 1,
    )  # fmt: skip
    assert s["code"].tolist() == [LOC | FIXES]
    assert s["gt_status"].tolist() == [MISSED, MISSED, 1]


def test_kernel_max_dets_and_order() -> None:
    n = 130
    rng = np.random.default_rng(0)
    scores = rng.choice([0.2, 0.5, 0.7], n)
    s = tide_classify_np(
        np.zeros(n, np.int64), np.zeros(n, np.int64), scores, np.tile([0.0, 0, 10, 10], (n, 1)),
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, bool), 1,
    )  # fmt: skip
    assert s["keep"].tolist() == np.argsort(-scores, kind="stable")[:100].tolist()
    assert (s["code"] == BKG).all() and s["det_count"].tolist() == [100]


def test_ap_is_tidecv_101_point() -> None:
    # 2 GTs, TP at 0.9, FP at 0.8, TP at 0.7: precision 1, 0.5 -> 2/3
    m, _, present = tide_ap_np(
        np.array([0, 0, 0]), np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), np.array([2])
    )
    assert present.tolist() == [True]
    assert m == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101 * 100, abs=1e-12)
    assert tide_ap_np(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64))[0] == 0.0


def test_bad_thresholds() -> None:
    e = np.zeros(0, np.int64)
    args = (e, e, np.zeros(0), np.zeros((0, 4)), e, e, np.zeros((0, 4)), np.zeros(0, bool), 0)
    with pytest.raises(ValueError, match="pos_threshold"):
        tide_classify_np(*args, pos_threshold=0.0)
    with pytest.raises(ValueError, match="bg_threshold"):
        tide_classify_np(*args, bg_threshold=0.7)
    with pytest.raises(ValueError, match="max_dets"):
        tide_classify_np(*args, max_dets=0)


def test_helper_paths_exist() -> None:
    assert Path(FIXTURES / f"{GT}.gz").is_file()
