"""The shipped demo files are exactly what the generator produces, and load in pycocotools."""

from __future__ import annotations

import contextlib
import io
import json

from pycocotools.coco import COCO

from objdet.data import demo_files
from objdet.data.generate import dumps, generate


def test_shipped_files_equal_a_fresh_generation() -> None:
    gt, dt = generate()
    gt_path, dt_path = demo_files()
    assert gt_path.read_text() == dumps(gt)
    assert dt_path.read_text() == dumps(dt)


def test_demo_covers_polygons_crowd_rle_and_result_rle() -> None:
    gt_path, dt_path = demo_files()
    gt = json.loads(gt_path.read_text())
    dt = json.loads(dt_path.read_text())
    crowd = [a for a in gt["annotations"] if a["iscrowd"]]
    assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
    assert all(isinstance(a["segmentation"], list) for a in gt["annotations"] if not a["iscrowd"])
    assert all(isinstance(d["segmentation"]["counts"], str) for d in dt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        res = coco.loadRes(str(dt_path))
    assert len(res.getAnnIds()) == len(dt)
    areas = [a["area"] for a in gt["annotations"] if not a["iscrowd"]]
    assert min(areas) < 32**2 < 96**2 < max(areas)  # all three COCO area ranges are populated


def test_keypoint_demo_is_fresh_and_evaluates_as_in_pycocotools() -> None:
    from pycocotools.cocoeval import COCOeval

    from objdet.data.generate import generate_keypoints
    from objdet.io import load_coco_dt, load_coco_gt
    from objdet.training.metrics import MeanAveragePrecision

    gt, dt = generate_keypoints()
    gt_path, dt_path = demo_files("keypoints")
    assert gt_path.read_text() == dumps(gt)
    assert dt_path.read_text() == dumps(dt)
    assert any(a["num_keypoints"] == 0 for a in gt["annotations"])  # people without keypoints
    areas = [a["area"] for a in gt["annotations"]]
    assert min(areas) < 96**2 < max(areas)  # medium and large people
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        ev = COCOeval(coco, coco.loadRes(str(dt_path)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = load_coco_gt(gt_path, iou_type="keypoints")
    metric = MeanAveragePrecision(iou_type="keypoints", box_format=ours.box_format)
    metric.update(list(load_coco_dt(dt_path, ours)), list(ours.target))
    assert metric.coco_eval()[0].tolist() == ev.stats.tolist()
    assert 0.2 < ev.stats[0] < 0.8  # a fair detector, neither perfect nor hopeless
