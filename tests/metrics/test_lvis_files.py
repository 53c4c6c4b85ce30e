"""The LVIS file route (objdet.io readers, the metric, ``objdet eval --lvis``) against the LVIS API.

On ``tests/fixtures/lvis/lvis_val_100.json.gz`` (LVIS v0.5 val, 100 images, 1230 categories;
see its README) with results generated from the annotations: jittered GT boxes / masks (some
relabelled), random boxes of the images' negative and not-exhaustive categories, and images
with more than 300 results.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from objdet.cli import main
from objdet.io import load_lvis_dt, load_lvis_gt
from objdet.training.metrics import LVISMeanAveragePrecision
from tests.helpers.lvis_reference import lvis_eval

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated"),
    pytest.mark.filterwarnings("ignore:Encountered more than"),
]

FIXTURE = Path(__file__).parents[1] / "fixtures" / "lvis" / "lvis_val_100.json.gz"
TOL = 1e-9


@cache
def _gt() -> dict:
    with gzip.open(FIXTURE, "rt") as f:
        return json.load(f)


@cache
def _results(iou_type: str, n_images: int) -> list[dict]:
    """Deterministic results for the first ``n_images`` images of the file."""
    gt = _gt()
    rng = np.random.default_rng(1)
    images = gt["images"][:n_images]
    chosen = {img["id"]: img for img in images}
    cats = [c["id"] for c in gt["categories"]]
    out: list[dict] = []
    for ann in gt["annotations"]:
        img = chosen.get(ann["image_id"])
        if img is None:
            continue
        h, w = img["height"], img["width"]
        for _ in range(2):
            cat = ann["category_id"] if rng.random() < 0.8 else int(rng.choice(cats))
            res = {"image_id": img["id"], "category_id": cat, "score": float(np.round(rng.random(), 2))}
            if iou_type == "bbox":
                x, y, bw, bh = ann["bbox"]
                j = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
                res["bbox"] = [x + j[0], y + j[1], max(bw + j[2], 0.5), max(bh + j[3], 0.5)]
            else:
                rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
                mask = np.roll(mask_utils.decode(rle), tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
                enc = mask_utils.encode(np.asfortranarray(mask))
                res["segmentation"] = {"size": enc["size"], "counts": enc["counts"].decode("ascii")}
            out.append(res)
    for k, img in enumerate(images):
        n = 320 if k % 9 == 0 else 15
        listed = img["neg_category_ids"] + img["not_exhaustive_category_ids"]
        for _ in range(n):
            bw, bh = rng.uniform(5, 100, 2)
            x, y = rng.uniform(0, img["width"] - bw), rng.uniform(0, img["height"] - bh)
            cat = int(rng.choice(listed)) if listed and rng.random() < 0.7 else int(rng.choice(cats))
            res = {"image_id": img["id"], "category_id": cat, "score": float(np.round(rng.random(), 2))}
            if iou_type == "bbox":
                res["bbox"] = [x, y, bw, bh]
            else:
                mask = np.zeros((img["height"], img["width"]), np.uint8)
                mask[int(y) : int(y + bh), int(x) : int(x + bw)] = 1
                enc = mask_utils.encode(np.asfortranarray(mask))
                res["segmentation"] = {"size": enc["size"], "counts": enc["counts"].decode("ascii")}
            out.append(res)
    return out


def _subset_gt(n_images: int) -> dict:
    gt = _gt()
    images = gt["images"][:n_images]
    ids = {img["id"] for img in images}
    return {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}


def _ours(gt_dict: dict, results: list[dict], iou_type: str, engine: str) -> LVISMeanAveragePrecision:
    gt = load_lvis_gt(gt_dict, iou_type=iou_type)
    preds = load_lvis_dt(results, gt)
    metric = LVISMeanAveragePrecision(
        box_format=gt.box_format,
        iou_type=iou_type,
        frequencies=gt.frequencies,
        engine=engine,  # type: ignore[arg-type]
    )
    for k in range(0, len(gt.target), 16):
        metric.update(list(preds[k : k + 16]), list(gt.target[k : k + 16]))
    return metric


@cache
def _bbox_reference() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return lvis_eval(_gt(), _results("bbox", 100), "bbox", Path(tmp))[0]


@pytest.mark.parametrize("engine", ["compiled", "torch"])
def test_real_annotations_bbox(engine: str) -> None:
    results = _results("bbox", 100)
    ref = _bbox_reference()
    assert min(ref.values()) > 0
    ours = _ours(_gt(), results, "bbox", engine).lvis_results()
    for key, value in ref.items():
        assert abs(ours[key] - value) <= TOL, f"{key}: {ours[key]} != LVIS API {value}"


def test_real_annotations_segm(tmp_path: Path) -> None:
    gt = _subset_gt(16)  # polygons decoded by both sides; 16 images keep the test short
    results = _results("segm", 16)
    ref, _ = lvis_eval(gt, results, "segm", tmp_path)
    assert ref["AP"] > 0
    ours = _ours(gt, results, "segm", "compiled").lvis_results()
    for key, value in ref.items():
        assert abs(ours[key] - value) <= TOL, f"{key}: {ours[key]} != LVIS API {value}"


def test_cli_lvis_json(tmp_path: Path) -> None:
    gt, results = _subset_gt(40), _results("bbox", 40)
    ref, _ = lvis_eval(gt, results, "bbox", tmp_path)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["eval", "--lvis", str(tmp_path / "gt.json"), str(tmp_path / "dt.json"),
                     "--json", str(tmp_path / "m.json"), "-q"])  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert list(metrics["lvis_results"]) == list(ref)
    for key, value in ref.items():
        assert abs(metrics["lvis_results"][key] - value) <= TOL, key
    assert (
        metrics["map"] == metrics["lvis_results"]["AP"]
        and metrics["map_rare"] == metrics["lvis_results"]["APr"]
    )
    assert len(metrics["map_per_class"]) == len(metrics["classes"]) == len(metrics["class_names"])


def test_cli_lvis_rejects_coco_only_options_and_non_lvis_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gt = _subset_gt(3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(_results("bbox", 3)))
    assert main(["eval", "--lvis", str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), "--tide"]) == 2
    assert "--tide: not available with --lvis" in capsys.readouterr().err
    coco = {
        **gt,
        "images": [{k: v for k, v in img.items() if k != "neg_category_ids"} for img in gt["images"]],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    assert main(["eval", "--lvis", str(tmp_path / "coco.json"), str(tmp_path / "dt.json")]) == 2
    assert "neg_category_ids" in capsys.readouterr().err


def test_load_lvis_gt_checks_the_lists() -> None:
    gt = _subset_gt(2)
    bad = json.loads(json.dumps(gt))
    bad["images"][1]["neg_category_ids"] = [99999]
    with pytest.raises(ValueError, match=r"images\[1\]\['neg_category_ids'\].*99999"):
        load_lvis_gt(bad)
    bad = json.loads(json.dumps(gt))
    bad["categories"][3]["frequency"] = "x"
    with pytest.raises(ValueError, match=r"categories\[3\]\['frequency'\]"):
        load_lvis_gt(bad)
    contiguous = load_lvis_gt(gt, labels="contiguous")
    first = contiguous.target[0]
    cats = sorted(c["id"] for c in gt["categories"])
    image = next(img for img in gt["images"] if img["id"] == contiguous.image_ids[0])
    assert [cats[i] for i in first["neg_category_ids"].tolist()] == image["neg_category_ids"]
    assert set(contiguous.frequencies) == set(range(len(cats)))


def test_benchmark_script_smoke(capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "lvis_bbox.py"
    spec = importlib.util.spec_from_file_location("lvis_bbox_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    times = module.main(["--images", "6"])
    hotcoco = importlib.util.find_spec("hotcoco") is not None  # in the bench extra, not the test one
    assert set(times) == {"objdet", "lvis API LVISEval"} | ({"hotcoco LVISeval"} if hotcoco else set())
    assert "0.0e+00" in capsys.readouterr().out
