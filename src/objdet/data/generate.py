"""Generate the embedded demo data sets: synthetic shapes with masks, and stick figures with keypoints.

``python -m objdet.data.generate`` rewrites ``demo_gt.json`` / ``demo_dt.json`` (shapes) and
``demo_keypoints_gt.json`` / ``demo_keypoints_dt.json`` (people) next to this file. The output
is a pure function of the seed, so the shipped files can be checked against a fresh generation
(the tests do).

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


#: COCO's 17 person keypoints of a standing figure, in units of its height, from the top centre:
#: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles (left before right)
_SKELETON = np.array(
    [
        (0.00, 0.06), (-0.03, 0.04), (0.03, 0.04), (-0.06, 0.05), (0.06, 0.05),
        (-0.12, 0.18), (0.12, 0.18), (-0.17, 0.33), (0.17, 0.33), (-0.19, 0.47), (0.19, 0.47),
        (-0.08, 0.52), (0.08, 0.52), (-0.09, 0.74), (0.09, 0.74), (-0.10, 0.97), (0.10, 0.97),
    ]
)  # fmt: skip
KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


def _pose(cx: float, top: float, height: float, rng: np.random.Generator) -> np.ndarray:
    """(17, 2) keypoints of a figure ``height`` tall, its head at (cx, top), limbs a little apart."""
    xy = _SKELETON * height + np.array([cx, top])
    xy[[7, 9, 13, 15]] += rng.normal(0, 0.04 * height, (4, 2))  # left arm and leg move
    xy[[8, 10, 14, 16]] += rng.normal(0, 0.04 * height, (4, 2))
    return xy


def generate_keypoints(seed: int = 2027) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The keypoint demo: COCO person-keypoint ground truth and results (with boxes) of 32 images."""
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id in range(1, 33):
        images.append(
            {"id": image_id, "width": WIDTH, "height": HEIGHT, "file_name": f"people_{image_id:03d}.png"}
        )
        for _ in range(int(rng.integers(1, 5))):
            height = float(np.exp(rng.uniform(math.log(40), math.log(220))))
            cx, top = float(rng.uniform(20, WIDTH - 20)), float(rng.uniform(0, max(HEIGHT - height, 1)))
            xy = _pose(cx, top, height, rng)
            visible = np.where(rng.random(17) < 0.8, 2, np.where(rng.random(17) < 0.5, 1, 0))
            if height < 50 and rng.random() < 0.5:
                visible[:] = 0  # too small to label: a person without keypoints (ignored by COCO)
            kp = np.concatenate([np.round(xy, 1), visible[:, None]], 1)
            kp[visible == 0] = 0
            lo, hi = xy.min(0) - 0.04 * height, xy.max(0) + 0.04 * height
            box = [round(float(v), 2) for v in (*lo, *(hi - lo))]
            annotations.append(
                {
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                    "keypoints": kp.ravel().tolist(), "num_keypoints": int((visible > 0).sum()),
                    "bbox": box, "area": round(box[2] * box[3] * 0.55, 2), "iscrowd": 0,
                }
            )  # fmt: skip
            if rng.random() < 0.9:  # found: keypoints off by a few percent of the height
                spread = 0.02 if rng.random() < 0.7 else 0.07
                det = xy + rng.normal(0, spread * height, xy.shape)
                results.append(_pose_result(image_id, det, float(rng.beta(6, 2))))
        for _ in range(int(rng.integers(0, 2))):  # a false alarm
            height = float(rng.uniform(30, 120))
            det = _pose(float(rng.uniform(20, WIDTH - 20)), float(rng.uniform(0, HEIGHT - 30)), height, rng)
            results.append(_pose_result(image_id, det, float(rng.uniform(0.05, 0.5))))
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES)}]
    gt = {
        "info": {"description": "objdet demo: synthetic people", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return gt, results


def _pose_result(image_id: int, xy: np.ndarray, score: float) -> dict[str, Any]:
    confidence = np.full((17, 1), round(score, 3))
    lo, hi = xy.min(0), xy.max(0)
    return {
        "image_id": image_id,
        "category_id": 1,
        "keypoints": np.concatenate([np.round(xy, 2), confidence], 1).ravel().tolist(),
        "bbox": [round(float(v), 2) for v in (*lo, *(hi - lo))],
        "score": round(score, 4),
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
    gt, dt = generate_keypoints()
    (here / "demo_keypoints_gt.json").write_text(dumps(gt))
    (here / "demo_keypoints_dt.json").write_text(dumps(dt))
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} people, {len(dt)} poses -> {here}")


if __name__ == "__main__":
    main()
