"""Generate the embedded demo data set: synthetic shapes in COCO format, with masks.

``python -m objdet.data.generate`` rewrites ``demo_gt.json`` and ``demo_dt.json`` next to this
file. The output is a pure function of the seed, so the shipped files can be checked against a
fresh generation (the tests do).

Ground truth: 48 images of 320x240 pixels with 1-7 shapes each, out of five classes. Masks are
polygons; a few images carry a crowd region stored as uncompressed RLE (``iscrowd=1``), as
COCO does. Detections imitate a fair detector: most objects found with jittered outlines, a
few class confusions between similar shapes, duplicates, clutter with low scores, and masks
as compressed RLE, as a COCO result file holds them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

CLASSES = ("circle", "square", "triangle", "diamond", "star")
WIDTH, HEIGHT = 320, 240
N_IMAGES = 48
# Shapes a detector plausibly mixes up.
_CONFUSED_WITH = {0: 4, 1: 3, 2: 4, 3: 1, 4: 0}


def _outline(kind: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Polygon vertices (K, 2) of shape ``kind`` centred at (cx, cy) with radius r."""
    t: np.ndarray
    rad: np.ndarray
    if kind == 0:
        t = np.linspace(0, 2 * math.pi, 28, endpoint=False)
        rad = np.full_like(t, r)
    elif kind in (1, 3):
        t = np.arange(4) * (math.pi / 2) + (math.pi / 4 if kind == 1 else 0.0)
        rad = np.full(4, r)
    elif kind == 2:
        t = np.arange(3) * (2 * math.pi / 3) - math.pi / 2
        rad = np.full(3, r)
    else:
        t = np.arange(10) * (math.pi / 5) - math.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    t = t + angle
    pts = np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1)
    pts[:, 0] = pts[:, 0].clip(0, WIDTH)
    pts[:, 1] = pts[:, 1].clip(0, HEIGHT)
    return np.round(pts, 1)


def _rle_of_polygon(poly: np.ndarray) -> dict[str, Any]:
    return mask_utils.merge(mask_utils.frPyObjects([poly.ravel().tolist()], HEIGHT, WIDTH))


def _bbox(rle: dict[str, Any]) -> list[float]:
    return [round(float(v), 2) for v in mask_utils.toBbox(rle)]


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE (column-major run lengths, starting with zeros)."""
    flat = mask.T.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"size": [HEIGHT, WIDTH], "counts": counts}


def generate(seed: int = 2026) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The demo ground truth (a COCO dict) and detections (a COCO result list)."""
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id in range(1, N_IMAGES + 1):
        images.append(
            {"id": image_id, "width": WIDTH, "height": HEIGHT, "file_name": f"shapes_{image_id:03d}.png"}
        )
        n = int(rng.integers(1, 8))
        for _ in range(n):
            kind = int(rng.integers(0, len(CLASSES)))
            r = float(np.exp(rng.uniform(math.log(6), math.log(75))))
            cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            angle = float(rng.uniform(0, 2 * math.pi))
            poly = _outline(kind, cx, cy, r, angle)
            rle = _rle_of_polygon(poly)
            area = int(mask_utils.area(rle))
            if area == 0:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": kind + 1,
                    "segmentation": [poly.ravel().tolist()],
                    "area": area,
                    "bbox": _bbox(rle),
                    "iscrowd": 0,
                }
            )
            copies = 0 if rng.random() < 0.12 else 1 + int(rng.random() < 0.08)
            for c in range(copies):
                jitter = 0.05 if c == 0 else 0.25
                det_poly = _outline(
                    kind,
                    cx + rng.normal(0, jitter * r),
                    cy + rng.normal(0, jitter * r),
                    r * float(np.exp(rng.normal(0, jitter))),
                    angle + float(rng.normal(0, 0.05)),
                )
                label = _CONFUSED_WITH[kind] if rng.random() < 0.1 else kind
                score = float(rng.beta(5, 2)) if c == 0 else float(rng.uniform(0.05, 0.5))
                results.append(_result(image_id, label, _rle_of_polygon(det_poly), score))
        if rng.random() < 0.15:  # a crowd region: a band of many small shapes, stored as RLE
            mask = np.zeros((HEIGHT, WIDTH), np.uint8)
            y0 = int(rng.integers(0, HEIGHT - 30))
            for x in range(8, WIDTH - 8, 14):
                yy, xx = np.ogrid[:HEIGHT, :WIDTH]
                mask |= ((yy - y0 - 12) ** 2 + (xx - x) ** 2 <= 25).astype(np.uint8)
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": _uncompressed_rle(mask),
                    "area": int(mask_utils.area(rle)),
                    "bbox": _bbox(rle),
                    "iscrowd": 1,
                }
            )
            results.append(_result(image_id, 0, rle, float(rng.uniform(0.3, 0.7))))
        for _ in range(int(rng.integers(0, 3))):  # clutter
            kind = int(rng.integers(0, len(CLASSES)))
            poly = _outline(
                kind,
                rng.uniform(0, WIDTH),
                rng.uniform(0, HEIGHT),
                float(rng.uniform(5, 25)),
                float(rng.uniform(0, 6.3)),
            )
            rle = _rle_of_polygon(poly)
            if mask_utils.area(rle) > 0:
                results.append(_result(image_id, kind, rle, float(rng.uniform(0.02, 0.45))))
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    gt = {
        "info": {"description": "objdet demo: synthetic shapes", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return gt, results


def _result(image_id: int, label: int, rle: dict[str, Any], score: float) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "category_id": label + 1,
        "bbox": _bbox(rle),
        "score": round(score, 4),
        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
    }


def dumps(obj: Any) -> str:
    """The JSON text written to the shipped files (compact, one stable layout)."""
    return json.dumps(obj, separators=(",", ":")) + "\n"


def main() -> None:
    here = Path(__file__).parent
    gt, dt = generate()
    (here / "demo_gt.json").write_text(dumps(gt))
    (here / "demo_dt.json").write_text(dumps(dt))
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} GT, {len(dt)} detections -> {here}")


if __name__ == "__main__":
    main()
