"""``objdet eval``: numbers equal to pycocotools on files, outputs written, bad files rejected in one line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from objdet.cli import Progress, main
from objdet.data import demo_files
from objdet.functional.coco import coco_stat_names
from objdet.io.coco_arrays import CocoInputWarning
from tests.helpers.cli_imports import imported_packages
from tests.helpers.coco_reference import make_dataset

STAT_KEYS = coco_stat_names()
PNGS = [
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "pr_curves.png",
    "f1_confidence.png",
    "ap_per_class.png",
]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def cocoeval(gt_path: Path, dt_path: Path, iou_type: str) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def per_class_ap(ev: COCOeval) -> dict[int, float]:
    """pycocotools' AP@[.5:.95] of each category alone (area all, maxDets 100)."""
    out = {}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        out[cat] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return out


def write_generated(tmp_path: Path, seed: int) -> tuple[Path, Path, dict[int, int]]:
    """A generated data set as COCO files with arbitrary image and category ids."""
    images = make_dataset(seed, n_images=12, n_classes=4, max_gt=10)
    cat_of = {c: 100 + 7 * c for c in range(4)}
    gt_anns, results, imgs = [], [], []
    for i, im in enumerate(images):
        image_id = 5000 - 3 * i  # not in file order
        imgs.append({"id": image_id, "width": 640, "height": 480})
        for j in range(len(im.gt_boxes)):
            box = im.gt_boxes[j].tolist()
            area = float(im.gt_area[j]) if im.gt_area is not None and im.gt_area[j] > 0 else box[2] * box[3]
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": image_id,
                    "category_id": cat_of[int(im.gt_labels[j]) % 4],
                    "bbox": box,
                    "area": area,
                    "iscrowd": int(im.gt_crowd[j]),
                }
            )
        for j in range(len(im.dt_boxes)):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": cat_of[int(im.dt_labels[j]) % 4],
                    "bbox": im.dt_boxes[j].tolist(),
                    "score": float(im.dt_scores[j]),
                }
            )
    cats = [{"id": cat_of[c], "name": f"thing{c}"} for c in range(4)]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps({"images": imgs, "annotations": gt_anns, "categories": cats}))
    dt_path.write_text(json.dumps(results))
    n_gt = {
        cat: sum(1 for a in gt_anns if a["category_id"] == cat and not a["iscrowd"])
        for cat in cat_of.values()
    }
    return gt_path, dt_path, n_gt


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_files_equal_pycocotools(tmp_path: Path, seed: int) -> None:
    gt_path, dt_path, n_gt = write_generated(tmp_path, seed)
    code, out, err = run("eval", str(gt_path), str(dt_path), "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    ev = cocoeval(gt_path, dt_path, "bbox")
    np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)
    reference = per_class_ap(ev)
    got = dict(zip(metrics["classes"], metrics["map_per_class"], strict=True))
    assert set(got) <= set(reference)
    for cat, value in got.items():
        assert value == pytest.approx(reference[cat], abs=1e-9)
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.shape == (5, 5)
    # rows are ground truth: each class row sums to its non-crowd GT count in the file
    cats = sorted(n_gt)
    assert matrix[:4].sum(1).tolist() == [n_gt[c] for c in cats]
    assert metrics["confusion_matrix"]["labels"] == ["thing0", "thing1", "thing2", "thing3", "background"]
    # the printed summary carries the same numbers as pycocotools' summarize()
    assert f"maxDets=100 ] = {ev.stats[0]:0.3f}" in out
    assert not err


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_demo_equals_pycocotools_and_writes_plots(tmp_path: Path, iou_type: str) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = run("eval", "--demo", "--iou-type", iou_type, "--out", str(out_dir))
    assert code == 0
    metrics = json.loads((out_dir / "metrics.json").read_text())
    gt_path, dt_path = demo_files()
    ev = cocoeval(gt_path, dt_path, iou_type)
    np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)
    assert metrics["class_names"] == ["circle", "square", "triangle", "diamond", "star"]
    for name in PNGS:
        data = (out_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
    assert not list(out_dir.glob(".*tmp"))
    umask = os.umask(0)
    os.umask(umask)
    assert (out_dir / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it
    for name in ("circle", "star", f"COCO {iou_type} evaluation", "wrote"):
        assert name in out


def test_quiet_class_names_and_no_plots(tmp_path: Path) -> None:
    names = ["a", "b", "c", "d", "e"]
    code, out, err = run(
        "eval", "--demo", "-q", "--no-plots", "--out", str(tmp_path), "--class-names", *names
    )
    assert code == 0 and out == "" and err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["class_names"] == names
    assert [row["class"] for row in metrics["per_class"]] == names


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[object, object, str]]:
    gt = json.loads(demo_files()[0].read_text())
    dt = json.loads(demo_files()[1].read_text())
    no_annotations = {k: v for k, v in gt.items() if k != "annotations"}
    bad_image = [dict(dt[0], image_id=987654), *dt[1:]]
    bad_category = [*dt[:3], dict(dt[3], category_id=42)]
    bad_box = [*dt[:5], dict(dt[5], bbox=[1.0, 2.0, 3.0])]
    no_score = [*dt[:2], {k: v for k, v in dt[2].items() if k != "score"}]
    string_box = [*dt[:4], dict(dt[4], bbox=[str(v) for v in dt[4]["bbox"]]), *dt[5:]]
    string_score = [*dt[:6], dict(dt[6], score=str(dt[6]["score"])), *dt[7:]]
    return {
        "invalid json": ("{", dt, "invalid JSON"),
        "missing key": (no_annotations, dt, "annotations"),
        "unknown image": (gt, bad_image, "987654"),
        "unknown category": (gt, bad_category, "42"),
        "malformed bbox": (gt, bad_box, "bbox"),
        "missing score": (gt, no_score, "score"),
        "bbox as strings": (gt, string_box, "results[4]['bbox'] must be 4 finite numbers"),
        "score as a string": (gt, string_score, "results[6]['score'] must be a number, got '"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "invalid json",
        "missing key",
        "unknown image",
        "unknown category",
        "malformed bbox",
        "missing score",
        "bbox as strings",
        "score as a string",
    ],
)
def test_bad_files_give_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    gt, dt, expected = _bad_inputs(tmp_path)[case]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(gt if isinstance(gt, str) else json.dumps(gt))
    dt_path.write_text(dt if isinstance(dt, str) else json.dumps(dt))
    out_dir, json_path = tmp_path / "out", tmp_path / "metrics.json"
    code, out, err = run("eval", str(gt_path), str(dt_path), "--out", str(out_dir), "--json", str(json_path))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("objdet: error: ") and expected in err, err
    assert out == ""
    assert not out_dir.exists() and not json_path.exists()  # nothing half-written


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "missing.json", "missing2.json"], "no such file"),
        (["eval", "--demo", "--class-names", "a", "b"], "--class-names: expected 5 names"),
        (["eval", "--demo", "--device", "tpu"], "--device"),
        (["eval"], "expected GT.json and DT.json"),
        (["eval", "--demo", "--iou-threshold", "1.5"], "--iou-threshold"),
    ],
)
def test_bad_arguments(argv: list[str], expected: str) -> None:
    code, _, err = run(*argv)
    assert code == 2 and err.startswith("objdet: error: ") and expected in err, err


def test_progress_bar_on_a_terminal_only_after_its_delay() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = Progress(10, stream, delay=0.0)
    bar.update(5)
    bar.close()
    assert "5/10 images" in stream.getvalue() and stream.getvalue().endswith("\n")
    slow = Tty()
    bar = Progress(10, slow, delay=60.0)
    bar.update(5)
    bar.close()
    assert slow.getvalue() == ""


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "objdet", "eval", "--demo", "-q", "--json", str(tmp_path / "m.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["n_images"] == 48
    bad = subprocess.run(
        [sys.executable, "-m", "objdet", "eval", str(tmp_path / "nope.json"), str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.strip().endswith("no such file")


def test_single_category_file_equals_pycocotools(tmp_path: Path) -> None:
    # one class: the metric's compute() gives 0-d `classes` / `map_per_class` (torchmetrics squeezes)
    gt = {
        "images": [{"id": 3, "height": 50, "width": 50}, {"id": 9, "height": 50, "width": 50}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 17, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 9, "category_id": 17, "bbox": [5, 5, 20, 8], "area": 160, "iscrowd": 0},
        ],
        "categories": [{"id": 17, "name": "only"}],
    }
    dt = [
        {"image_id": 3, "category_id": 17, "bbox": [2, 3, 10, 10], "score": 0.9},
        {"image_id": 9, "category_id": 17, "bbox": [30, 30, 5, 5], "score": 0.8},
    ]
    gt_path, dt_path, json_path = tmp_path / "gt.json", tmp_path / "dt.json", tmp_path / "m.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    code, _, err = run("eval", str(gt_path), str(dt_path), "--json", str(json_path))
    assert code == 0, err
    metrics = json.loads(json_path.read_text())
    ev = cocoeval(gt_path, dt_path, "bbox")
    np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)
    assert metrics["classes"] == [17] and metrics["class_names"] == ["only"]
    assert metrics["map_per_class"] == pytest.approx([per_class_ap(ev)[17]], abs=1e-9)


def _segm_files(gt_size: bool, gt_segm: dict, dt_segm: dict, categories: bool = True) -> tuple[dict, list]:
    image: dict = {"id": 1, "height": 4, "width": 4} if gt_size else {"id": 1}
    gt = {
        "images": [image],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 5,
                "bbox": [0, 0, 2, 2],
                "area": 4,
                "segmentation": gt_segm,
            }
        ]
        if categories
        else [],
        "categories": [{"id": 5, "name": "a"}] if categories else [],
    }
    dt = [{"image_id": 1, "category_id": 5, "score": 0.5, "segmentation": dt_segm}] if categories else []
    return gt, dt


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("invalid compressed RLE", "results of image 1: a compressed RLE 'segmentation' is invalid"),
        ("results sized unlike the GT", "the 'segmentation' sizes of one image differ ([4, 4] and [2, 2])"),
        ("negative uncompressed counts", "must be integers >= 0"),
        ("no categories", "has no 'categories'"),
    ],
)
def test_bad_segm_files_give_one_line_and_exit_2(tmp_path: Path, case: str, expected: str) -> None:
    full = {"size": [4, 4], "counts": [16]}
    gt, dt = {
        "invalid compressed RLE": _segm_files(True, full, {"size": [4, 4], "counts": "!!!!"}),
        "results sized unlike the GT": _segm_files(
            False, {"size": [4, 4], "counts": [16]}, {"size": [2, 2], "counts": [4]}
        ),
        "negative uncompressed counts": _segm_files(True, full, {"size": [4, 4], "counts": [20, -4]}),
        "no categories": _segm_files(True, full, full, categories=False),
    }[case]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    out_dir, json_path = tmp_path / "out", tmp_path / "metrics.json"
    code, out, err = run(
        "eval",
        str(gt_path),
        str(dt_path),
        "--iou-type",
        "segm",
        "--out",
        str(out_dir),
        "--json",
        str(json_path),
    )
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("objdet: error: ") and expected in err, err
    assert out == ""
    assert not out_dir.exists() and not json_path.exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--iou-threshold", "0"], "--iou-threshold: expected a value in (0, 1], got 0.0"),
        (["--conf-threshold", "nan"], "--conf-threshold: expected a number, got nan"),
        (["--out", "FILE"], "is a file, expected a directory"),
        (["--json", "DIR"], "is a directory, expected a file name"),
    ],
)
def test_bad_options_are_caught_before_evaluating(tmp_path: Path, option: list[str], expected: str) -> None:
    (tmp_path / "FILE").write_text("keep")
    (tmp_path / "DIR").mkdir()
    option = [str(tmp_path / o) if o in ("FILE", "DIR") else o for o in option]
    code, out, err = run("eval", "--demo", "--json", str(tmp_path / "m.json"), *option)
    assert code == 2 and err.count("\n") == 1 and err.startswith("objdet: error: ") and expected in err, err
    assert out == "" and not (tmp_path / "m.json").exists()
    assert (tmp_path / "FILE").read_text() == "keep" and not list((tmp_path / "DIR").iterdir())


# ----------------------------------------------------------------------------- the CPU route
def _torch_route(gt_path: Path, dt_path: Path, iou_type: str, skip_unknown_categories: bool = False) -> dict:
    """The metrics of the torch route (MeanAveragePrecision + ConfusionMatrix), as --device cuda runs it."""
    from objdet.cli import evaluate
    from objdet.io import load_coco_dt, load_coco_gt

    types = ("bbox",) if iou_type == "bbox" else ("bbox", iou_type)
    gt = load_coco_gt(gt_path, iou_type=types, labels="contiguous")
    preds = load_coco_dt(dt_path, gt, skip_unknown_categories=skip_unknown_categories)
    return evaluate(gt, preds, iou_type=iou_type, plots=False).metrics


def _cpu_route(gt_path: Path, dt_path: Path, iou_type: str) -> dict:
    from objdet.cli import evaluate_arrays
    from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays

    types = ("bbox",) if iou_type == "bbox" else ("bbox", iou_type)
    gt = read_gt_arrays(gt_path, iou_type=types)
    return evaluate_arrays(gt, read_dt_arrays(dt_path, gt), iou_type=iou_type, plots=False).metrics


def _with_empty_images(gt_path: Path) -> None:
    """Images without GT and without detections, ids between and around the others."""
    gt = json.loads(gt_path.read_text())
    gt["images"] += [{"id": i, "width": 640, "height": 480} for i in (1, 4968, 4999, 10**6)]
    gt_path.write_text(json.dumps(gt))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_route_equals_the_torch_route_and_pycocotools(tmp_path: Path, seed: int) -> None:
    gt_path, dt_path, _ = write_generated(tmp_path, seed)  # arbitrary ids, crowds, tied scores
    _with_empty_images(gt_path)
    ours = _cpu_route(gt_path, dt_path, "bbox")
    assert ours == _torch_route(gt_path, dt_path, "bbox")
    ev = cocoeval(gt_path, dt_path, "bbox")
    np.testing.assert_allclose([ours[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)
    reference = per_class_ap(ev)
    for cat, value in zip(ours["classes"], ours["map_per_class"], strict=True):
        assert value == pytest.approx(reference[cat], abs=1e-9)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_cpu_route_equals_the_torch_route_on_the_demo(iou_type: str) -> None:
    gt_path, dt_path = demo_files()
    assert _cpu_route(gt_path, dt_path, iou_type) == _torch_route(gt_path, dt_path, iou_type)


def test_segm_only_results_past_255_equal_pycocotools(tmp_path: Path) -> None:
    # Regression: more than 255 results without 'bbox' crashed (pycocotools' mask.area on all of
    # them at once: "OverflowError: Python integer 734 out of bounds for uint8" under numpy 2).
    from tests.helpers.coco_segm_reference import coco_segm_json, make_segm_dataset

    dataset, results = coco_segm_json(make_segm_dataset(3, n_images=40))
    assert len(results) > 255 and not any("bbox" in r for r in results)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(dataset))
    dt_path.write_text(json.dumps(results))
    for iou_type in ("segm", "bbox"):  # loadRes gives such results toBbox boxes and mask.area areas
        json_path = tmp_path / f"{iou_type}.json"
        code, _, err = run(
            "eval", str(gt_path), str(dt_path), "--iou-type", iou_type, "--json", str(json_path)
        )
        assert code == 0, err
        metrics = json.loads(json_path.read_text())
        ev = cocoeval(gt_path, dt_path, iou_type)
        np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)
        assert metrics == {**_torch_route(gt_path, dt_path, iou_type), "files": metrics["files"]}


def test_segm_results_whose_bbox_is_not_their_mask_box_equal_pycocotools(tmp_path: Path) -> None:
    """Mask IoU skips pairs whose mask boxes do not overlap (rleIou's test): those boxes, not a
    result's 'bbox' (here a 2 x 3 box in a corner, which also sets the result's area)."""
    from tests.helpers.coco_segm_reference import coco_segm_json, make_segm_dataset

    dataset, results = coco_segm_json(make_segm_dataset(5, n_images=30))
    for k, r in enumerate(results):
        r["bbox"] = [float(k % 3), 0.0, 2.0, 3.0]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(dataset))
    dt_path.write_text(json.dumps(results))
    json_path = tmp_path / "m.json"
    code, _, err = run("eval", str(gt_path), str(dt_path), "--iou-type", "segm", "--json", str(json_path))
    assert code == 0, err
    metrics = json.loads(json_path.read_text())
    ev = cocoeval(gt_path, dt_path, "segm")
    assert ev.stats[0] > 0  # the masks match: the boxes would not
    np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)


def test_no_plots_run_imports_no_torch(tmp_path: Path) -> None:
    no_plots = ["eval", "--demo", "-q", "--no-plots", "--out", str(tmp_path)]
    segm = ["eval", "--demo", "-q", "--iou-type", "segm", "--json", str(tmp_path / "s.json")]
    assert imported_packages([no_plots, segm], {"torch", "torchmetrics", "lightning", "matplotlib"}) == []
    # nor scipy, which numba imports unless started by objdet.cli._start_numba (mask readers call numba)
    assert imported_packages([segm], {"scipy"}) == []


def test_the_demo_with_its_plots_imports_no_torch(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    argv = ["eval", "--demo", "-q", "--out", str(out), "--fbeta", "2"]
    assert imported_packages([argv], {"torch", "torchmetrics", "lightning"}) == []
    pngs = {"confusion_matrix", "confusion_matrix_normalized", "pr_curves", "f1_confidence", "ap_per_class"}
    assert {p.stem for p in out.glob("*.png")} == pngs | {"f2_confidence"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["fbeta"]["best"] <= 1


def test_an_empty_compile_cache_is_said_once_and_a_filled_one_not(tmp_path: Path) -> None:
    # a numba cache of its own: the first process compiles (and says so), the second loads
    script = "from objdet.cli import _start_numba\n_start_numba(notice=print)\nprint('started')\n"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    from objdet.cli import COMPILING_NOTICE

    assert runs[0].stdout.splitlines() == [COMPILING_NOTICE, "started"]
    assert runs[1].stdout.splitlines() == ["started"]
    # without the JIT (debugging: NUMBA_DISABLE_JIT=1) nothing compiles and nothing is said
    plain = {**env, "NUMBA_DISABLE_JIT": "1"}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=plain
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["started"]


def test_the_compile_helper_compiles_what_the_run_then_loads(tmp_path: Path) -> None:
    # the helper's kernels on an empty cache of their own; then a run of the command and of the
    # metric on that cache must find them there (the same argument types), never compile them
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    helper = "from objdet.functional.compile_helper import compile_accumulate_kernels as c\nc()\n"
    proc = subprocess.run(
        [sys.executable, "-c", helper], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr
    gt_path, dt_path, _ = write_generated(tmp_path, 5)
    run = (
        "from objdet.cli import main\n"
        "from objdet.functional.coco_cpu import _accumulate_labels\n"
        "from objdet.training.metrics import MeanAveragePrecision\n"
        "from tests.helpers.coco_reference import make_dataset, to_torch\n"
        f"assert main(['eval', {str(gt_path)!r}, {str(dt_path)!r}, '-q']) == 0\n"
        "metric = MeanAveragePrecision(box_format='xywh', class_metrics=True)\n"
        "metric.update(*to_torch(make_dataset(3, n_images=8), 'xywh'))\n"
        "metric.compute()\n"
        "stats = _accumulate_labels.stats\n"
        "print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))\n"
    )
    # LOCAL_RANK=1: this process starts no helper of its own
    proc = subprocess.run(
        [sys.executable, "-c", run],
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "LOCAL_RANK": "1"},
        cwd=Path(__file__).resolve().parents[1],  # the repository: tests.helpers
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "0"]  # loaded once (the metric reuses it), never compiled


def test_progress_note_takes_a_line_of_its_own() -> None:
    stream = io.StringIO()
    bar = Progress(10, stream, delay=0.0)
    bar.update(3)
    bar.note("compiling")
    bar.close()  # the note ended the bar's line: nothing more to end
    assert re.fullmatch(
        r"\revaluating \[#{9}\.{21}\] 3/10 images \([\d,]+/s\)\ncompiling\n", stream.getvalue()
    )
    assert Progress(10, None).note("quiet") is None  # no terminal: nothing written, no error


def test_public_names_still_import() -> None:
    import objdet.io
    import objdet.ops

    for module in (objdet.io, objdet.ops):
        for name in module.__all__:
            assert getattr(module, name) is not None
    from objdet.io import CocoGroundTruth, load_coco_gt  # noqa: F401
    from objdet.ops import box_iou, mask_iou  # noqa: F401

    with pytest.raises(AttributeError):
        objdet.ops.nothing_here  # noqa: B018


def test_cli_constants_are_pycocotools_defaults() -> None:
    from objdet import cli
    from objdet.functional.coco import AREA_RANGES, default_iou_thresholds, default_rec_thresholds

    assert cli._STAT_KEYS == STAT_KEYS
    assert cli._IOU_THRESHOLDS.tolist() == default_iou_thresholds()
    assert cli._REC_THRESHOLDS.tolist() == default_rec_thresholds()
    assert cli._AREA_RANGES.tolist() == [list(r) for r in AREA_RANGES]


def test_rle_check_agrees_with_pycocotools_on_valid_masks() -> None:
    from pycocotools import mask as mask_utils

    from objdet.ops.rle_cpu import rle_string_valid

    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        mask = np.asfortranarray(rng.random((h, w)) < rng.random(), dtype=np.uint8)
        counts = mask_utils.encode(mask)["counts"]
        assert rle_string_valid(np.frombuffer(counts, np.uint8), h * w)
    for bad in (b"!!!!", b"d0", b"P1", b"33307"):  # pycocotools: "Invalid RLE mask representation" at 4 x 4
        assert not rle_string_valid(np.frombuffer(bad, np.uint8), 16)


def test_first_contact_help_version_usage_and_what_the_lines_say(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("objdet ")
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "mask IoU" in help_text and "--iou-type" in help_text  # the option says what it does
    code, _, err = run("eval")
    assert code == 2 and "usage: objdet eval GT.json DT.json" in err and "--help" in err
    code, out, _ = run("eval", "--demo")
    assert code == 0
    assert "(P/R/F1 at score >= 0.25, box IoU >= 0.5)" in out
    assert "files read in" in out and "(imports included)" in out and "evaluated in" in out
    code, out, _ = run("eval", "--demo", "--iou-type", "segm", "--iou-threshold", "0.6")
    assert code == 0 and "(P/R/F1 at score >= 0.25, box IoU >= 0.6, from the boxes)" in out


def _demo_with(tmp_path: Path, gt: dict | None = None, dt: list | None = None) -> tuple[Path, Path]:
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt) if gt is not None else demo_files()[0].read_text())
    dt_path.write_text(json.dumps(dt) if dt is not None else demo_files()[1].read_text())
    return gt_path, dt_path


def test_numbers_written_as_strings_say_so(tmp_path: Path) -> None:
    dt = json.loads(demo_files()[1].read_text())
    dt[0]["score"] = "0.9"
    gt_path, dt_path = _demo_with(tmp_path, dt=dt)
    code, _, err = run("eval", str(gt_path), str(dt_path))
    assert code == 2
    assert f"{dt_path}: results[0]['score'] must be a number, got '0.9'" in err
    assert "numbers written as strings" in err and "pycocotools cannot read them either" in err


def test_suspicious_input_warns_on_one_line_and_is_evaluated(tmp_path: Path) -> None:
    gt = json.loads(demo_files()[0].read_text())
    no_results = _demo_with(tmp_path, dt=[])

    def warnings_of(gt_path: Path, dt_path: Path, *extra: str) -> tuple[list[str], dict]:
        code, _, err = run("eval", str(gt_path), str(dt_path), "--json", str(tmp_path / "m.json"), *extra)
        assert code == 0, err
        return err.splitlines(), json.loads((tmp_path / "m.json").read_text())

    lines, metrics = warnings_of(*no_results, "-q")  # warnings are shown with --quiet too
    assert lines == [
        f"objdet: warning: {no_results[1]}: the results list is empty: no detections, so every class with "
        "ground truth gets AP and AR 0"
    ]
    assert metrics["map"] == 0.0
    no_annotations = _demo_with(tmp_path, gt=dict(gt, annotations=[]))
    lines, metrics = warnings_of(*no_annotations)
    assert lines == [
        f"objdet: warning: {no_annotations[0]}: the ground truth's 'annotations' is empty: no class has "
        "ground truth, so every AP and AR will be -1"
    ]
    assert metrics["map"] == -1.0


def test_unknown_categories_are_an_error_or_skipped_as_pycocotools_does(tmp_path: Path) -> None:
    dt = json.loads(demo_files()[1].read_text())
    for k, cat in ((3, 42), (10, 42), (20, -7)):
        dt[k]["category_id"] = cat
    gt_path, dt_path = _demo_with(tmp_path, dt=dt)
    code, out, err = run("eval", str(gt_path), str(dt_path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{dt_path}: results[3]['category_id'] = 42 is not in the GT 'categories'" in err
    assert "3 of 237 results have such a category_id: ids [-7, 42]" in err
    assert "--skip-unknown-categories skips such results" in err
    json_path = tmp_path / "m.json"
    code, out, err = run(
        "eval", str(gt_path), str(dt_path), "--skip-unknown-categories", "--json", str(json_path)
    )
    assert code == 0, err
    assert err == (
        f"objdet: warning: {dt_path}: skipped 3 of 237 results whose 'category_id' is not in the GT "
        "'categories': ids [-7, 42]\n"
    )
    ev = cocoeval(gt_path, dt_path, "bbox")  # pycocotools evaluates the GT's categories only
    metrics = json.loads(json_path.read_text())
    np.testing.assert_allclose([metrics[k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9)
    with pytest.warns(CocoInputWarning, match=r"skipped 3 of 237 results .* ids \[-7, 42\]"):
        torch_route = _torch_route(gt_path, dt_path, "bbox", skip_unknown_categories=True)
    assert metrics == {**torch_route, "files": metrics["files"]}


def test_help_imports_no_heavy_module() -> None:
    script = (
        "import sys\n"
        "from objdet.cli import main\n"
        "try:\n"
        "    main(['eval', '--help'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0\n"
        "heavy = {'torch', 'numba', 'matplotlib', 'scipy', 'msgspec', 'pycocotools', 'lightning'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("[]"), proc.stdout


def test_slices_equal_pycocotools_on_their_images_in_both_routes(tmp_path: Path) -> None:
    from objdet.cli import evaluate, read_slices
    from objdet.io import load_coco_dt, load_coco_gt

    gt_path, dt_path, _ = write_generated(tmp_path, 3)
    _with_empty_images(gt_path)
    ids = [im["id"] for im in json.loads(gt_path.read_text())["images"]]
    chosen = {"odd": ids[1::2], "few": ids[:3], "empty ones": [1, 4999]}
    (tmp_path / "slices.json").write_text(json.dumps(chosen))
    code, out, err = run("eval", str(gt_path), str(dt_path), "--slices", str(tmp_path / "slices.json"),
                         "--json", str(tmp_path / "m.json"))  # fmt: skip
    assert code == 0, err
    got = json.loads((tmp_path / "m.json").read_text())["slices"]
    assert list(got) == list(chosen)
    for name, image_ids in chosen.items():
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(gt_path))
            ev = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
            ev.params.imgIds = sorted(image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        np.testing.assert_allclose(
            [got[name][k] for k in STAT_KEYS], ev.stats, rtol=0, atol=1e-9, err_msg=name
        )
        assert got[name]["n_images"] == len(image_ids)
        reference = per_class_ap(ev)
        for cat, value in zip(got[name]["classes"], got[name]["map_per_class"], strict=True):
            assert value == pytest.approx(reference[cat], abs=1e-9), (name, cat)
    assert "odd" in out and "slice" in out.split("\n\n")[-2]
    # the torch route (MeanAveragePrecision.compute_slices) gives the same, in float32
    gt = load_coco_gt(gt_path, labels="contiguous")
    torch_slices = evaluate(
        gt, load_coco_dt(dt_path, gt), plots=False, slices=read_slices(tmp_path / "slices.json", gt.image_ids)
    ).metrics["slices"]
    for name, values in got.items():
        assert torch_slices[name]["classes"] == values["classes"]
        np.testing.assert_allclose(
            [torch_slices[name][k] for k in STAT_KEYS], [values[k] for k in STAT_KEYS], atol=1e-6
        )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": [5000, 123]}', "slice 'a' names 1 image id(s) not in the GT 'images': [123]"),
        ('{"a": ["5000"]}', "slice 'a' must be a list of int image ids"),
        ("[1, 2]", 'must hold a JSON object {"name": [image ids], ...}'),
        ("{", "cannot read"),
    ],
)
def test_bad_slice_files_give_one_line(tmp_path: Path, content: str, expected: str) -> None:
    gt_path, dt_path, _ = write_generated(tmp_path, 0)
    (tmp_path / "s.json").write_text(content)
    code, _, err = run("eval", str(gt_path), str(dt_path), "--slices", str(tmp_path / "s.json"))
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_a_reader_that_goes_away_stops_the_printing_not_the_run(tmp_path: Path) -> None:
    # `objdet eval ... | head`: the pipe is closed before the first line; the files are still written
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "objdet", "eval", "--demo", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert len(list(out.glob("*.png"))) == 5 and (out / "metrics.json").exists()
