"""objdet eval --iou-type keypoints against pycocotools' COCOeval(..., "keypoints") on the same files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.keypoint_reference import STAT_KEYS, make_keypoint_dataset, pycocotools_keypoints
from tests.io.test_keypoints_io import unpack_keypoint_files
from tests.test_cli import _cpu_route, _torch_route, cocoeval, run


def _write(tmp_path: Path, seed: int) -> tuple[Path, Path, dict]:
    data = make_keypoint_dataset(seed, n_images=30, n_classes=2)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(data["gt"]))
    dt_path.write_text(json.dumps(data["dt"]))
    return gt_path, dt_path, data


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_files_equal_pycocotools_on_both_routes(tmp_path: Path, seed: int) -> None:
    gt_path, dt_path, data = _write(tmp_path, seed)
    ref = pycocotools_keypoints(data)
    json_path = tmp_path / "m.json"
    code, out, err = run(
        "eval", str(gt_path), str(dt_path), "--iou-type", "keypoints", "--json", str(json_path)
    )
    assert code == 0, err
    assert "COCO keypoints evaluation" in out and "maxDets= 20" in out and "AR20" in out
    metrics = json.loads(json_path.read_text())
    np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ref.stats, rtol=0, atol=1e-12)
    assert metrics["coco_stats"] == [metrics[k] for k in STAT_KEYS]  # pycocotools' stats, its order
    torch_route = _torch_route(gt_path, dt_path, "keypoints")
    assert _cpu_route(gt_path, dt_path, "keypoints") == torch_route
    np.testing.assert_allclose(torch_route["coco_stats"], ref.stats, rtol=0, atol=1e-12)
    # per class: pycocotools on that class alone
    for cat, ap in zip(metrics["classes"], metrics["map_per_class"], strict=True):
        assert ap == pytest.approx(pycocotools_keypoints(data, cat_ids=[cat]).stats[0], abs=1e-12)


def test_real_person_keypoint_files(tmp_path: Path) -> None:
    gt_path, dt_path = unpack_keypoint_files(tmp_path)
    json_path = tmp_path / "m.json"
    code, _, err = run(
        "eval", str(gt_path), str(dt_path), "--iou-type", "keypoints", "--json", str(json_path), "-q"
    )
    assert code == 0, err
    ref = cocoeval(gt_path, dt_path, "keypoints")
    np.testing.assert_allclose(json.loads(json_path.read_text())["coco_stats"], ref.stats, rtol=0, atol=1e-12)


def test_slices_and_bootstrap_read_the_keypoint_evaluation(tmp_path: Path) -> None:
    gt_path, dt_path, data = _write(tmp_path, 3)
    ids = [image["id"] for image in data["gt"]["images"]]
    slices = tmp_path / "slices.json"
    slices.write_text(json.dumps({"all": ids, "few": ids[:10]}))
    json_path = tmp_path / "m.json"
    args = ("eval", str(gt_path), str(dt_path), "--iou-type", "keypoints", "--json", str(json_path))
    code, _, err = run(*args, "--slices", str(slices), "--bootstrap", "30")
    assert code == 0, err
    metrics = json.loads(json_path.read_text())
    assert metrics["slices"]["all"]["map"] == metrics["map"]
    few = {
        "gt": {**data["gt"], "images": data["gt"]["images"][:10]},
        "dt": [d for d in data["dt"] if d["image_id"] in ids[:10]],
    }
    few["gt"]["annotations"] = [a for a in data["gt"]["annotations"] if a["image_id"] in ids[:10]]
    assert metrics["slices"]["few"]["map"] == pytest.approx(pycocotools_keypoints(few).stats[0], abs=1e-12)
    assert metrics["bootstrap"]["map"]["estimate"] == pytest.approx(metrics["map"], abs=1e-12)


def test_tide_with_keypoints_is_refused(tmp_path: Path) -> None:
    gt_path, dt_path, _ = _write(tmp_path, 4)
    code, _, err = run("eval", str(gt_path), str(dt_path), "--iou-type", "keypoints", "--tide")
    assert code == 2 and "--tide" in err
