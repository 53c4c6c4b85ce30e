"""The LVIS API (``lvis`` 0.5.3) as the reference, and generated federated LVIS cases.

``lvis`` 0.5.3 uses ``np.float`` (removed in numpy 2): :func:`lvis_api` sets that alias first.
Its package ``__init__`` imports ``lvis.vis``, which imports ``cv2`` (opencv-python, a
dependency of ``lvis``) only to draw; where ``cv2`` cannot be imported (e.g. no libGL), an empty
stand-in module is put in its place, as nothing evaluated needs it.
"""

from __future__ import annotations

import json
import logging
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils


def lvis_api() -> Any:
    """The ``lvis`` module, importable under numpy 2; skips the test when it is not installed."""
    if not hasattr(np, "float"):
        setattr(np, "float", float)  # noqa: B010
    try:
        import cv2  # noqa: F401
    except ImportError:
        sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    lvis = pytest.importorskip("lvis", reason="the reference: pip install --no-deps lvis==0.5.3")
    logging.getLogger("lvis").setLevel(logging.ERROR)
    return lvis


def lvis_eval(gt: dict, results: list[dict], iou_type: str, tmp_path: Path) -> tuple[dict, Any]:
    """``LVISEval(...).run()`` on a GT dict and a results list; returns (results dict, the LVISEval)."""
    lvis = lvis_api()
    path = tmp_path / f"lvis_gt_{iou_type}.json"
    path.write_text(json.dumps(gt))
    lvis_gt = lvis.LVIS(str(path))
    lvis_dt = lvis.LVISResults(lvis_gt, [dict(r) for r in results])
    ev = lvis.LVISEval(lvis_gt, lvis_dt, iou_type)
    ev.run()
    return dict(ev.get_results()), ev


@dataclass
class LvisCase:
    gt: dict  # the LVIS annotation file
    results: list[dict]  # the results file
    preds: list[dict]  # torchmetrics-format inputs, images in gt["images"] order
    target: list[dict]
    frequencies: dict[int, str]


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def make_lvis_case(
    seed: int,
    n_images: int = 14,
    n_classes: int = 9,
    segm: bool = False,
    crowded_image: bool = True,
    size: int = 120,
) -> LvisCase:
    """A federated case with the LVIS API's corners.

    Images with neg and not-exhaustive categories (some with GT, some without), categories
    with GT only or detections only, scores from a small set (ties across and inside images),
    GT areas exactly 32² and 96², zero-area detections, images without GT or without
    detections, and (``crowded_image``) one image with more than 300 detections.
    """
    rng = np.random.default_rng(seed)
    cats = list(range(1, n_classes + 1))
    freq = {c: "rcf"[int(rng.integers(3))] for c in cats}
    freq[cats[0]], freq[cats[1]], freq[cats[2]] = "r", "c", "f"
    images, anns, results = [], [], []
    preds, target = [], []
    ann_id = 1
    image_ids = rng.permutation(np.arange(1, n_images + 1) * 3).tolist()  # not in sorted order
    for k, img_id in enumerate(image_ids):
        n_gt = 0 if k % 5 == 1 else int(rng.integers(1, 7))
        gt_boxes = []
        gt_cat = rng.choice(cats[:-1], size=n_gt).tolist()  # the last category never has GT
        for _ in range(n_gt):
            w, h = int(rng.integers(4, 60)), int(rng.integers(4, 60))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            gt_boxes.append([x, y, w, h])
        gt_area = [float(w * h) for _, _, w, h in gt_boxes]
        for j in range(n_gt):
            r = rng.random()
            if r < 0.15:
                gt_area[j] = 32.0**2
            elif r < 0.3:
                gt_area[j] = 96.0**2
        present = set(gt_cat)
        absent = [c for c in cats if c not in present]
        neg = sorted(
            rng.choice(absent, size=min(len(absent), int(rng.integers(0, 4))), replace=False).tolist()
        )
        pool = sorted(present) + neg
        not_exh = sorted(
            rng.choice(pool, size=min(len(pool), int(rng.integers(0, 3))), replace=False).tolist()
        ) if pool else []  # fmt: skip
        images.append(
            {"id": img_id, "height": size, "width": size, "neg_category_ids": neg,
             "not_exhaustive_category_ids": not_exh}
        )  # fmt: skip
        gt_masks = []
        for j in range(n_gt):
            x, y, w, h = gt_boxes[j]
            ann = {"id": ann_id, "image_id": img_id, "category_id": gt_cat[j], "bbox": [x, y, w, h],
                   "area": gt_area[j]}  # fmt: skip
            if segm:
                m = np.zeros((size, size), np.bool_)
                m[y : y + h, x : x + w] = True
                m[y : y + h // 3, x : x + w // 2] = False  # not a box
                gt_masks.append(m)
                ann["segmentation"] = _rle(m)
            anns.append(ann)
            ann_id += 1
        # detections: near GTs (often the wrong class), random ones, of any category
        n_dt = 0 if k % 5 == 3 else int(rng.integers(1, 12))
        if crowded_image and k == 2:
            n_dt = 340
        det_boxes, det_cat, det_score = [], [], []
        for _ in range(n_dt):
            if gt_boxes and rng.random() < 0.6:
                j = int(rng.integers(n_gt))
                x, y, w, h = gt_boxes[j]
                dx, dy = rng.integers(-4, 5, size=2)
                dw, dh = rng.integers(-5, 6, size=2)
                box = [max(0, x + int(dx)), max(0, y + int(dy)), max(1, w + int(dw)), max(1, h + int(dh))]
                c = gt_cat[j] if rng.random() < 0.7 else int(rng.choice(cats))
            else:
                w, h = int(rng.integers(2, 50)), int(rng.integers(2, 50))
                if rng.random() < 0.1:
                    w, h = 32, 32  # area exactly 32²
                box = [int(rng.integers(0, size - w)), int(rng.integers(0, size - h)), w, h]
                c = int(rng.choice(cats))
            if not segm and rng.random() < 0.04:
                box[2] = 0  # zero area: the LVIS API does not load it
            det_boxes.append(box)
            det_cat.append(c)
            det_score.append(float(rng.choice([0.1, 0.25, 0.5, 0.75, 0.9, 0.95])) if rng.random() < 0.5
                             else float(np.round(rng.random(), 3)))  # fmt: skip
        det_masks = []
        for box, c, s in zip(det_boxes, det_cat, det_score, strict=True):
            res = {"image_id": img_id, "category_id": c, "score": s}
            if segm:
                x, y, w, h = box
                m = np.zeros((size, size), np.bool_)
                m[y : y + h, x : x + w] = True
                m[y + h // 2 : y + h, x : x + w // 3] = False
                det_masks.append(m)
                res["segmentation"] = _rle(m)
            else:
                res["bbox"] = box
            results.append(res)
        pred = {
            "scores": torch.tensor(det_score, dtype=torch.float64),
            "labels": torch.tensor(det_cat, dtype=torch.int64),
        }
        tgt: dict[str, Any] = {
            "labels": torch.tensor(gt_cat, dtype=torch.int64),
            "area": torch.tensor(gt_area, dtype=torch.float64),
            "image_id": img_id,
            "neg_category_ids": torch.tensor(neg, dtype=torch.int64),
            "not_exhaustive_category_ids": torch.tensor(not_exh, dtype=torch.int64),
        }
        if segm:
            pred["masks"] = torch.from_numpy(np.array(det_masks, np.bool_).reshape(-1, size, size))
            tgt["masks"] = torch.from_numpy(np.array(gt_masks, np.bool_).reshape(-1, size, size))
        else:
            pred["boxes"] = torch.tensor(det_boxes, dtype=torch.float64).reshape(-1, 4)
            tgt["boxes"] = torch.tensor(gt_boxes, dtype=torch.float64).reshape(-1, 4)
        preds.append(pred)
        target.append(tgt)
    categories = [{"id": c, "name": f"c{c}", "frequency": freq[c]} for c in cats]
    gt = {"images": images, "annotations": anns, "categories": categories}
    return LvisCase(gt, results, preds, target, freq)
