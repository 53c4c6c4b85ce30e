"""objdet demo: COCO box evaluation on a generated data set, checked against pycocotools.

Run with ``python examples/coco_demo.py`` where objdet is installed
(``nox -s demo`` runs ``objdet eval --demo``).
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from objdet.functional.coco import coco_stat_names
from objdet.training.metrics import ClasswiseAP, MeanAveragePrecision

CLASSES = ["person", "bicycle", "car", "dog", "cat", "chair"]


def make_images(n_images: int = 200, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A small detector's output: jittered copies of the GT, some misses, duplicates and clutter."""
    rng = np.random.default_rng(seed)
    preds, target = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 9))
        xy = rng.uniform(0, 500, (m, 2))
        wh = np.exp(rng.uniform(np.log(10), np.log(250), (m, 2)))
        gt = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, len(CLASSES), m)
        crowd = (rng.random(m) < 0.03).astype(np.int64)
        found = rng.random(m) < 0.85
        src = np.concatenate([np.flatnonzero(found), rng.choice(max(m, 1), int(rng.integers(0, 3)))])[: 2 * m]
        noise = rng.normal(0, 0.08, (len(src), 4)) * np.tile(wh[src] if m else np.ones((0, 2)), 2)
        det = gt[src] + noise if m else np.zeros((0, 4))
        det_labels = labels[src] if m else np.zeros(0, np.int64)
        k = int(rng.integers(0, 4))
        clutter_xy = rng.uniform(0, 500, (k, 2))
        clutter = np.concatenate([clutter_xy, clutter_xy + rng.uniform(10, 150, (k, 2))], 1)
        det = np.concatenate([det, clutter])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
        det_labels = np.concatenate([det_labels, rng.integers(0, len(CLASSES), k)])
        scores = np.concatenate([rng.uniform(0.4, 1.0, len(src)), rng.uniform(0.0, 0.6, k)])
        preds.append(
            {
                "boxes": torch.tensor(det, dtype=torch.float32),
                "scores": torch.tensor(scores, dtype=torch.float32),
                "labels": torch.tensor(det_labels),
            }
        )
        target.append(
            {
                "boxes": torch.tensor(gt, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "iscrowd": torch.tensor(crowd),
            }
        )
    return preds, target


def pycocotools_stats(preds: list[dict], target: list[dict]) -> np.ndarray:
    """The same data through pycocotools COCOeval, for comparison."""

    def anns(items: list[dict], is_pred: bool) -> list[dict]:
        out = []
        for img, item in enumerate(items):
            boxes = item["boxes"]  # xywh in the input's precision, as torchmetrics hands them to pycocotools
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
            for j, (x, y, w, h) in enumerate(xywh):
                ann = {
                    "id": len(out) + 1,
                    "image_id": img,
                    "category_id": int(item["labels"][j]),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                }
                ann["iscrowd"] = 0 if is_pred else int(item["iscrowd"][j])
                if is_pred:
                    ann["score"] = float(item["scores"][j])
                out.append(ann)
        return out

    images = [{"id": i} for i in range(len(target))]
    cats = [{"id": i} for i in range(len(CLASSES))]
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = {"images": images, "annotations": anns(target, False), "categories": cats}
        dt.dataset = {"images": images, "annotations": anns(preds, True), "categories": cats}
        gt.createIndex()
        dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def main() -> None:
    preds, target = make_images()
    metric = MeanAveragePrecision(class_metrics=True)
    classwise = ClasswiseAP(num_classes=len(CLASSES), class_names=CLASSES, iou_threshold=0.5)
    t0 = time.perf_counter()
    for k in range(0, len(preds), 16):  # as in a validation loop, batch by batch
        metric.update(preds[k : k + 16], target[k : k + 16])
        classwise.update(preds[k : k + 16], target[k : k + 16])
    result = metric.compute()
    per_class = classwise.compute()
    elapsed = time.perf_counter() - t0

    n_det = sum(len(p["scores"]) for p in preds)
    n_gt = sum(len(t["labels"]) for t in target)
    print(
        f"objdet COCO evaluation: {len(preds)} images, {n_gt} ground truths, {n_det} detections, "
        f"{len(CLASSES)} classes ({elapsed * 1000:.0f} ms)\n"
    )
    for key in coco_stat_names():
        print(f"  {key:<12} {result[key].item():7.4f}")
    print(f"\n  {'class':<10} {'AP@[.5:.95]':>12} {'AR@100':>8} {'AP@.5':>8}")
    for i, c in enumerate(result["classes"].tolist()):
        name = CLASSES[c]
        ap, ar = result["map_per_class"][i].item(), result["mar_100_per_class"][i].item()
        print(f"  {name:<10} {ap:12.4f} {ar:8.4f} {per_class[f'{name}_AP'].item():8.4f}")

    ours, _ = metric.coco_eval(full=False)
    reference = pycocotools_stats(preds, target)
    diff = np.abs(ours.numpy() - reference).max()
    print(f"\npycocotools on the same data: max |difference| over the 12 stats = {diff:.1e}")
    state = sum(
        t.numel() * t.element_size()
        for name in metric._defaults
        for t in (
            getattr(metric, name) if isinstance(getattr(metric, name), list) else [getattr(metric, name)]
        )
    )
    print(f"metric state: {state / n_det:.1f} bytes per detection (torchmetrics keeps every box)")


if __name__ == "__main__":
    main()
