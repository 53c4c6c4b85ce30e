"""``objdet eval --tide``: tidecv's numbers on the COCO files, both routes equal, no torch, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from objdet.cli import tide_arrays, tide_json
from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays
from tests.functional.test_tide import TIDECV_COCO100, TIDECV_COCO100_SEGM, max_diff
from tests.helpers.cli_imports import imported_packages
from tests.helpers.coco_segm_reference import coco_segm_json, make_segm_dataset
from tests.helpers.cocoapi_files import BBOX, GT, SEGM, unpack
from tests.helpers.tide_reference import reference_tide, tidecv_available, tidecv_tide
from tests.test_cli import run, write_generated


def _as_numbers(tide: dict, ap: float) -> dict:
    return {"ap": ap, "main": tide["main"], "special": tide["special"]}


def test_coco100_json_and_table(tmp_path: Path) -> None:
    files = unpack(tmp_path / "coco", (GT, BBOX))
    out = tmp_path / "out"
    json_path = tmp_path / "m.json"
    code, stdout, err = run(
        "eval", str(files[GT]), str(files[BBOX]), "--tide", "--json", str(json_path), "--out", str(out)
    )
    assert code == 0, err
    tide = json.loads(json_path.read_text())["tide"]
    assert set(tide) == {"main", "special"}
    assert list(tide["main"]) == ["cls", "loc", "both", "dupe", "bkg", "miss"]
    assert list(tide["special"]) == ["fp", "fn"]
    assert max_diff(_as_numbers(tide, TIDECV_COCO100["ap"]), TIDECV_COCO100) < 1e-9
    assert "AP50 = 64.20" in stdout
    assert "22.25    0.23    0.00    0.02    0.00    8.52" in stdout
    assert (out / "tide.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "metrics.json").read_text())["tide"] == tide
    code, stdout, _ = run("eval", str(files[GT]), str(files[BBOX]), "-q", "--json", str(tmp_path / "n.json"))
    assert "tide" not in json.loads((tmp_path / "n.json").read_text()) and stdout == ""


@pytest.mark.parametrize("seed", [0, 1, 2, 33, 38])
def test_generated_files_equal_the_reference_in_file_order(tmp_path: Path, seed: int) -> None:
    """Images as the GT file lists them (ids not in order), as tidecv: score ties across images count."""
    gt_path, dt_path, _ = write_generated(tmp_path, seed)
    json_path = tmp_path / "m.json"
    for device in ("cpu", "cuda"):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        code, _, err = run(
            "eval", str(gt_path), str(dt_path), "--tide", "-q", "--json", str(json_path), "--device", device
        )
        assert code == 0, err
        tide = json.loads(json_path.read_text())["tide"]
        g = read_gt_arrays(gt_path)
        cpu = tide_arrays(g, read_dt_arrays(dt_path, g))
        assert tide == tide_json(cpu)
    ref = reference_tide(json.loads(gt_path.read_text()), json.loads(dt_path.read_text()))
    assert max_diff(_as_numbers(tide, cpu.ap), ref) < 1e-9
    assert {k: cpu.counts[k] for k in ref["counts"]} == ref["counts"]


@pytest.mark.skipif(not tidecv_available(), reason="tidecv is not installed (not a test dependency)")
@pytest.mark.parametrize("seed", [33, 38])
def test_generated_files_equal_tidecv(tmp_path: Path, seed: int) -> None:
    gt_path, dt_path, _ = write_generated(tmp_path, seed)  # ties across images that change the numbers
    g = read_gt_arrays(gt_path)
    ours = tide_arrays(g, read_dt_arrays(dt_path, g))
    ref = tidecv_tide(json.loads(gt_path.read_text()), json.loads(dt_path.read_text()))
    assert max_diff(_as_numbers(tide_json(ours), ours.ap), ref) < 1e-9


def test_tide_without_plots_imports_no_torch(tmp_path: Path) -> None:
    argv = ["eval", "--demo", "-q", "--tide", "--json", str(tmp_path / "m.json")]
    assert imported_packages([argv], {"torch", "torchmetrics", "lightning", "matplotlib"}) == []
    assert set(json.loads((tmp_path / "m.json").read_text())["tide"]) == {"main", "special"}


@pytest.mark.parametrize(
    "option, expected",
    [
        (["--tide-pos-threshold", "0"], "--tide-pos-threshold: expected a value in (0, 1], got 0.0"),
        (["--tide-bg-threshold", "0.7"], "--tide-bg-threshold: expected a value in [0, 0.5]"),
    ],
)
def test_bad_tide_options(option: list[str], expected: str) -> None:
    code, _, err = run("eval", "--demo", "--tide", *option)
    assert code == 2
    assert err.startswith("objdet: error: ") and expected in err and err.count("\n") == 1


def test_the_device_route_reads_the_columns_itself(tmp_path: Path) -> None:
    """With --device cuda the evaluation reads no columns: run_tide reads them (same numbers)."""
    from objdet.cli import Evaluation, build_parser, run_tide

    gt_path, dt_path, _ = write_generated(tmp_path, 1)
    args = build_parser().parse_args(["eval", str(gt_path), str(dt_path), "--tide"])
    evaluation = Evaluation(metrics={}, stats=[], class_table=[], class_names=[], confusion=None, curves=None)
    table, _ = run_tide(args, evaluation, None)
    g = read_gt_arrays(gt_path)
    assert evaluation.metrics["tide"] == tide_json(tide_arrays(g, read_dt_arrays(dt_path, g)))
    assert table.startswith("TIDE (box IoU: foreground 0.5, background 0.1)")


def test_coco100_masks_equal_tidecv_on_both_routes(tmp_path: Path) -> None:
    """--iou-type segm --tide: tidecv's mask mode on the real segm results, CPU and torch routes."""
    files = unpack(tmp_path / "coco", (GT, SEGM))
    out = tmp_path / "out"
    tides = []
    for device in ("cpu", None):
        json_path = tmp_path / f"m_{device}.json"
        argv = ["eval", str(files[GT]), str(files[SEGM]), "--iou-type", "segm", "--tide"]
        argv += [
            "--json",
            str(json_path),
            *(["--device", device, "--no-plots"] if device else ["--out", str(out)]),
        ]
        code, stdout, err = run(*argv)
        assert code == 0, err
        tides.append(json.loads(json_path.read_text())["tide"])
        assert "TIDE (mask IoU: foreground 0.5, background 0.1); AP50 = 51.80" in stdout
        assert "16.19   11.60    1.01    0.00    0.27    7.78" in stdout
    assert tides[0] == tides[1]
    assert max_diff(_as_numbers(tides[0], TIDECV_COCO100_SEGM["ap"]), TIDECV_COCO100_SEGM) < 1e-9
    assert (out / "tide.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("seed", [0, 4])
def test_generated_mask_files_equal_the_reference(tmp_path: Path, seed: int) -> None:
    """Results without 'bbox', polygon and crowd RLE GTs, images listed out of id order."""
    dataset, results = coco_segm_json(make_segm_dataset(seed, n_images=10))
    dataset["images"] = dataset["images"][::-1]  # TIDE takes images in file order (score ties)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(dataset))
    dt_path.write_text(json.dumps(results))
    g = read_gt_arrays(gt_path, iou_type=("bbox", "segm"))
    ours = tide_arrays(g, read_dt_arrays(dt_path, g), iou_type="segm")
    ref = reference_tide(dataset, results, iou_type="segm")
    assert max_diff(_as_numbers(tide_json(ours), ours.ap), ref) < 1e-9
    assert {k: ours.counts[k] for k in ref["counts"]} == ref["counts"]
    boxes = tide_arrays(g, read_dt_arrays(dt_path, g), iou_type="bbox")  # the boxes taken from the masks
    assert tide_json(boxes) != tide_json(ours)
    json_path = tmp_path / "m.json"
    code, _, err = run(
        "eval", str(gt_path), str(dt_path), "--iou-type", "segm", "--tide", "-q", "--json", str(json_path)
    )
    assert code == 0, err
    assert json.loads(json_path.read_text())["tide"] == tide_json(ours)


def test_worst_images_and_label_errors_equal_the_tide_metric(tmp_path: Path) -> None:
    """--worst-images / --label-errors: the rows of TIDE.worst_images / label_error_candidates, same data."""
    from objdet.data import demo_files
    from objdet.io import load_coco_dt, load_coco_gt
    from objdet.training.metrics import TIDE

    gt_path, dt_path = demo_files()
    json_path = tmp_path / "m.json"
    code, stdout, err = run(
        "eval", str(gt_path), str(dt_path), "--tide", "--worst-images", "6", "--label-errors", "5",
        "--conf-threshold", "0.3", "--json", str(json_path),
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads(json_path.read_text())
    gt = load_coco_gt(gt_path)
    preds = load_coco_dt(dt_path, gt)
    metric = TIDE(box_format="xywh")  # the demo ids are in file order: the ties of the command line
    target = [dict(t, image_id=i) for t, i in zip(gt.target, gt.image_ids, strict=True)]
    metric.update(list(preds), target)
    worst = metric.worst_images(k=6, conf_threshold=0.3)
    assert [r["image_id"] for r in metrics["worst_images"]] == worst["image"].tolist()
    for key in ("errors", "cls", "loc", "both", "dupe", "bkg", "miss", "tp", "fp", "fn"):
        assert [r[key] for r in metrics["worst_images"]] == worst[key].tolist(), key
    assert [r["f1"] for r in metrics["worst_images"]] == pytest.approx(worst["f1"].tolist())
    cand = metric.label_error_candidates(min_score=0.3, max_candidates=5)
    rows = metrics["label_error_candidates"]
    assert [r["image_id"] for r in rows] == cand["image"].tolist()
    assert [r["score"] for r in rows] == pytest.approx(cand["score"].tolist())
    assert [r["category_id"] for r in rows] == cand["label"].tolist()  # labels are category ids here
    assert [r["gt_category_id"] if r["gt_category_id"] is not None else -1 for r in rows] == cand[
        "gt_label"
    ].tolist()
    dt = json.loads(dt_path.read_text())
    for r in rows:  # the index points at the result in the file
        assert (
            dt[r["result_index"]]["image_id"] == r["image_id"]
            and dt[r["result_index"]]["score"] == r["score"]
        )
    assert "worst images by TIDE errors" in stdout and "label-error candidates" in stdout


def test_worst_images_needs_tide() -> None:
    code, _, err = run("eval", "--demo", "--worst-images", "3")
    assert code == 2 and "--worst-images reads TIDE's error types: add --tide" in err
    code, _, err = run("eval", "--demo", "--tide", "--label-errors", "-1")
    assert code == 2 and "--label-errors: expected a non-negative integer" in err
