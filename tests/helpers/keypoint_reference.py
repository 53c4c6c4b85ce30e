"""Generated person-keypoint data and pycocotools' ``COCOeval(..., "keypoints")`` on it.

Cases the generator mixes in: crowd GTs, GTs without labelled keypoints (``num_keypoints`` 0,
some without a box), GT areas exactly on 32**2 and 96**2, images without GT or without
detections, classes present on one side only, more than 20 detections of one class in an
image, and scores rounded to one decimal (ties across images).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_KEYS = (
    "map", "map_50", "map_75", "map_medium", "map_large",
    "mar_20", "mar_50", "mar_75", "mar_medium", "mar_large",
)  # fmt: skip


def make_keypoint_dataset(
    seed: int, n_images: int = 24, n_kpts: int = 17, n_classes: int = 2, crowded: bool = True
) -> dict[str, Any]:
    """COCO-style ``{"gt": annotation file dict, "dt": results list}``, ids 1.. in shuffled order."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1, n_images + 1) * 7)  # not in update order
    images, anns, dets = [], [], []
    for i, image_id in enumerate(ids.tolist()):
        images.append({"id": image_id, "width": 640, "height": 480})
        n_gt = 0 if i % 9 == 4 else int(rng.integers(1, 5))
        gts = []
        for _ in range(n_gt):
            w, h = rng.uniform(20, 200, 2)
            x, y = rng.uniform(0, 400), rng.uniform(0, 280)
            kp = np.zeros((n_kpts, 3))
            kp[:, 0] = np.round(x + rng.uniform(0, w, n_kpts))
            kp[:, 1] = np.round(y + rng.uniform(0, h, n_kpts))
            kp[:, 2] = rng.choice([0, 1, 2], n_kpts, p=[0.3, 0.2, 0.5])
            if rng.random() < 0.15:
                kp[:, 2] = 0
            kp[kp[:, 2] == 0, :2] = 0  # COCO writes unlabelled keypoints as (0, 0, 0)
            area = float(np.round(w * h * rng.uniform(0.4, 0.9)))
            area = {0: 32.0**2, 1: 96.0**2}.get(int(rng.integers(0, 8)), area)
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": int(rng.integers(1, n_classes + 1)),
                "keypoints": kp.ravel().tolist(),
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "bbox": [float(x), float(y), float(np.round(w)), float(np.round(h))],
                "area": area,
                "iscrowd": int(crowded and rng.random() < 0.1),
            }
            anns.append(ann)
            gts.append(ann)
        n_dt = 0 if i % 9 == 7 else int(rng.integers(0, 6))
        if i == 2:
            n_dt = 25  # more than maxDets (20) of one class in one image
        for _ in range(n_dt):
            if gts and rng.random() < 0.75:
                g = gts[int(rng.integers(len(gts)))]
                base = np.asarray(g["keypoints"], np.float64).reshape(n_kpts, 3)[:, :2]
                if not np.any(base):
                    base = np.asarray(g["bbox"][:2]) + rng.uniform(0, 60, (n_kpts, 2))
                scale = np.sqrt(max(g["area"], 1.0)) * rng.uniform(0.01, 0.2)
                xy = base + rng.normal(0, scale, (n_kpts, 2))
                label = g["category_id"] if (rng.random() < 0.9 or i == 2) else n_classes + 1
            else:
                xy = rng.uniform(0, 480, (n_kpts, 2))
                label = int(rng.integers(1, n_classes + 2))  # class n_classes + 1 has no GT
            if i == 2:
                label = 1
            kp = np.concatenate([np.round(xy, 2), np.round(rng.random((n_kpts, 1)), 3)], 1)
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": label,
                    "keypoints": kp.ravel().tolist(),
                    "score": float(np.round(rng.random(), 1)),
                }
            )
    cats = [
        {"id": c, "name": f"class_{c}", "keypoints": [f"k{j}" for j in range(n_kpts)]}
        for c in range(1, n_classes + 2)
    ]
    return {"gt": {"images": images, "annotations": anns, "categories": cats}, "dt": dets}


def to_torch(data: dict[str, Any], n_kpts: int = 17, boxes: bool = True) -> tuple[list[dict], list[dict]]:
    """Metric inputs, one image per entry of ``data['gt']['images']`` in file order, with ``image_id``."""
    preds, target = [], []
    for image in data["gt"]["images"]:
        image_id = image["id"]
        anns = [a for a in data["gt"]["annotations"] if a["image_id"] == image_id]
        dts = [d for d in data["dt"] if d["image_id"] == image_id]
        preds.append(
            {
                "keypoints": torch.tensor([d["keypoints"] for d in dts], dtype=torch.float64).reshape(
                    -1, n_kpts, 3
                ),
                "scores": torch.tensor([d["score"] for d in dts], dtype=torch.float64),
                "labels": torch.tensor([d["category_id"] for d in dts], dtype=torch.int64),
            }
        )
        t = {
            "keypoints": torch.tensor([a["keypoints"] for a in anns], dtype=torch.float64).reshape(
                -1, n_kpts, 3
            ),
            "labels": torch.tensor([a["category_id"] for a in anns], dtype=torch.int64),
            "iscrowd": torch.tensor([a["iscrowd"] for a in anns], dtype=torch.int64),
            "area": torch.tensor([a["area"] for a in anns], dtype=torch.float64),
            "image_id": image_id,
        }
        if boxes:
            t["boxes"] = torch.tensor([a["bbox"] for a in anns], dtype=torch.float64).reshape(-1, 4)
        target.append(t)
    return preds, target


def pycocotools_keypoints(
    data: dict[str, Any], sigmas: np.ndarray | None = None, cat_ids: list[int] | None = None
) -> COCOeval:
    """pycocotools' keypoint evaluation of ``data`` (evaluated, accumulated and summarized, quietly)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data["gt"]
        gt.createIndex()
        dt = gt.loadRes(data["dt"]) if data["dt"] else COCO()
        ev = COCOeval(gt, dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
