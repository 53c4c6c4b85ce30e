"""COCO person-keypoint files through objdet.io, against pycocotools on the same files."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from objdet.io import load_coco_dt, load_coco_gt
from objdet.training.metrics import MeanAveragePrecision

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "keypoints"


def unpack_keypoint_files(directory: Path) -> tuple[Path, Path]:
    """The person-keypoint GT and results files of tests/fixtures/keypoints, unpacked into ``directory``."""
    out = []
    for name in ("gt", "results"):
        path = directory / f"person_keypoints_{name}.json"
        with gzip.open(FIXTURES / f"person_keypoints_{name}.json.gz", "rb") as src:
            path.write_bytes(src.read())
        out.append(path)
    return out[0], out[1]


def _pycocotools(gt: Path | dict, dt: Path | list) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt)) if isinstance(gt, Path) else COCO()
        if isinstance(gt, dict):
            coco.dataset = gt
            coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(str(dt) if isinstance(dt, Path) else dt), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("engine", ["compiled", "torch"])
def test_real_person_keypoint_files_equal_pycocotools(tmp_path: Path, engine: str) -> None:
    gt_path, dt_path = unpack_keypoint_files(tmp_path)
    ref = _pycocotools(gt_path, dt_path)
    gt = load_coco_gt(gt_path, iou_type="keypoints")
    preds = load_coco_dt(dt_path, gt)
    assert gt.target[0]["keypoints"].shape[1:] == (17, 3)
    metric = MeanAveragePrecision(iou_type="keypoints", box_format=gt.box_format, engine=engine)
    metric.update(list(preds), list(gt.target))
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), ref.stats, rtol=0, atol=1e-12)
    assert ref.stats[0] > 0.4  # a real evaluation, not an empty one


def _files() -> tuple[dict, list]:
    kp = [10, 10, 2, 20, 12, 2, 0, 0, 0]
    gt = {
        "images": [{"id": 1}, {"id": 2}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": kp, "num_keypoints": 2,
             "bbox": [5, 5, 20, 20], "area": 300.0, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "keypoints": [0] * 9, "num_keypoints": 0,
             "bbox": [50, 50, 10, 10], "area": 80.0, "iscrowd": 0},
        ],
    }  # fmt: skip
    dt = [
        {"image_id": 1, "category_id": 1, "keypoints": [11, 10, 0.9, 20, 13, 0.8, 3, 4, 0.1], "score": 0.9},
        {"image_id": 2, "category_id": 1, "keypoints": [52, 52, 0.5, 55, 58, 0.5, 51, 51, 0.5], "score": 0.8,
         "bbox": [40, 40, 30, 30]},
    ]  # fmt: skip
    return gt, dt


def test_results_without_box_take_their_keypoints_extent_and_equal_pycocotools(tmp_path: Path) -> None:
    gt_dict, dt_list = _files()
    gt = load_coco_gt(gt_dict, iou_type="keypoints")
    preds = load_coco_dt(dt_list, gt)
    assert preds[0]["area"].tolist() == [(20 - 3) * (13 - 4)]  # pycocotools' loadRes: the keypoints' box
    assert preds[1]["area"].tolist() == [900.0]  # a result with a bbox: its area
    assert gt.target[1]["num_keypoints"].tolist() == [0]
    metric = MeanAveragePrecision(iou_type="keypoints", box_format="xywh", keypoint_sigmas=[0.1] * 3)
    metric.update(list(preds), list(gt.target))
    ref = _pycocotools_with_sigmas(gt_dict, dt_list, np.full(3, 0.1))
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), ref.stats, rtol=0, atol=1e-12)


def _pycocotools_with_sigmas(gt: dict, dt: list, sigmas: np.ndarray) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dt))), "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("as_files", [False, True])
def test_files_and_loaded_objects_read_alike(tmp_path: Path, as_files: bool) -> None:
    """The typed file reader (msgspec) and the generic one (loaded objects) give the same columns."""
    gt_dict, dt_list = _files()
    gt_dict["annotations"][1].pop("num_keypoints")  # counted from the visibilities: 0
    gt_src: Path | dict = gt_dict
    dt_src: Path | list = dt_list
    if as_files:
        gt_src, dt_src = tmp_path / "gt.json", tmp_path / "dt.json"
        gt_src.write_text(json.dumps(gt_dict))
        dt_src.write_text(json.dumps(dt_list))
    gt = load_coco_gt(gt_src, iou_type="keypoints")
    preds = load_coco_dt(dt_src, gt)
    assert gt.target[0]["keypoints"].tolist() == [[[10, 10, 2], [20, 12, 2], [0, 0, 0]]]
    assert gt.target[1]["num_keypoints"].tolist() == [0]
    assert preds[0]["area"].tolist() == [(20 - 3) * (13 - 4)] and preds[1]["area"].tolist() == [900.0]
    assert preds[0]["keypoints"].shape == (1, 3, 3)


@pytest.mark.parametrize("as_files", [False, True])
@pytest.mark.parametrize(
    ("where", "value", "match"),
    [
        ("gt", None, r"annotations\[0\] has no key 'keypoints'"),
        ("gt", [1, 2], r"annotations\[0\]\['keypoints'\] must be a list of 3 K finite numbers"),
        ("gt", [1, 2, 2, 4, 5, 2], r"annotations\[1\]\['keypoints'\] has 3 keypoints, annotations\[0\] 2"),
        ("dt", ["1", 2, 0.5] * 3, r"results\[0\]\['keypoints'\] must be a list .*strings"),
        ("dt", None, r"results\[0\] has no key 'keypoints'"),
    ],
)
def test_bad_keypoints_name_the_entry(
    tmp_path: Path, where: str, value: list | None, match: str, as_files: bool
) -> None:
    gt_dict, dt_list = _files()
    entry = gt_dict["annotations"][0] if where == "gt" else dt_list[0]
    if value is None:
        entry.pop("keypoints")
    else:
        entry["keypoints"] = value
    gt_src: Path | dict = gt_dict
    dt_src: Path | list = dt_list
    if as_files:  # the typed reader refuses the file; the generic one names the entry
        gt_src, dt_src = tmp_path / "gt.json", tmp_path / "dt.json"
        gt_src.write_text(json.dumps(gt_dict))
        dt_src.write_text(json.dumps(dt_list))
    with pytest.raises(ValueError, match=match):
        gt = load_coco_gt(gt_src, iou_type="keypoints")
        load_coco_dt(dt_src, gt)
