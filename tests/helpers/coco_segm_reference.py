"""Generated instance masks and the pycocotools ``segm`` reference run on them.

Corners covered: overlapping objects, crowd GTs stored as compressed and as uncompressed
RLE, polygon GTs (rasterised by pycocotools), empty masks on both sides, masks touching the
image border, images of different sizes, GT areas given explicitly (also exactly 32**2),
objects above 96**2 pixels, score ties within and across images, images without GT or
without detections, a class that never has GT, and more than 100 detections of one class in
one image.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


@dataclass
class SegmImage:
    height: int
    width: int
    gt_masks: np.ndarray  # (M, H, W) bool
    gt_labels: np.ndarray  # (M,) int64
    gt_crowd: np.ndarray  # (M,) int64
    gt_area: np.ndarray | None  # (M,) float64 (0 = not given) or None
    dt_masks: np.ndarray  # (N, H, W) bool
    dt_scores: np.ndarray  # (N,)
    dt_labels: np.ndarray  # (N,)
    # how each GT is written in the pycocotools JSON: "rle", "uncompressed" or a polygon (list)
    gt_segm: list = field(default_factory=list)


def ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0


def polygon(h: int, w: int, cy: float, cx: float, r: float, rng: np.random.Generator) -> list[float]:
    """A random star-shaped polygon as COCO's flat [x0, y0, x1, y1, ...] list."""
    k = int(rng.integers(3, 9))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(0.4, 1.0, k)
    xs = np.clip(cx + rad * np.cos(ang), -2, w + 2)  # may stick out of the image: clipped by pycocotools
    ys = np.clip(cy + rad * np.sin(ang), -2, h + 2)
    return np.stack([xs, ys], 1).ravel().round(2).tolist()


def rasterize(poly: list[float], h: int, w: int) -> np.ndarray:
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
    return mask_utils.decode(rle).astype(bool)


def make_segm_dataset(seed: int, n_images: int = 8, n_classes: int = 4) -> list[SegmImage]:
    rng = np.random.default_rng(seed)
    score_levels = np.round(rng.uniform(0.05, 1.0, 5), 2)
    images = []
    for i in range(n_images):
        h, w = (int(rng.integers(20, 90)), int(rng.integers(20, 110))) if i % 4 else (140, 160)
        m = 0 if i % 5 == 1 else int(rng.integers(1, 7))
        gt, segm, params = [], [], []
        for _ in range(m):
            kind = rng.choice(
                ["ellipse", "ellipse", "polygon", "border", "empty"], p=[0.4, 0.2, 0.25, 0.1, 0.05]
            )
            cy, cx = rng.uniform(-5, h + 5), rng.uniform(-5, w + 5)
            r = rng.uniform(2, max(h, w) / 2.5) if h < 100 else rng.uniform(20, 80)
            if kind == "polygon":
                poly = polygon(h, w, cy, cx, r, rng)
                gt.append(rasterize(poly, h, w))
                segm.append(poly)
                params.append(("ellipse", cy, cx, r * 0.7, r * 0.7))
            elif kind == "border":  # a band along one image border
                band = np.zeros((h, w), bool)
                k = int(rng.integers(1, 6))
                side = int(rng.integers(0, 4))
                band[
                    (slice(None, k), slice(-k, None), slice(None), slice(None))[side],
                    (slice(None), slice(None), slice(None, k), slice(-k, None))[side],
                ] = True
                gt.append(band)
                segm.append("rle")
                params.append(("mask", band))
            elif kind == "empty":
                gt.append(np.zeros((h, w), bool))
                segm.append("rle")
                params.append(("mask", np.zeros((h, w), bool)))
            else:
                ry, rx = r * rng.uniform(0.5, 1.5), r * rng.uniform(0.5, 1.5)
                gt.append(ellipse(h, w, cy, cx, ry, rx))
                segm.append("rle")
                params.append(("ellipse", cy, cx, ry, rx))
        gt_masks = np.array(gt, dtype=bool).reshape(m, h, w)
        labels = rng.integers(0, n_classes - 1, m)  # the last class never has GT
        crowd = (rng.random(m) < 0.15).astype(np.int64)
        for j in np.flatnonzero(crowd):
            segm[j] = "uncompressed" if rng.random() < 0.5 else "rle"
        area = None
        if rng.random() < 0.4:
            area = gt_masks.sum((1, 2)).astype(np.float64) * rng.choice([1.0, 0.5, 2.0], size=m)
            area[rng.random(m) < 0.3] = 32.0**2
            area[rng.random(m) < 0.2] = 0.0  # not given for this one: the mask area is used
        # detections: jittered copies of the GTs (some twice), clutter, empty masks
        dts, dls = [], []
        if i % 7 != 3:
            for j in range(m):
                for _ in range(int(rng.integers(0, 3))):
                    p = params[j]
                    if p[0] == "ellipse":
                        _, cy, cx, ry, rx = p
                        s = rng.choice([0.05, 0.2, 0.4])
                        d = ellipse(
                            h,
                            w,
                            cy + rng.normal(0, s * ry),
                            cx + rng.normal(0, s * rx),
                            ry * np.exp(rng.normal(0, s)),
                            rx * np.exp(rng.normal(0, s)),
                        )
                    else:
                        d = np.roll(p[1], int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
                    dts.append(d)
                    dls.append(labels[j] if rng.random() > 0.1 else rng.integers(0, n_classes))
            for _ in range(int(rng.integers(0, 5))):
                dts.append(
                    ellipse(
                        h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, 20), rng.uniform(1, 20)
                    )
                )
                dls.append(rng.integers(0, n_classes))
            if rng.random() < 0.3:
                dts.append(np.zeros((h, w), bool))
                dls.append(rng.integers(0, n_classes))
            if i == 2:  # > 100 detections of class 0 in one image
                for _ in range(110):
                    dts.append(
                        ellipse(
                            h, w, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 15), rng.uniform(2, 15)
                        )
                    )
                    dls.append(0)
        n = len(dts)
        dt_masks = np.array(dts, dtype=bool).reshape(n, h, w)
        scores = np.where(rng.random(n) < 0.5, rng.choice(score_levels, n), rng.random(n))
        images.append(
            SegmImage(
                h,
                w,
                gt_masks,
                labels.astype(np.int64),
                crowd,
                area,
                dt_masks,
                scores,
                np.array(dls, dtype=np.int64),
                segm,
            )
        )
    return images


def to_torch_segm(images: list[SegmImage], with_boxes: bool = False) -> tuple[list[dict], list[dict]]:
    """torchmetrics-format inputs: bool masks, float64 scores, int64 labels (boxes: the masks' xywh boxes)."""
    preds, target = [], []
    for im in images:
        p = {
            "masks": torch.from_numpy(im.dt_masks.copy()),
            "scores": torch.tensor(im.dt_scores, dtype=torch.float64),
            "labels": torch.tensor(im.dt_labels, dtype=torch.int64),
        }
        t = {
            "masks": torch.from_numpy(im.gt_masks.copy()),
            "labels": torch.tensor(im.gt_labels, dtype=torch.int64),
            "iscrowd": torch.tensor(im.gt_crowd, dtype=torch.int64),
        }
        if im.gt_area is not None:
            t["area"] = torch.tensor(im.gt_area, dtype=torch.float64)
        if with_boxes:
            p["boxes"] = torch.tensor(mask_boxes(im.dt_masks), dtype=torch.float64).reshape(-1, 4)
            t["boxes"] = torch.tensor(mask_boxes(im.gt_masks), dtype=torch.float64).reshape(-1, 4)
        preds.append(p)
        target.append(t)
    return preds, target


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """xywh pixel boxes of masks (what pycocotools' toBbox gives), zeros for empty masks."""
    if len(masks) == 0:
        return np.zeros((0, 4))
    return mask_utils.toBbox(encode(masks)).reshape(-1, 4)


def encode(masks: np.ndarray) -> list[dict]:
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


def uncompressed(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: column-major run lengths starting with a run of zeros."""
    flat = mask.T.ravel().astype(np.int64)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


def coco_segm_json(images: list[SegmImage]) -> tuple[dict, list[dict]]:
    """The GT dataset and the results list as COCO JSON objects (image ids 0.., annotation order kept)."""
    gt_anns, results, labels = [], [], set()
    for img_id, im in enumerate(images):
        rles = encode(im.gt_masks) if len(im.gt_masks) else []
        for j in range(len(im.gt_masks)):
            how = im.gt_segm[j]
            if isinstance(how, list):
                segm: object = [how]
            elif how == "uncompressed":
                segm = uncompressed(im.gt_masks[j])
            else:
                segm = {"size": rles[j]["size"], "counts": rles[j]["counts"].decode("ascii")}
            given = im.gt_area is not None and im.gt_area[j] > 0
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": img_id,
                    "category_id": int(im.gt_labels[j]),
                    "segmentation": segm,
                    "area": float(im.gt_area[j]) if given else float(im.gt_masks[j].sum()),  # type: ignore[index]
                    "bbox": mask_boxes(im.gt_masks[j : j + 1])[0].tolist(),
                    "iscrowd": int(im.gt_crowd[j]),
                }
            )
            labels.add(int(im.gt_labels[j]))
        drles = encode(im.dt_masks) if len(im.dt_masks) else []
        for j in range(len(im.dt_masks)):
            results.append(
                {
                    "image_id": img_id,
                    "category_id": int(im.dt_labels[j]),
                    "segmentation": {"size": drles[j]["size"], "counts": drles[j]["counts"].decode("ascii")},
                    "score": float(im.dt_scores[j]),
                }
            )
            labels.add(int(im.dt_labels[j]))
    dataset = {
        "images": [{"id": i, "height": im.height, "width": im.width} for i, im in enumerate(images)],
        "annotations": gt_anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in sorted(labels)],
    }
    return dataset, results


def segm_cocoeval(images: list[SegmImage], iou_type: str = "segm") -> COCOeval:
    """A COCOeval over the images (pycocotools' own loadRes for the results), not yet evaluated."""
    dataset, results = coco_segm_json(images)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        if results:
            dt = gt.loadRes(copy.deepcopy(results))
        else:
            dt = COCO()
            dt.dataset = {"images": dataset["images"], "annotations": [], "categories": dataset["categories"]}
            dt.createIndex()
        return COCOeval(gt, dt, iouType=iou_type)


def run_cocoeval(ev: COCOeval, **params: object) -> COCOeval:
    for key, value in params.items():
        setattr(ev.params, key, value)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
