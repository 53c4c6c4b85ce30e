"""LVIS federated bbox evaluation: objdet against hotcoco's LVISeval and the LVIS API, in one run.

Synthetic LVIS-shaped data: 5000 images, 1203 categories (rare / common / frequent), about
7 GT per image, 300 scored detections per image (most near a GT, the rest of the image's
negative, not-exhaustive or random categories), per image a few negative and not-exhaustive
categories. Times:

* objdet: ``LVISMeanAveragePrecision(class_metrics=True)``, update in batches of 16 + compute
  (inputs built beforehand);
* hotcoco ``LVISeval`` and the LVIS API (``lvis`` 0.5.3) ``LVISEval``: run() (evaluate,
  accumulate, summarize) on objects built beforehand (their loading is not timed).

Checks that the 13 LVIS numbers agree and reports the metric state's bytes per detection.

    python benchmarks/lvis_bbox.py [--images 5000] [--no-lvis-api]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from objdet.training.metrics import LVISMeanAveragePrecision


def make_data(
    n_images: int, n_classes: int = 1203, n_det: int = 300, seed: int = 0
) -> tuple[dict, list, list, list]:
    """An LVIS GT dict, its results list, and the same data as torchmetrics-format inputs (xywh)."""
    rng = np.random.default_rng(seed)
    freq = rng.choice(["r", "c", "f"], n_classes, p=[0.28, 0.38, 0.34])
    cats = np.arange(1, n_classes + 1)
    popular = rng.permutation(cats)[:300]  # GT classes are skewed to a few hundred categories
    images, anns, results, preds, target = [], [], [], [], []
    ann_id = 1
    for img in range(1, n_images + 1):
        m = int(rng.poisson(7))
        xy = rng.uniform(0, 560, (m, 2))
        wh = np.exp(rng.uniform(np.log(6), np.log(300), (m, 2)))
        gt = np.round(np.concatenate([xy, wh], 1), 2)
        gl = np.where(rng.random(m) < 0.8, rng.choice(popular, m), rng.choice(cats, m))
        absent = np.setdiff1d(cats, gl)
        neg = np.sort(rng.choice(absent, int(rng.integers(0, 8)), replace=False))
        present = np.unique(gl)
        ne = np.sort(rng.choice(present, min(len(present), int(rng.integers(0, 2))), replace=False))
        images.append({"id": img, "height": 640, "width": 640, "neg_category_ids": neg.tolist(),
                       "not_exhaustive_category_ids": ne.tolist()})  # fmt: skip
        for box, label in zip(gt.tolist(), gl.tolist(), strict=True):
            anns.append({"id": ann_id, "image_id": img, "category_id": label, "bbox": box,
                         "area": box[2] * box[3]})  # fmt: skip
            ann_id += 1
        near = int(n_det * 0.6) if m else 0
        src = rng.integers(0, max(m, 1), near)
        dt_near = (
            gt[src] + rng.normal(0, 0.15, (near, 4)) * np.tile(gt[src][:, 2:], 2) if m else np.zeros((0, 4))
        )
        lab_near = np.where(rng.random(near) < 0.7, gl[src] if m else 0, rng.choice(cats, near))
        far = n_det - near
        xy = rng.uniform(0, 560, (far, 2))
        wh = np.exp(rng.uniform(np.log(6), np.log(300), (far, 2)))
        listed = np.concatenate([neg, ne, present])
        lab_far = np.where(
            rng.random(far) < 0.5, rng.choice(listed, far) if len(listed) else 1, rng.choice(cats, far)
        )
        dt = np.concatenate([dt_near, np.concatenate([xy, wh], 1)])
        dt[:, 2:] = np.maximum(dt[:, 2:], 1.0)
        dt = np.round(dt, 2)
        dl = np.concatenate([lab_near, lab_far]).astype(np.int64)
        ds = np.round(rng.random(n_det), 4)
        for box, label, score in zip(dt.tolist(), dl.tolist(), ds.tolist(), strict=True):
            results.append({"image_id": img, "category_id": label, "bbox": box, "score": score})
        preds.append(
            {"boxes": torch.from_numpy(dt), "scores": torch.from_numpy(ds), "labels": torch.from_numpy(dl)}
        )
        target.append({"boxes": torch.from_numpy(gt), "labels": torch.from_numpy(gl.astype(np.int64)),
                       "area": torch.from_numpy(gt[:, 2] * gt[:, 3]), "image_id": img,
                       "neg_category_ids": torch.from_numpy(neg.astype(np.int64)),
                       "not_exhaustive_category_ids": torch.from_numpy(ne.astype(np.int64))})  # fmt: skip
    categories = [
        {"id": int(c), "name": f"c{c}", "frequency": str(f)} for c, f in zip(cats, freq, strict=True)
    ]
    gt_dict = {"images": images, "annotations": anns, "categories": categories}
    return gt_dict, results, preds, target


def run_objdet(gt: dict, preds: list, target: list) -> tuple[float, dict, float]:
    frequencies = {c["id"]: c["frequency"] for c in gt["categories"]}
    metric = LVISMeanAveragePrecision(box_format="xywh", frequencies=frequencies, class_metrics=True)
    t0 = time.perf_counter()
    for k in range(0, len(preds), 16):
        metric.update(preds[k : k + 16], target[k : k + 16])
    metric.compute()
    seconds = time.perf_counter() - t0
    states = ("scores", "labels", "rank", "tp", "ignored")
    n_det = metric._state("macro_scores").shape[0]
    per_det = sum(
        metric._state(f"macro_{s}")[:1].numel() * metric._state(f"macro_{s}").element_size() for s in states
    )
    return seconds, metric.lvis_results(), per_det + 0.0 * n_det


def run_hotcoco(gt_path: Path, results: list) -> tuple[float, dict]:
    import hotcoco

    with contextlib.redirect_stdout(io.StringIO()):
        gt = hotcoco.COCO(str(gt_path))
        dt = gt.load_res(results)
        ev = hotcoco.LVISeval(gt, dt, "bbox")
        t0 = time.perf_counter()
        ev.run()
        seconds = time.perf_counter() - t0
    return seconds, dict(ev.get_results())


def run_lvis_api(gt_path: Path, results: list) -> tuple[float, dict]:
    if not hasattr(np, "float"):
        setattr(np, "float", float)  # noqa: B010  # lvis 0.5.3 needs numpy 1's alias
    try:
        import cv2  # noqa: F401
    except ImportError:
        sys.modules.setdefault("cv2", types.ModuleType("cv2"))  # only lvis.vis draws with it
    import lvis

    logging.getLogger("lvis").setLevel(logging.ERROR)
    gt = lvis.LVIS(str(gt_path))
    dt = lvis.LVISResults(gt, results)
    ev = lvis.LVISEval(gt, dt, "bbox")
    t0 = time.perf_counter()
    ev.run()
    return time.perf_counter() - t0, dict(ev.get_results())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--no-lvis-api", action="store_true", help="skip the (slow) LVIS API")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    gt, results, preds, target = make_data(args.images)
    print(f"{args.images} images, {len(gt['categories'])} categories, {len(gt['annotations'])} GT, "
          f"{len(results)} detections")  # fmt: skip
    _ = run_objdet(gt, preds[:16], target[:16])  # compile and warm up
    t_ours, ours, per_det = run_objdet(gt, preds, target)
    rows = {"objdet": (t_ours, ours)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps(gt))
        if importlib.util.find_spec("hotcoco") is not None:  # a bench extra, not a test dependency
            rows["hotcoco LVISeval"] = run_hotcoco(path, [dict(r) for r in results])
        else:
            print("hotcoco is not installed: its LVISeval is not measured")
        if not args.no_lvis_api:
            rows["lvis API LVISEval"] = run_lvis_api(path, [dict(r) for r in results])
    reference = rows.get("lvis API LVISEval", rows.get("hotcoco LVISeval", rows["objdet"]))[1]
    print(f"state: {per_det:.0f} bytes per detection")
    print(
        f"{'evaluator':<20} {'seconds':>9} {'x objdet':>9}  max |diff| to "
        f"{'LVIS API' if not args.no_lvis_api else 'hotcoco'}"
    )
    for name, (seconds, res) in rows.items():
        diff = max(abs(float(res[k]) - float(reference[k])) for k in reference)
        print(f"{name:<20} {seconds:>9.2f} {seconds / t_ours:>9.1f}  {diff:.1e}")
    return {name: seconds for name, (seconds, _) in rows.items()}


if __name__ == "__main__":
    main()
