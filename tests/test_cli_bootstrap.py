"""``objdet eval --bootstrap``: the estimate is pycocotools', the draws are the metric's, seeded, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from objdet.data import demo_files
from tests.helpers.cli_imports import imported_packages
from tests.test_cli import _with_empty_images, cocoeval, per_class_ap, run, write_generated

pytestmark = pytest.mark.filterwarnings("ignore:Encountered more than 100 detections")
KEYS = ("map", "map_50", "map_75")


def _metric_bootstrap(gt_path: Path, dt_path: Path, iou_type: str, n: int, level: float, seed: int):
    """MeanAveragePrecision.bootstrap on the same files, the targets given their image ids."""
    from objdet.io import load_coco_dt, load_coco_gt
    from objdet.training.metrics import MeanAveragePrecision

    types = ("bbox",) if iou_type == "bbox" else ("bbox", "segm")
    gt = load_coco_gt(gt_path, iou_type=types, labels="contiguous")
    preds = load_coco_dt(dt_path, gt)
    target = [{**t, "image_id": i} for t, i in zip(gt.target, gt.image_ids, strict=True)]
    metric = MeanAveragePrecision(box_format="xywh", iou_type=iou_type, class_metrics=True)  # type: ignore[arg-type]
    for k in range(0, len(target), 5):  # batches in shuffled order: the ids give the order back
        metric.update(list(preds[k : k + 5])[::-1], target[k : k + 5][::-1])
    return metric.bootstrap(n_resamples=n, level=level, seed=seed), gt


def _cpu_bootstrap(gt_path: Path, dt_path: Path, iou_type: str, n: int, level: float, seed: int):
    from objdet.cli import evaluate_arrays
    from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays

    types = ("bbox",) if iou_type == "bbox" else ("bbox", "segm")
    gt = read_gt_arrays(gt_path, iou_type=types)
    evaluation = evaluate_arrays(
        gt, read_dt_arrays(dt_path, gt), iou_type=iou_type, plots=False, bootstrap=True
    )
    assert evaluation.bootstrap is not None
    return evaluation.bootstrap(n, level, seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_json_estimate_is_pycocotools_and_intervals_are_the_metrics(tmp_path: Path, seed: int) -> None:
    gt_path, dt_path, _ = write_generated(tmp_path, seed)  # arbitrary ids, crowds, tied scores
    _with_empty_images(gt_path)  # images without GT or detections, one after all the others
    argv = ["--bootstrap", "300", "--bootstrap-seed", str(seed + 5), "--bootstrap-level", "0.9"]
    code, out, err = run("eval", str(gt_path), str(dt_path), *argv, "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    boot = json.loads((tmp_path / "m.json").read_text())["bootstrap"]
    assert (boot["n_resamples"], boot["seed"], boot["level"]) == (300, seed + 5, 0.9)
    ev = cocoeval(gt_path, dt_path, "bbox")
    np.testing.assert_allclose([boot[k]["estimate"] for k in KEYS], ev.stats[:3], rtol=0, atol=1e-12)
    reference = per_class_ap(ev)
    for row in boot["per_class"]:
        expected = reference[row["category_id"]]
        assert row["estimate"] == (pytest.approx(expected, abs=1e-12) if expected >= 0 else None)
    for key in KEYS:
        assert boot[key]["low"] <= boot[key]["high"]
    assert "Bootstrap over images: 90% percentile intervals, 300 resamples" in out
    assert f"map_50  {boot['map_50']['estimate']:8.3f}  {boot['map_50']['low']:8.3f}" in out
    # the metric's bootstrap on the same files and seed: the same draws, the same replicates
    ours = _cpu_bootstrap(gt_path, dt_path, "bbox", 300, 0.9, seed + 5)
    theirs, gt = _metric_bootstrap(gt_path, dt_path, "bbox", 300, 0.9, seed + 5)
    np.testing.assert_array_equal(ours.replicates, theirs.replicates)  # exact
    np.testing.assert_array_equal(ours.class_replicates, theirs.class_replicates)
    for key in KEYS:
        assert boot[key]["low"] == pytest.approx(theirs.low[key], abs=1e-12)
        assert boot[key]["high"] == pytest.approx(theirs.high[key], abs=1e-12)
        assert boot[key]["bias"] == pytest.approx(theirs.bias[key], abs=1e-12)
    assert [r["category_id"] for r in boot["per_class"]] == [gt.category_ids[c] for c in theirs.classes]
    # the torch route (as --device cuda runs it) calls the metric: the same numbers
    from objdet.cli import bootstrap_json, evaluate
    from objdet.io import load_coco_dt

    evaluation = evaluate(gt, load_coco_dt(dt_path, gt), plots=False, bootstrap=True)
    assert evaluation.bootstrap is not None
    via_torch = bootstrap_json(evaluation.bootstrap(300, 0.9, seed + 5), gt.category_ids, gt.category_names)
    assert json.loads(json.dumps(via_torch)) == boot  # the same kernel on the same state: exact


def test_segm_cpu_route_equals_the_metric() -> None:
    gt_path, dt_path = demo_files()
    ours = _cpu_bootstrap(gt_path, dt_path, "segm", 100, 0.95, 2)
    theirs, _ = _metric_bootstrap(gt_path, dt_path, "segm", 100, 0.95, 2)
    np.testing.assert_array_equal(ours.replicates, theirs.replicates)  # exact
    np.testing.assert_array_equal(ours.class_replicates, theirs.class_replicates)
    ev = cocoeval(gt_path, dt_path, "segm")
    np.testing.assert_allclose([ours.estimate[k] for k in KEYS], ev.stats[:3], rtol=0, atol=1e-12)


def test_seeded_and_the_level_narrows_the_interval(tmp_path: Path) -> None:
    def boot(*argv: str) -> dict:
        path = tmp_path / "m.json"
        code, _, err = run("eval", "--demo", "-q", "--json", str(path), *argv)
        assert code == 0, err
        return json.loads(path.read_text())["bootstrap"]

    a, b = (
        boot("--bootstrap", "200", "--bootstrap-seed", "4"),
        boot("--bootstrap", "200", "--bootstrap-seed", "4"),
    )
    assert a == b
    c = boot("--bootstrap", "200", "--bootstrap-seed", "5")
    assert c["map"]["low"] != a["map"]["low"] and c["map"]["estimate"] == a["map"]["estimate"]
    narrow = boot("--bootstrap", "200", "--bootstrap-seed", "4", "--bootstrap-level", "0.5")
    for key in KEYS:
        assert (
            a[key]["low"] <= narrow[key]["low"] <= a[key]["estimate"] <= narrow[key]["high"] <= a[key]["high"]
        )


def test_table_format() -> None:
    from objdet.cli import format_bootstrap_table

    interval = {"estimate": 0.5, "low": 0.4, "high": 0.625, "bias": 0.01}
    boot = {
        "n_resamples": 10, "seed": 1, "level": 0.95, "map": interval, "map_50": interval, "map_75": interval,
        "per_class": [{"category_id": 3, "class": "cat", "estimate": None, "low": None, "high": None}],
    }  # fmt: skip
    table = format_bootstrap_table(boot).splitlines()
    assert table[0] == "Bootstrap over images: 95% percentile intervals, 10 resamples, seed 1"
    assert table[3] == "map        0.500     0.400     0.625    +0.010"
    assert "AP cat" not in "\n".join(table)
    assert (
        format_bootstrap_table(boot, per_class=True).splitlines()[6] == "AP cat         -         -         -"
    )


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--bootstrap", "0"], "--bootstrap: expected a positive number of resamples, got 0"),
        (["--bootstrap", "-3"], "--bootstrap: expected a positive number of resamples, got -3"),
        (
            ["--bootstrap", "10", "--bootstrap-level", "1"],
            "--bootstrap-level: expected a value in (0, 1), got 1.0",
        ),
        (
            ["--bootstrap", "10", "--bootstrap-level", "0"],
            "--bootstrap-level: expected a value in (0, 1), got 0.0",
        ),
        (
            ["--bootstrap", "10", "--bootstrap-level", "nan"],
            "--bootstrap-level: expected a value in (0, 1), got nan",
        ),
        (
            ["--bootstrap", "10", "--bootstrap-seed", "-1"],
            "--bootstrap-seed: expected an integer >= 0, got -1",
        ),
    ],
)
def test_bad_options(option: list[str], expected: str) -> None:
    code, out, err = run("eval", "--demo", *option)
    assert code == 2 and out == ""
    assert err == f"objdet: error: {expected}\n"


def test_bootstrap_imports_no_torch(tmp_path: Path) -> None:
    argv = ["eval", "--demo", "-q", "--bootstrap", "50", "--json", str(tmp_path / "m.json")]
    assert imported_packages([argv], {"torch", "torchmetrics", "lightning", "matplotlib"}) == []
    assert json.loads((tmp_path / "m.json").read_text())["bootstrap"]["n_resamples"] == 50


def _worse_results(tmp_path: Path) -> Path:
    """The demo's results with every third detection dropped and the rest's scores shuffled a little."""
    rng = np.random.default_rng(4)
    dt = json.loads(demo_files()[1].read_text())
    worse = [dict(d, score=round(float(np.clip(d["score"] + rng.normal(0, 0.2), 0, 1)), 4)) for d in dt[::3]]
    path = tmp_path / "worse.json"
    path.write_text(json.dumps(worse))
    return path


def test_compare_gives_the_metrics_paired_difference(tmp_path: Path) -> None:
    from objdet.io import load_coco_dt, load_coco_gt
    from objdet.training.metrics import MeanAveragePrecision

    gt_path, dt_path = demo_files()
    other = _worse_results(tmp_path)
    json_path = tmp_path / "m.json"
    args = ("--bootstrap", "200", "--bootstrap-seed", "3", "--compare", str(other), "--json", str(json_path))
    code, out, err = run("eval", "--demo", *args)
    assert code == 0, err
    comparison = json.loads(json_path.read_text())["bootstrap_comparison"]
    assert comparison["other"] == str(other) and "Paired bootstrap, DT - " in out
    gt = load_coco_gt(gt_path, labels="contiguous")
    target = [{**t, "image_id": i} for t, i in zip(gt.target, gt.image_ids, strict=True)]
    metrics = []
    for path in (dt_path, other):
        m = MeanAveragePrecision(box_format="xywh", class_metrics=True)
        m.update(list(load_coco_dt(path, gt)), target)
        metrics.append(m)
    paired = metrics[0].bootstrap(n_resamples=200, seed=3, other=metrics[1])
    maps = [cocoeval(gt_path, p, "bbox").stats[0] for p in (dt_path, other)]
    assert comparison["map"]["estimate"] == pytest.approx(maps[0] - maps[1], abs=1e-12)
    for key in KEYS:
        for end in ("estimate", "low", "high"):
            assert comparison[key][end] == pytest.approx(getattr(paired, end)[key], abs=1e-12), (key, end)
    assert comparison["map"]["low"] > 0  # dropping a third of the detections is a real loss


def test_compare_with_itself_is_zero_and_needs_bootstrap(tmp_path: Path) -> None:
    dt_path = demo_files()[1]
    json_path = tmp_path / "m.json"
    code, _, err = run(
        "eval", "--demo", "--bootstrap", "50", "--compare", str(dt_path), "--json", str(json_path)
    )
    assert code == 0, err
    comparison = json.loads(json_path.read_text())["bootstrap_comparison"]
    for key in KEYS:
        assert comparison[key]["estimate"] == comparison[key]["low"] == comparison[key]["high"] == 0.0
    assert all(r["low"] == r["high"] == 0.0 for r in comparison["per_class"])
    code, _, err = run("eval", "--demo", "--compare", str(dt_path))
    assert code == 2 and "add --bootstrap N" in err
    code, _, err = run("eval", "--demo", "--bootstrap", "5", "--compare", str(tmp_path / "missing.json"))
    assert code == 2 and "--compare" in err
