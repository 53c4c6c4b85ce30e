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
