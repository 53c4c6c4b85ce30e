"""``objdet eval --calibration / --fbeta``: numbers against a reference on pycocotools' flags, errors."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from objdet.data import demo_files
from tests.functional.test_calibration import reference
from tests.helpers.cli_imports import imported_packages
from tests.test_cli import run, write_generated

pytestmark = pytest.mark.filterwarnings("ignore:Encountered more than 100 detections")


def reference_from_files(gt_path: Path, dt_path: Path, bins: int, strategy: str) -> dict:
    """The plain calibration reference on pycocotools' own match flags (IoU 0.5, area all, maxDet 100)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
        ev.evaluate()
    scores, tp, labels, ignored = [], [], [], []
    for e in ev.evalImgs:
        if e is None or list(e["aRng"]) != list(ev.params.areaRng[0]):
            continue
        for j, s in enumerate(e["dtScores"]):
            ig = bool(e["dtIgnore"][0, j])
            scores.append(float(s))
            tp.append(bool(e["dtMatches"][0, j]) and not ig)
            ignored.append(ig)
            labels.append(e["category_id"])
    return reference(scores, tp, labels, ignored, bins, strategy)


@pytest.mark.parametrize(("bins", "strategy"), [(10, "width"), (7, "mass")])
def test_calibration_json_equals_the_reference_on_both_routes(
    tmp_path: Path, bins: int, strategy: str
) -> None:
    gt_path, dt_path, _ = write_generated(tmp_path, 1)  # arbitrary ids, crowds, tied scores
    ref = reference_from_files(gt_path, dt_path, bins, strategy)
    options = ["--calibration", "--calibration-bins", str(bins), "--calibration-strategy", strategy]
    code, out, err = run("eval", str(gt_path), str(dt_path), *options, "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    cal = json.loads((tmp_path / "m.json").read_text())["calibration"]
    assert cal["ece"] == pytest.approx(ref["ece"], abs=1e-12) and cal["mce"] == pytest.approx(
        ref["mce"], abs=1e-12
    )
    assert cal["n_detections"] == sum(ref["count"]) > 0
    assert (cal["bins"], cal["strategy"], cal["iou_threshold"]) == (bins, strategy, 0.5)
    # the reliability diagram's bins and the per-class numbers (NaN: None in the JSON)
    for key in ("count", "confidence", "accuracy", "lower", "upper"):
        got = [math.nan if v is None else v for v in cal["reliability"][key]]
        assert got == pytest.approx(ref[key], abs=1e-12, nan_ok=True), key
    gt_ids = sorted(c["id"] for c in json.loads(gt_path.read_text())["categories"])
    assert [gt_ids.index(r["category_id"]) for r in cal["per_class"]] == [
        gt_ids.index(c) for c in ref["classes"]
    ]
    assert [r["ece"] for r in cal["per_class"]] == pytest.approx(ref["class_ece"], abs=1e-12)
    assert [r["mce"] for r in cal["per_class"]] == pytest.approx(ref["class_mce"], abs=1e-12)
    assert [r["n_detections"] for r in cal["per_class"]] == [sum(c) for c in ref["class_count"]]
    assert f"ECE = {ref['ece']:.4f}  MCE = {ref['mce']:.4f}" in out
    # the torch route (as --device cuda runs it) gives the same numbers
    from objdet.cli import Diagnostics, evaluate
    from objdet.io import load_coco_dt, load_coco_gt

    gt = load_coco_gt(gt_path, labels="contiguous")
    diag = Diagnostics(calibration=True, calibration_bins=bins, calibration_strategy=strategy)  # type: ignore[arg-type]
    torch_cal = evaluate(gt, load_coco_dt(dt_path, gt), plots=False, diagnostics=diag).calibration
    assert float(torch_cal.ece) == pytest.approx(cal["ece"], abs=1e-12)
    assert float(torch_cal.mce) == pytest.approx(cal["mce"], abs=1e-12)


def test_fbeta_json_and_the_figures(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = run("eval", "--demo", "--calibration", "--fbeta", "2", "--out", str(out_dir))
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert set(metrics["calibration"]) >= {"ece", "mce"}
    assert 0 <= metrics["calibration"]["ece"] <= metrics["calibration"]["mce"] <= 1
    # the F2 of the metric's own curves on the same files
    from objdet.io import load_coco_dt, load_coco_gt
    from objdet.training.metrics import MeanAveragePrecision

    gt_path, dt_path = demo_files()
    gt = load_coco_gt(gt_path)
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(load_coco_dt(dt_path, gt), gt.target)
    f2 = metric.curves().fbeta(2.0)
    assert metrics["fbeta"]["beta"] == 2.0
    assert metrics["fbeta"]["best"] == pytest.approx(float(f2.best_fbeta), abs=1e-12)
    assert metrics["fbeta"]["confidence"] == pytest.approx(float(f2.best_confidence), abs=1e-12)
    assert "F2 (IoU=0.5, all classes pooled): best" in out and "Calibration (IoU=0.5" in out
    for name in ("reliability_diagram.png", "f2_confidence.png"):
        data = (out_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
    code, _, _ = run("eval", "--demo", "-q", "--calibration", "--no-plots", "--out", str(tmp_path / "np"))
    assert code == 0 and not list((tmp_path / "np").glob("*.png"))


def test_without_the_flags_the_json_has_no_diagnostics(tmp_path: Path) -> None:
    code, _, _ = run("eval", "--demo", "-q", "--json", str(tmp_path / "m.json"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and "calibration" not in metrics and "fbeta" not in metrics


def test_calibration_imports_no_torch(tmp_path: Path) -> None:
    argv = ["eval", "--demo", "-q", "--calibration", "--json", str(tmp_path / "m.json")]
    assert imported_packages([argv], {"torch", "torchmetrics", "lightning", "matplotlib"}) == []
    assert "ece" in json.loads((tmp_path / "m.json").read_text())["calibration"]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--calibration-bins", "0"], "--calibration-bins: expected a positive integer, got 0"),
        (["--fbeta", "-1"], "--fbeta: expected a finite number > 0, got -1.0"),
        (["--fbeta", "nan"], "--fbeta: expected a finite number > 0, got nan"),
    ],
)
def test_bad_options(option: list[str], expected: str) -> None:
    code, out, err = run("eval", "--demo", "--calibration", *option)
    assert code == 2 and out == ""
    assert err == f"objdet: error: {expected}\n"


def test_scores_outside_0_1_are_one_line_and_exit_2(tmp_path: Path) -> None:
    gt_path, dt_path, _ = write_generated(tmp_path, 0)
    results = json.loads(dt_path.read_text())
    results[0]["score"] = 4.5  # a logit
    dt_path.write_text(json.dumps(results))
    code, out, _ = run("eval", str(gt_path), str(dt_path), "-q", "--json", str(tmp_path / "m.json"))
    assert code == 0  # COCO AP is defined for any score
    code, out, err = run("eval", str(gt_path), str(dt_path), "--calibration")
    assert code == 2 and err.count("\n") == 1
    assert "--calibration: calibration needs detection scores in [0, 1]" in err and "4.5]" in err
    np.testing.assert_equal(out, "")
