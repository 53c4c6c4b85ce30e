"""objdet.io: COCO JSON <-> tensors. Hand-written files, round trips, end-to-end parity, errors."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from objdet.io import (
    CocoInputWarning,
    UnknownCategoryError,
    load_coco_dt,
    load_coco_gt,
    to_coco_gt,
    to_coco_results,
)
from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays
from objdet.training.metrics import ClasswiseAP, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, to_torch
from tests.helpers.coco_segm_reference import coco_segm_json, make_segm_dataset, run_cocoeval, segm_cocoeval

# A small file as annotation tools write it: arbitrary image and category ids, a polygon, a
# compressed RLE, an uncompressed (crowd) RLE, an image without annotations.
HAND_GT = {
    "images": [
        {"id": 30, "height": 4, "width": 5, "file_name": "b.jpg"},
        {"id": 12, "height": 3, "width": 4, "file_name": "a.jpg"},
        {"id": 99, "height": 2, "width": 2},
    ],
    "annotations": [
        # image 12, uncompressed RLE, column-major: 2 off, 3 on, 7 off -> (2,0), (0,1), (1,1)
        {
            "id": 5,
            "image_id": 12,
            "category_id": 17,
            "iscrowd": 1,
            "area": 3.0,
            "bbox": [0, 0, 2, 3],
            "segmentation": {"size": [3, 4], "counts": [2, 3, 7]},
        },
        # image 30, polygon: the rectangle x in [1, 3], y in [1, 2] (pycocotools rasterises its pixels)
        {
            "id": 2,
            "image_id": 30,
            "category_id": 3,
            "iscrowd": 0,
            "area": 6.0,
            "bbox": [1, 1, 2, 1],
            "segmentation": [[1, 1, 3, 1, 3, 2, 1, 2]],
        },
        # image 30, compressed RLE written by pycocotools (filled below)
        {
            "id": 9,
            "image_id": 30,
            "category_id": 17,
            "iscrowd": 0,
            "area": 2.0,
            "bbox": [4, 0, 1, 2],
            "segmentation": None,
        },
    ],
    "categories": [{"id": 17, "name": "dog"}, {"id": 3, "name": "cat"}],
}
RLE_MASK = np.zeros((4, 5), dtype=np.uint8)
RLE_MASK[0:2, 4] = 1
_r = mask_utils.encode(np.asfortranarray(RLE_MASK))
HAND_GT["annotations"][2]["segmentation"] = {"size": _r["size"], "counts": _r["counts"].decode("ascii")}

HAND_DT = [
    {
        "image_id": 30,
        "category_id": 3,
        "bbox": [1.0, 1.0, 2.0, 1.5],
        "score": 0.9,
        "segmentation": {"size": [4, 5], "counts": _r["counts"].decode("ascii")},
    },
    {
        "image_id": 12,
        "category_id": 17,
        "bbox": [0.0, 0.0, 1.0, 1.0],
        "score": 0.3,
        "segmentation": {"size": [3, 4], "counts": [0, 1, 11]},
    },
    {
        "image_id": 30,
        "category_id": 17,
        "bbox": [3.5, 0.0, 1.5, 2.0],
        "score": 0.7,
        "segmentation": [[4, 0, 5, 0, 5, 2, 4, 2]],
    },
]


def _pixels(mask: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(p) for p in mask.nonzero().tolist()}


def test_hand_written_gt_loads_with_polygons_rle_and_uncompressed_rle(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(HAND_GT))
    gt = load_coco_gt(path, iou_type=("bbox", "segm"))
    assert gt.image_ids == [12, 30, 99] and gt.image_sizes == [(3, 4), (4, 5), (2, 2)]
    assert gt.category_ids == [3, 17] and gt.category_names == ["cat", "dog"]
    t12, t30, t99 = gt.target[0], gt.target[1], gt.target[2]
    assert _pixels(t12["masks"][0]) == {(2, 0), (0, 1), (1, 1)}
    assert t12["iscrowd"].tolist() == [1] and t12["labels"].tolist() == [17] and t12["area"].tolist() == [3.0]
    # file order within the image: the polygon (id 2), then the RLE (id 9)
    assert t30["annotation_ids"].tolist() == [2, 9] and t30["labels"].tolist() == [3, 17]
    assert _pixels(t30["masks"][1]) == {(0, 4), (1, 4)}
    polygon = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[1, 1, 3, 1, 3, 2, 1, 2]], 4, 5)))
    assert torch.equal(t30["masks"][0], torch.from_numpy(polygon.astype(bool)))
    assert t30["masks"][0].sum() > 0
    assert t30["boxes"].tolist() == [[1.0, 1.0, 2.0, 1.0], [4.0, 0.0, 1.0, 2.0]]
    assert t99["masks"].shape == (0, 2, 2) and t99["boxes"].shape == (0, 4)
    assert t30["masks"].dtype == torch.bool and t30["masks"].is_contiguous()
    # contiguous labels and their mapping
    gc = load_coco_gt(HAND_GT, labels="contiguous")
    assert gc.target[1]["labels"].tolist() == [0, 1]
    assert gc.category_of(torch.tensor([1, 0])).tolist() == [17, 3]
    assert gc.label_of([17, 3]).tolist() == [1, 0] and gt.label_of([17]).tolist() == [17]


def test_hand_written_results_load_in_gt_order(tmp_path: Path) -> None:
    gt = load_coco_gt(HAND_GT, iou_type=("bbox", "segm"), box_format="xyxy")
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(HAND_DT))
    preds = load_coco_dt(path, gt)
    assert len(preds) == 3
    p12, p30, p99 = preds[0], preds[1], preds[2]
    assert p12["scores"].tolist() == [0.3] and _pixels(p12["masks"][0]) == {(0, 0)}
    assert p30["scores"].tolist() == [0.9, 0.7] and p30["labels"].tolist() == [3, 17]
    assert p30["boxes"].tolist() == [[1.0, 1.0, 3.0, 2.5], [3.5, 0.0, 5.0, 2.0]]  # xyxy as asked
    assert _pixels(p30["masks"][0]) == {(0, 4), (1, 4)}
    assert p99["scores"].shape == (0,) and p99["masks"].shape[0] == 0
    sliced = preds[1:]
    assert len(sliced) == 2 and torch.equal(sliced[0]["scores"], p30["scores"])
    # a segm-only results file evaluated as bbox takes the masks' boxes, as pycocotools' loadRes
    no_box = [{k: v for k, v in r.items() if k != "bbox"} for r in HAND_DT]
    boxes = load_coco_dt(no_box, load_coco_gt(HAND_GT, iou_type="bbox"))[1]["boxes"]
    assert boxes.tolist() == [[4.0, 0.0, 1.0, 2.0], [4.0, 0.0, 1.0, 2.0]]


def test_end_to_end_segm_and_bbox_from_json_equal_pycocotools(tmp_path: Path) -> None:
    images = make_segm_dataset(6)
    dataset, results = coco_segm_json(images)
    # shuffle ids and the file order of images: the loader must sort by id as pycocotools does
    for im in dataset["images"]:
        im["id"] = 1000 - 7 * im["id"]
    for a in (*dataset["annotations"], *results):
        a["image_id"] = 1000 - 7 * a["image_id"]
    dataset["images"].reverse()
    # results with a box as well (as Mask R-CNN writes them): pycocotools then takes box areas, also for segm
    with_boxes = copy.deepcopy(results)
    for r in with_boxes:
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        r["bbox"] = mask_utils.toBbox(rle).tolist()
    (tmp_path / "gt.json").write_text(json.dumps(dataset))
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for iou_type, res in (("segm", results), ("bbox", results), ("segm", with_boxes), ("bbox", with_boxes)):
        (tmp_path / "dt.json").write_text(json.dumps(res))
        with open(tmp_path / "gt.json") as f:
            coco_gt = COCO()
            coco_gt.dataset = json.load(f)
            coco_gt.createIndex()
        with open(tmp_path / "dt.json") as f:
            coco_dt = coco_gt.loadRes(json.load(f))
        ev = run_cocoeval(COCOeval(coco_gt, coco_dt, iouType=iou_type))
        gt = load_coco_gt(tmp_path / "gt.json", iou_type=iou_type)
        preds = load_coco_dt(tmp_path / "dt.json", gt)
        metric = MeanAveragePrecision(box_format="xywh", iou_type=iou_type)
        for k in range(0, len(preds), 3):
            metric.update(preds[k : k + 3], gt.target[k : k + 3])
        stats, tables = metric.coco_eval()
        np.testing.assert_allclose(stats.numpy(), ev.stats, rtol=0, atol=1e-9, err_msg=iou_type)
        np.testing.assert_allclose(tables.precision.numpy(), ev.eval["precision"], rtol=0, atol=1e-9)


def test_bbox_round_trip_and_parity_with_contiguous_labels() -> None:
    images = make_dataset(3)
    preds, target = to_torch(images)
    ids = [10 * i + 3 for i in range(len(preds))]
    cats = [101, 205, 307, 409]  # label i is category cats[i]
    gt_json = json.loads(json.dumps(to_coco_gt(target, ids, box_format="xywh", category_ids=cats)))
    dt_json = json.loads(json.dumps(to_coco_results(preds, ids, box_format="xywh", category_ids=cats)))
    gt = load_coco_gt(gt_json, labels="contiguous")
    back = load_coco_dt(dt_json, gt)
    assert gt.image_ids == ids and gt.category_ids == cats
    for i in range(len(preds)):
        assert torch.equal(back[i]["boxes"], preds[i]["boxes"]) and torch.equal(
            back[i]["scores"], preds[i]["scores"]
        )
        assert torch.equal(back[i]["labels"], preds[i]["labels"])
        t = gt.target[i]
        assert torch.equal(t["boxes"], target[i]["boxes"]) and torch.equal(t["labels"], target[i]["labels"])
        assert torch.equal(t["iscrowd"], target[i]["iscrowd"])
    ref = pycocotools_eval(images)
    metric = ClasswiseAP(num_classes=4, box_format="xywh", iou_threshold=None)
    metric.update(list(back), list(gt.target))
    out = metric.compute()
    per_class = {c: pycocotools_eval(images, cat_ids=[c]).stats[0] for c in ref.cat_ids}
    for c, value in per_class.items():
        assert abs(out[f"class_{c}_AP"].item() - value) < 1e-6


def test_segm_round_trip_keeps_masks_areas_and_crowd() -> None:
    images = make_segm_dataset(1)
    from tests.helpers.coco_segm_reference import to_torch_segm

    preds, target = to_torch_segm(images)
    sizes = [(im.height, im.width) for im in images]
    gt_json = json.loads(
        json.dumps(to_coco_gt(target, iou_type="segm", image_sizes=sizes, category_ids=range(4)))
    )
    dt_json = json.loads(json.dumps(to_coco_results(preds, iou_type="segm")))
    gt = load_coco_gt(gt_json, iou_type="segm")
    back = load_coco_dt(dt_json, gt)
    for i, (p, t) in enumerate(zip(preds, target, strict=True)):
        assert torch.equal(gt.target[i]["masks"], t["masks"]), i
        assert torch.equal(back[i]["masks"], p["masks"]), i
        assert torch.equal(gt.target[i]["iscrowd"], t["iscrowd"])
        expected_area = t["area"] if "area" in t else torch.zeros(len(t["labels"]), dtype=torch.float64)
        expected_area = torch.where(expected_area > 0, expected_area, t["masks"].sum((1, 2)).double())
        assert torch.equal(gt.target[i]["area"], expected_area)
    ev = run_cocoeval(segm_cocoeval(images))
    metric = MeanAveragePrecision(iou_type="segm")
    metric.update(list(back), list(gt.target))
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), ev.stats, rtol=0, atol=1e-9)


def test_device_argument_and_lazy_decoding() -> None:
    gt = load_coco_gt(HAND_GT, iou_type="segm", device="cpu")
    first, again = gt.target[1]["masks"], gt.target[1]["masks"]
    assert torch.equal(first, again) and first.data_ptr() != again.data_ptr()  # decoded on each read
    assert gt.target[-1]["masks"].shape == (0, 2, 2)
    with pytest.raises(IndexError):
        gt.target[3]


# ---------------------------------------------------------------- errors
def _gt(**changes: object) -> dict:
    data = copy.deepcopy(HAND_GT)
    for path, value in changes.items():
        obj: object = data
        *head, last = path.split("__")
        for key in head:
            obj = obj[int(key)] if key.isdigit() else obj[key]  # type: ignore[index]
        if value is KeyError:
            del obj[int(last) if last.isdigit() else last]  # type: ignore[attr-defined]
        else:
            obj[int(last) if last.isdigit() else last] = value  # type: ignore[index]
    return data


@pytest.mark.parametrize(
    ("data", "iou_type", "match"),
    [
        (_gt(images=KeyError), "bbox", r"ground truth has no key 'images'"),
        (_gt(annotations__1__bbox=KeyError), "bbox", r"annotations\[1\] has no key 'bbox'"),
        (
            _gt(annotations__1__bbox=[1, 2, 3]),
            "bbox",
            r"annotations\[1\]\['bbox'\] must be 4 finite numbers .* got \[1, 2, 3\]",
        ),
        (
            _gt(annotations__0__bbox=[0, 0, -1, 2]),
            "bbox",
            r"annotations\[0\]\['bbox'\] .* got \[0, 0, -1, 2\]",
        ),
        (_gt(annotations__0__bbox=["a", 0, 1, 2]), "bbox", r"annotations\[0\]\['bbox'\]"),
        (
            _gt(annotations__1__bbox=["1", "1", "2", "1"]),
            "bbox",
            r"annotations\[1\]\['bbox'\] must be 4 finite numbers .* got \['1', '1', '2', '1'\] \(numbers "
            r"written as strings; pycocotools cannot read them either",
        ),
        (
            _gt(annotations__2__area="2.0"),
            "bbox",
            r"annotations\[2\]\['area'\] must be a number, got '2.0' \(numbers written as strings",
        ),
        (
            _gt(annotations__2__image_id=7),
            "bbox",
            r"annotations\[2\]\['image_id'\] = 7 is not in the GT 'images'",
        ),
        (
            _gt(annotations__2__category_id=4),
            "bbox",
            r"annotations\[2\]\['category_id'\] = 4 is not in the GT 'categories'",
        ),
        (
            _gt(annotations__0__image_id="12"),
            "bbox",
            r"annotations\[0\]\['image_id'\] must be an integer, got '12'",
        ),
        (_gt(annotations__0__iscrowd=2), "bbox", r"annotations\[0\]\['iscrowd'\] must be 0 or 1, got 2"),
        (_gt(annotations__0__area=-1), "bbox", r"annotations\[0\]\['area'\] must be a finite number >= 0"),
        (_gt(annotations__2__id=5), "bbox", r"annotations has the 'id' 5 more than once"),
        (_gt(images__2__id=12), "bbox", r"images has the 'id' 12 more than once"),
        (_gt(annotations__1__segmentation=KeyError), "segm", r"annotations\[1\] has no key 'segmentation'"),
        (
            _gt(annotations__2__segmentation__size=[4, 6]),
            "segm",
            r"annotations\[2\]\['segmentation'\]\['size'\] is \[4, 6\] but the image is",
        ),
        (
            _gt(annotations__0__segmentation__counts=[2, 3, 8]),
            "segm",
            r"must sum to height \* width = 12, got 13",
        ),
        (
            _gt(annotations__1__segmentation=[]),
            "segm",
            r"annotations\[1\]\['segmentation'\] must be a non-empty list of polygons",
        ),
        (
            _gt(images__0__height=KeyError),
            "segm",
            r"annotations\[1\]: polygon 'segmentation' needs the image's 'height'",
        ),
        (
            _gt(annotations__1__segmentation=5),
            "segm",
            r"annotations\[1\]\['segmentation'\] must be polygons or an RLE dict",
        ),
    ],
)
def test_bad_ground_truth_names_the_field(data: dict, iou_type: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_coco_gt(data, iou_type=iou_type)


def test_integral_floats_are_integers_as_in_json() -> None:
    # JSON has one number type: writers that emit ids as 30.0 produce a valid file (pycocotools reads it)
    floats = _gt(
        images__0__id=30.0, images__0__height=4.0, annotations__1__image_id=30.0, annotations__1__iscrowd=0.0
    )
    floats["categories"][1]["id"] = 3.0
    floats["annotations"][1]["category_id"] = 3.0
    floats["annotations"][1]["id"] = 2.0
    want, got = load_coco_gt(HAND_GT, iou_type="segm"), load_coco_gt(floats, iou_type="segm")
    assert got.image_ids == want.image_ids and got.category_ids == want.category_ids
    assert got.image_sizes == want.image_sizes
    for a, b in zip(got.target, want.target, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    dt = copy.deepcopy(HAND_DT)
    dt[0]["image_id"], dt[0]["category_id"] = 30.0, 3.0
    for a, b in zip(load_coco_dt(dt, got), load_coco_dt(HAND_DT, want), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match=r"annotations\[0\]\['image_id'\] must be an integer, got 12.5"):
        load_coco_gt(_gt(annotations__0__image_id=12.5))
    with pytest.raises(ValueError, match=r"images\[1\]\['id'\] must fit in 64 bits"):
        load_coco_gt(_gt(images__1__id=2**64))


def test_rles_of_different_sizes_on_an_image_without_size_are_an_error() -> None:
    data = _gt(images__1__height=KeyError, images__1__width=KeyError)  # image 12: only RLEs give its size
    data["annotations"].append(
        {
            "id": 11,
            "image_id": 12,
            "category_id": 3,
            "area": 1.0,
            "segmentation": {"size": [2, 2], "counts": [4]},
        }
    )
    gt = load_coco_gt(data, iou_type="segm")
    with pytest.raises(
        ValueError, match=r"annotations of image 12: the 'segmentation' sizes of one image differ"
    ):
        gt.target[0]
    dt = [
        {"image_id": 12, "category_id": 3, "score": 0.5, "segmentation": s}
        for s in ({"size": [3, 4], "counts": [12]}, {"size": [2, 2], "counts": [4]})
    ]
    with pytest.raises(
        ValueError, match=r"results of image 12: the 'segmentation' sizes of one image differ"
    ):
        load_coco_dt(dt, gt)[0]


def _dt(k: int, **changes: object) -> list:
    results = copy.deepcopy(HAND_DT)
    for key, value in changes.items():
        if value is KeyError:
            del results[k][key]
        else:
            results[k][key] = value
    return results


@pytest.mark.parametrize(
    ("results", "iou_type", "match"),
    [
        (_dt(1, image_id=13), "bbox", r"results\[1\]\['image_id'\] = 13 is not in the GT 'images'"),
        (_dt(2, category_id=18), "bbox", r"results\[2\]\['category_id'\] = 18 is not in the GT 'categories'"),
        (_dt(0, score=KeyError), "bbox", r"results\[0\] has no key 'score'"),
        (_dt(0, score="high"), "bbox", r"results\[0\]\['score'\] must be a number, got 'high'"),
        (
            _dt(1, score="0.3"),
            "bbox",
            r"results\[1\]\['score'\] must be a number, got '0.3' \(numbers written as strings; "
            r"pycocotools cannot read them either: write them unquoted\)",
        ),
        (_dt(2, score=None), "bbox", r"results\[2\]\['score'\] must be a number, got None"),
        (
            _dt(2, bbox=["3.5", "0", "1.5", "2"]),
            "bbox",
            r"results\[2\]\['bbox'\] must be 4 finite numbers .* \(numbers written as strings",
        ),
        (_dt(0, score=float("nan")), "bbox", r"results\[0\]\['score'\] must be a finite number"),
        (_dt(2, bbox=[1, 2]), "bbox", r"results\[2\]\['bbox'\] must be 4 finite numbers .* got \[1, 2\]"),
        (_dt(1, bbox=KeyError, segmentation=KeyError), "bbox", r"results\[1\] has no key 'bbox'"),
        (_dt(1, segmentation=KeyError), "segm", r"results\[1\] has no key 'segmentation'"),
        (
            _dt(0, segmentation={"size": [3, 4], "counts": "abc"}),
            "segm",
            r"results\[0\]\['segmentation'\]\['size'\] is \[3, 4\]",
        ),
        ({"image_id": 1}, "bbox", r"the COCO results must be a JSON list"),
        ([5], "bbox", r"results\[0\] must be a JSON object"),
    ],
)
def test_bad_results_name_the_field(tmp_path: Path, results: object, iou_type: str, match: str) -> None:
    gt = load_coco_gt(HAND_GT, iou_type=iou_type)
    with pytest.raises(ValueError, match=match):
        load_coco_dt(results, gt)  # type: ignore[arg-type]
    path = tmp_path / "dt.json"  # a file: the strict reader refuses it, the generic one names the field
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=match):
        load_coco_dt(path, gt)


def test_suspicious_files_warn_naming_the_file_and_the_caller(tmp_path: Path) -> None:
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(dict(HAND_GT, annotations=[])))
    dt_path.write_text("[]")
    with pytest.warns(CocoInputWarning) as caught:
        gt = load_coco_gt(gt_path)
        preds = load_coco_dt(dt_path, gt)
    assert [str(w.message) for w in caught] == [
        f"{gt_path}: the ground truth's 'annotations' is empty: no class has ground truth, so every AP "
        "and AR will be -1",
        f"{dt_path}: the results list is empty: no detections, so every class with ground truth gets AP "
        "and AR 0",
    ]
    assert {w.filename for w in caught} == {__file__}  # attributed to the caller, not to objdet
    assert [len(p["scores"]) for p in preds] == [0, 0, 0]
    with pytest.warns(CocoInputWarning, match=r"^the results list is empty"):  # no file to name
        load_coco_dt([], load_coco_gt(HAND_GT))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file with annotations and results warns nothing
        load_coco_dt(HAND_DT, load_coco_gt(HAND_GT))


@pytest.mark.parametrize("as_file", [False, True])
def test_unknown_categories_are_an_error_or_skipped(tmp_path: Path, as_file: bool) -> None:
    results = copy.deepcopy(HAND_DT) + [dict(HAND_DT[0], category_id=c, score=0.1) for c in (40, 8, 40)]
    source: object = results
    if as_file:
        source = tmp_path / "dt.json"
        source.write_text(json.dumps(results))
    gt = load_coco_gt(HAND_GT)
    with pytest.raises(UnknownCategoryError) as error:
        load_coco_dt(source, gt)  # type: ignore[arg-type]
    assert str(error.value) == (
        "results[3]['category_id'] = 40 is not in the GT 'categories' (3 of 6 results have such a "
        "category_id: ids [8, 40]); skip_unknown_categories=True skips such results "
        "(pycocotools ignores them)"
    )
    assert isinstance(error.value, ValueError)
    with pytest.warns(
        CocoInputWarning,
        match=r"skipped 3 of 6 results whose 'category_id' is not in the GT 'categories': ids \[8, 40\]$",
    ):
        preds = load_coco_dt(source, gt, skip_unknown_categories=True)  # type: ignore[arg-type]
    expected = load_coco_dt(HAND_DT, gt)
    for p, q in zip(preds, expected, strict=True):
        assert p.keys() == q.keys() and all(torch.equal(p[k], q[k]) for k in p)
    with pytest.warns(CocoInputWarning):
        arrays = read_dt_arrays(source, read_gt_arrays(HAND_GT), skip_unknown_categories=True)  # type: ignore[arg-type]
    assert arrays.skipped.tolist() == [3, 4, 5] and arrays.skipped_category.tolist() == [40, 8, 40]
    assert sorted(arrays.index.tolist()) == [0, 1, 2]  # file positions of the kept results


def test_ground_truth_repr_gives_sizes_and_box_format() -> None:
    gt = load_coco_gt(HAND_GT, labels="contiguous")
    assert repr(gt) == (
        "CocoGroundTruth(images=3, categories=2, annotations=3, iou_type=('bbox',), labels='contiguous', "
        "box_format='xywh')"
    )
    assert "box_format='xyxy'" in repr(load_coco_gt(HAND_GT, box_format="xyxy"))


def test_writer_errors() -> None:
    with pytest.raises(ValueError, match=r"preds\[0\] has no key 'masks'"):
        to_coco_results(
            [{"scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.long)}], iou_type="segm"
        )
    with pytest.raises(ValueError, match=r"`image_ids` must have one id per image \(1\), got 2"):
        to_coco_gt([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}], image_ids=[1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        to_coco_results(
            [{"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.tensor([2])}],
            category_ids=[5, 6],
        )
