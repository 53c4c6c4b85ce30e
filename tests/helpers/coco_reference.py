"""Generated COCO-style data and the pycocotools reference run on it.

The generator aims at the corners where COCO implementations disagree: score ties within
and across images, crowd GTs, GT areas exactly on 32**2 and 96**2, zero-width boxes, images
without GT or without detections, classes present on one side only, and more than 100
detections of one class in one image.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


@dataclass
class Image:
    gt_boxes: np.ndarray  # (M, 4) xywh float64
    gt_labels: np.ndarray  # (M,) int64
    gt_crowd: np.ndarray  # (M,) int64
    gt_area: np.ndarray | None  # (M,) float64 or None (box area)
    dt_boxes: np.ndarray  # (N, 4) xywh
    dt_scores: np.ndarray  # (N,)
    dt_labels: np.ndarray  # (N,)


def _jitter(rng: np.random.Generator, boxes: np.ndarray, scale: float) -> np.ndarray:
    out = boxes.copy()
    out[:, :2] += rng.normal(0, scale, (len(boxes), 2)) * np.maximum(boxes[:, 2:], 1)
    out[:, 2:] *= np.exp(rng.normal(0, scale, (len(boxes), 2)))
    return out


def make_dataset(
    seed: int,
    n_images: int = 8,
    n_classes: int = 4,
    max_gt: int = 8,
    crowded_image: bool = True,
    integer_coords: bool = False,
) -> list[Image]:
    rng = np.random.default_rng(seed)
    score_levels = np.round(rng.uniform(0.05, 1.0, 6), 2)  # few distinct values: many ties
    images = []
    for i in range(n_images):
        m = 0 if i % 5 == 1 else int(rng.integers(1, max_gt + 1))
        xy = rng.uniform(0, 400, (m, 2))
        side = rng.choice([4.0, 16.0, 32.0, 50.0, 96.0, 150.0], size=(m, 2))
        side *= rng.choice([1.0, 1.0, rng.uniform(0.5, 2.0)], size=(m, 2))
        gt = np.concatenate([xy, side], 1)
        # exact COCO area boundaries: 32x32, 16x64, 96x96, 48x192
        special = rng.random(m) < 0.3
        gt[special, 2:] = rng.choice([[32, 32], [16, 64], [96, 96], [48, 192]], size=int(special.sum()))
        if m and rng.random() < 0.2:
            gt[0, 2] = 0.0  # zero-width GT
        labels = rng.integers(0, n_classes - 1, m)  # the last class never has GT
        crowd = (rng.random(m) < 0.12).astype(np.int64)
        area = None
        if rng.random() < 0.4:
            area = gt[:, 2] * gt[:, 3] * rng.choice([1.0, 0.5, 0.8], size=m)
            area[rng.random(m) < 0.3] = rng.choice([32.0**2, 96.0**2])
        if integer_coords:
            gt = np.round(gt)
        # detections: jittered copies of GTs (some duplicated), plus clutter, plus the unseen class
        if i % 7 == 3:
            dt = np.zeros((0, 4))
            dl = np.zeros(0, dtype=np.int64)
        else:
            reps = rng.integers(0, 3, m)
            src = np.repeat(np.arange(m), reps)
            dt = _jitter(rng, gt[src], rng.choice([0.02, 0.1, 0.3]))
            dl = labels[src].copy()
            flip = rng.random(len(dl)) < 0.1
            dl[flip] = rng.integers(0, n_classes, int(flip.sum()))
            k = int(rng.integers(0, 6))
            clutter = np.concatenate([rng.uniform(0, 400, (k, 2)), rng.uniform(2, 120, (k, 2))], 1)
            dt = np.concatenate([dt, clutter])
            dl = np.concatenate([dl, rng.integers(0, n_classes, k)])
            if crowded_image and i == 2:  # > 100 detections of one class in one image
                base = gt[0:1] if m else np.array([[100.0, 100.0, 40.0, 40.0]])
                many = _jitter(rng, np.repeat(base, 130, 0), 0.15)
                dt = np.concatenate([dt, many])
                dl = np.concatenate([dl, np.zeros(130, dtype=np.int64)])
            if len(dt) and rng.random() < 0.2:
                dt[-1, 3] = 0.0  # zero-height detection
            if integer_coords:
                dt = np.round(dt)
            dt[:, 2:] = np.maximum(dt[:, 2:], 0)
        scores = np.where(rng.random(len(dt)) < 0.6, rng.choice(score_levels, len(dt)), rng.random(len(dt)))
        images.append(Image(gt, labels.astype(np.int64), crowd, area, dt, scores, dl.astype(np.int64)))
    return images


def to_torch(images: list[Image], box_format: str = "xywh") -> tuple[list[dict], list[dict]]:
    """torchmetrics-format inputs (float64) from generated images."""
    preds, target = [], []
    for im in images:

        def fmt(b: np.ndarray) -> torch.Tensor:
            t = torch.tensor(b, dtype=torch.float64).reshape(-1, 4)
            if box_format == "xyxy":
                t = torch.cat([t[:, :2], t[:, :2] + t[:, 2:]], 1)
            elif box_format == "cxcywh":
                t = torch.cat([t[:, :2] + t[:, 2:] / 2, t[:, 2:]], 1)
            return t

        preds.append(
            {
                "boxes": fmt(im.dt_boxes),
                "scores": torch.tensor(im.dt_scores, dtype=torch.float64),
                "labels": torch.tensor(im.dt_labels, dtype=torch.int64),
            }
        )
        t = {
            "boxes": fmt(im.gt_boxes),
            "labels": torch.tensor(im.gt_labels, dtype=torch.int64),
            "iscrowd": torch.tensor(im.gt_crowd, dtype=torch.int64),
        }
        if im.gt_area is not None:
            t["area"] = torch.tensor(im.gt_area, dtype=torch.float64)
        target.append(t)
    return preds, target


@dataclass
class Reference:
    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    cat_ids: list[int]


def _cocoeval(images: list[Image], image_ids: list[int] | None = None) -> COCOeval:
    """A bbox COCOeval over the images, numbered 0.. in list order or ``image_ids`` (not yet evaluated)."""
    gt_anns, dt_anns = [], []
    labels: set[int] = set()
    ids = list(range(len(images))) if image_ids is None else list(image_ids)
    assert len(set(ids)) == len(ids) == len(images), "one distinct id per image"
    for img_id, im in zip(ids, images, strict=True):
        for j in range(len(im.gt_boxes)):
            box = im.gt_boxes[j].tolist()
            area = float(im.gt_area[j]) if im.gt_area is not None and im.gt_area[j] > 0 else box[2] * box[3]
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": img_id,
                    "category_id": int(im.gt_labels[j]),
                    "bbox": box,
                    "area": area,
                    "iscrowd": int(im.gt_crowd[j]),
                }
            )
            labels.add(int(im.gt_labels[j]))
        for j in range(len(im.dt_boxes)):
            box = im.dt_boxes[j].tolist()
            dt_anns.append(
                {
                    "id": len(dt_anns) + 1,
                    "image_id": img_id,
                    "category_id": int(im.dt_labels[j]),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                    "score": float(im.dt_scores[j]),
                }
            )
            labels.add(int(im.dt_labels[j]))
    imgs = [{"id": i} for i in ids]
    cats = [{"id": c} for c in sorted(labels)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = {"images": imgs, "annotations": gt_anns, "categories": cats}
        dt.dataset = {"images": imgs, "annotations": dt_anns, "categories": cats}
        gt.createIndex()
        dt.createIndex()
        return COCOeval(gt, dt, iouType="bbox")


def pycocotools_eval(
    images: list[Image],
    iou_thresholds: list[float] | None = None,
    rec_thresholds: list[float] | None = None,
    max_dets: list[int] | None = None,
    cat_ids: list[int] | None = None,
    use_cats: bool = True,
    image_ids: list[int] | None = None,
) -> Reference:
    """Run COCOeval (bbox) evaluate + accumulate + summarize on the images (ids: ``image_ids``, else 0..)."""
    ev = _cocoeval(images, image_ids)
    if iou_thresholds is not None:
        ev.params.iouThrs = np.array(iou_thresholds, dtype=np.float64)
    if rec_thresholds is not None:
        ev.params.recThrs = np.array(rec_thresholds, dtype=np.float64)
    if max_dets is not None:
        ev.params.maxDets = max_dets
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    ev.params.useCats = int(use_cats)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return Reference(
        np.array(ev.stats),
        ev.eval["precision"],
        ev.eval["recall"],
        ev.eval["scores"],
        list(ev.params.catIds),
    )


def pycocotools_ious(images: list[Image], image_ids: list[int] | None = None) -> dict:
    """COCOeval.ious for the images (after evaluate), keyed (image, category)."""
    ev = _cocoeval(images, image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    return ev.ious
