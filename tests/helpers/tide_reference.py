"""TIDE references for the tests: a plain one written here, and the ``tidecv`` package when importable.

:func:`reference_tide` is a slow, direct transcription of the rules (TIDE paper, as
``tidecv`` 1.0.1 applies them): objects as dicts, one loop per detection, IoU from
pycocotools' ``mask.iou``, AP recomputed per class from lists. It shares no code with
objdet's kernel and runs everywhere (CI included). :func:`tidecv_tide` runs ``tidecv`` itself
on the same data when it can be imported (it is not a test dependency: its wheel pulls in
opencv-python, seaborn and pandas); ``python -m tests.helpers.tide_reference GT DT`` prints
its numbers for two COCO files.

Data are COCO-style: ``gt`` a dict with ``images`` / ``annotations`` / ``categories``, ``dt``
a list of results with ``bbox`` (xywh), ``score``, ``category_id``, ``image_id``. With
``iou_type="segm"`` both read ``segmentation`` instead (polygons, uncompressed or compressed
RLE; images need ``height`` and ``width``), and the IoU is pycocotools' mask IoU (tidecv's
mask mode).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from tests.helpers.coco_reference import Image

MAIN = ("cls", "loc", "both", "dupe", "bkg", "miss")
_TIDECV_NAMES = {"Cls": "cls", "Loc": "loc", "Both": "both", "Dupe": "dupe", "Bkg": "bkg", "Miss": "miss"}


def to_coco(images: list[Image], image_ids: list[int] | None = None) -> tuple[dict, list[dict]]:
    """COCO GT dict and results list of generated images (ids 0.. in list order, or ``image_ids``)."""
    ids = list(range(len(images))) if image_ids is None else list(image_ids)
    anns, dets, labels = [], [], set()
    for img_id, im in zip(ids, images, strict=True):
        for j in range(len(im.gt_boxes)):
            box = [float(v) for v in im.gt_boxes[j]]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": int(im.gt_labels[j]),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(im.gt_crowd[j]),
                }
            )
            labels.add(int(im.gt_labels[j]))
        for j in range(len(im.dt_boxes)):
            dets.append(
                {
                    "image_id": img_id,
                    "category_id": int(im.dt_labels[j]),
                    "bbox": [float(v) for v in im.dt_boxes[j]],
                    "score": float(im.dt_scores[j]),
                }
            )
            labels.add(int(im.dt_labels[j]))
    gt = {
        "images": [{"id": i, "width": 640, "height": 640, "file_name": f"{i}.jpg"} for i in ids],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in sorted(labels)],
    }
    return gt, dets


# ------------------------------------------------------------------------------ plain reference
def _ap(points: list[tuple[float, bool]], num_gt: int) -> float:
    """AP in points of one class: (score, is_tp) in tie-break order, 101 recall points r / 100."""
    if num_gt == 0:
        return 0.0
    ranked = sorted(points, key=lambda p: -p[0])  # stable
    precision, recall, hits = [], [], 0
    for n, (_, tp) in enumerate(ranked, 1):
        hits += tp
        precision.append(hits / n)
        recall.append(hits / num_gt)
    total = 0.0
    for r in range(101):
        at = [i for i, rec in enumerate(recall) if rec >= r / 100]
        if at:
            total += max(precision[at[0] :])
    return total / 101 * 100


def _map(points: dict[Any, list[tuple[float, bool]]], num_gt: dict[Any, int]) -> tuple[float, dict]:
    per = {c: _ap(points.get(c, []), num_gt.get(c, 0)) for c in set(points) | set(num_gt)}
    per = {c: v for c, v in per.items() if points.get(c) or num_gt.get(c, 0) > 0}
    return (sum(per.values()) / len(per) if per else 0.0), per


def _shape(gt: dict, dt: list[dict], iou_type: str) -> tuple[dict, list[dict]]:
    """The same data with each object's ``bbox`` replaced by what the IoU reads (boxes or RLEs)."""
    if iou_type == "bbox":
        return gt, dt
    size = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}

    def rle(obj: dict) -> dict:
        seg, (h, w) = obj["segmentation"], size[obj["image_id"]]
        if isinstance(seg, list):  # polygons
            return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        if isinstance(seg["counts"], list):  # uncompressed RLE
            return mask_utils.frPyObjects(seg, h, w)
        return seg

    anns = [dict(a, bbox=rle(a)) for a in gt["annotations"]]
    return dict(gt, annotations=anns), [dict(d, bbox=rle(d)) for d in dt]


def reference_tide(
    gt: dict, dt: list[dict], pos: float = 0.5, bg: float = 0.1, max_dets: int = 100, iou_type: str = "bbox"
) -> dict[str, Any]:
    """``{"ap", "main": {...}, "special": {"fp", "fn"}, "counts": {...}}`` by the rules, slowly."""
    gt, dt = _shape(gt, dt, iou_type)
    by_image_gt: dict[Any, list[dict]] = defaultdict(list)
    by_image_dt: dict[Any, list[dict]] = defaultdict(list)
    for a in gt["annotations"]:
        by_image_gt[a["image_id"]].append(a)
    for i, d in enumerate(dt):
        by_image_dt[d["image_id"]].append(dict(d, _id=i))
    num_gt: dict[Any, int] = defaultdict(int)
    records = []  # per kept detection, in order: dict(cls, score, tp, ignored, kind, fix_cls)
    missed: dict[Any, int] = defaultdict(int)
    unmatched: dict[Any, int] = defaultdict(int)
    for image in [im["id"] for im in gt["images"]]:
        truths = [a for a in by_image_gt[image] if not a["iscrowd"]]
        crowds = [a for a in by_image_gt[image] if a["iscrowd"]]
        for t in truths:
            num_gt[t["category_id"]] += 1
        dets = sorted(by_image_dt[image], key=lambda d: -d["score"])[:max_dets]
        if not dets:
            for t in truths:
                missed[t["category_id"]] += 1
                unmatched[t["category_id"]] += 1
            continue
        boxes = [d["bbox"] for d in dets]
        iou = (
            np.asarray(mask_utils.iou(boxes, [t["bbox"] for t in truths], [0] * len(truths)))
            if truths
            else np.zeros((len(dets), 0))
        )
        used = [False] * len(truths)
        tp = [False] * len(dets)
        for i, d in enumerate(dets):
            cand = [
                (iou[i, j], -j)
                for j, t in enumerate(truths)
                if not used[j] and t["category_id"] == d["category_id"]
            ]
            if cand and max(cand)[0] >= pos:
                j = -max(cand)[1]
                used[j], tp[i] = True, True
        ignored = [False] * len(dets)
        for c in crowds:
            cover = np.asarray(mask_utils.iou(boxes, [c["bbox"]], [1])).reshape(-1)
            for i, d in enumerate(dets):
                if not tp[i] and cover[i] > pos and c["category_id"] == d["category_id"]:
                    ignored[i] = True
        best: dict[int, int] = {}  # GT -> first (best) detection whose fixable error targets it
        usable = [False] * len(truths)
        rows = []
        for i, d in enumerate(dets):
            row = {"cls": d["category_id"], "score": d["score"], "tp": tp[i], "ignored": ignored[i]}
            row.update(kind="tp", target=None)
            rows.append(row)
            if tp[i]:
                continue

            def best_of(values: list[float]) -> tuple[float, int]:
                top = max(values)
                return top, values.index(top)

            same = [iou[i, j] if t["category_id"] == d["category_id"] else 0.0 for j, t in enumerate(truths)]
            other = [0.0 if t["category_id"] == d["category_id"] else iou[i, j] for j, t in enumerate(truths)]
            dupe = [s if used[j] else 0.0 for j, s in enumerate(same)]
            if not truths:
                row["kind"] = "bkg"
            elif bg <= best_of(same)[0] <= pos:
                row["kind"], row["target"] = "loc", best_of(same)[1]
            elif best_of(other)[0] >= pos:
                row["kind"], row["target"] = "cls", best_of(other)[1]
            elif max(dupe) >= pos:
                row["kind"] = "dupe"
            elif max(iou[i]) <= bg:
                row["kind"] = "bkg"
            else:
                row["kind"] = "both"
            j = row["target"]
            if j is not None and not used[j]:
                usable[j] = True
                best.setdefault(j, i)
        for i, row in enumerate(rows):
            j = row["target"]
            fixed_to = truths[j]["category_id"] if row["kind"] == "cls" else row["cls"]
            row["fix_cls"] = fixed_to if j is not None and best.get(j) == i else None
        for j, t in enumerate(truths):
            if not used[j]:
                unmatched[t["category_id"]] += 1
                if not usable[j]:
                    missed[t["category_id"]] += 1
        records += rows

    def points_of(rows: list[dict], score: Any = None) -> dict:
        out: dict[Any, list] = defaultdict(list)
        for r in rows:
            out[r["cls"]].append((r["score"] if score is None else score(r), r["tp"]))
        return out

    counted = [r for r in records if not r["ignored"]]
    ap, _ = _map(points_of(counted), num_gt)
    errors = [r for r in counted if not r["tp"]]
    tps = [r for r in counted if r["tp"]]
    main = {}
    for kind in MAIN:
        pts: dict[Any, list] = defaultdict(list)
        for r in records:  # errors first (fixed, or as they were), in order; then the true positives
            if r["tp"]:
                continue
            if r["kind"] == kind:
                if r["fix_cls"] is not None:
                    pts[r["fix_cls"]].append((r["score"], True))
            elif not r["ignored"]:
                pts[r["cls"]].append((r["score"], False))
        for r in tps:
            pts[r["cls"]].append((r["score"], True))
        gts = {c: n - (missed[c] if kind == "miss" else 0) for c, n in num_gt.items()}
        main[kind] = max(_map(pts, gts)[0] - ap, 0.0)
    fp_points = points_of(errors + tps, score=lambda r: 1.0 if r["tp"] else 0.0)
    fn_points = points_of(errors + tps)
    special = {
        "fp": _map(fp_points, num_gt)[0] - ap,
        "fn": _map(fn_points, {c: n - unmatched[c] for c, n in num_gt.items()})[0] - ap,
    }
    counts = {k: sum(1 for r in records if r["kind"] == k) for k in MAIN[:-1]}
    counts["miss"] = sum(missed.values())
    return {"ap": ap, "main": main, "special": special, "counts": counts}


# ------------------------------------------------------------------------------ tidecv itself
def tidecv_available() -> bool:
    try:
        import tidecv  # noqa: F401
    except Exception:  # not installed, or a dependency (cv2, seaborn, pandas) missing or broken
        return False
    return True


def tidecv_tide(
    gt: dict, dt: list[dict], pos: float = 0.5, bg: float = 0.1, iou_type: str = "bbox"
) -> dict[str, Any]:
    """tidecv's numbers on the same data, in the shape of :func:`reference_tide`.

    With ``iou_type="segm"`` the GT masks go through tidecv's own ``toRLE`` (as its COCO
    loader does) and the results' RLEs as they are, and tidecv runs in its mask mode.
    """
    import contextlib
    import io

    from tidecv import TIDE, Data
    from tidecv.functions import toRLE

    size = {im["id"]: (im.get("height"), im.get("width")) for im in gt["images"]}

    def mask(obj: dict, is_gt: bool) -> Any:
        if iou_type == "bbox":
            return None
        if not is_gt:
            return obj["segmentation"]
        h, w = size[obj["image_id"]]
        return toRLE(obj["segmentation"], w, h)

    g, d = Data("gt", max_dets=100), Data("dt")
    for c in gt["categories"]:
        g.add_class(c["id"], c.get("name", str(c["id"])))
    for im in gt["images"]:
        g.add_image(im["id"], im.get("file_name", str(im["id"])))
    for a in gt["annotations"]:
        if a["iscrowd"]:
            g.add_ignore_region(a["image_id"], a["category_id"], a.get("bbox"), mask(a, True))
        else:
            g.add_ground_truth(a["image_id"], a["category_id"], a.get("bbox"), mask(a, True))
    for r in dt:
        d.add_detection(r["image_id"], r["category_id"], r["score"], r.get("bbox"), mask(r, False))
    tide = TIDE(pos_threshold=pos, background_threshold=bg)
    with contextlib.redirect_stdout(io.StringIO()):
        run = tide.evaluate(g, d, mode=TIDE.BOX if iou_type == "bbox" else TIDE.MASK)
        errors = tide.get_all_errors()
    main = {_TIDECV_NAMES[k]: float(v) for k, v in errors["main"]["dt"].items()}
    special = errors["special"]["dt"]
    counts = {_TIDECV_NAMES[t.short_name]: n for t, n in run.count_errors().items()}
    return {
        "ap": float(run.ap),
        "main": main,
        "special": {"fp": float(special["FalsePos"]), "fn": float(special["FalseNeg"])},
        "counts": counts,
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    with open(sys.argv[1]) as f_gt, open(sys.argv[2]) as f_dt:
        gt_json, dt_json = json.load(f_gt), json.load(f_dt)
    print(json.dumps(tidecv_tide(gt_json, dt_json), indent=2))
