"""COCO segm evaluation from dense masks: objdet against what a torchmetrics user pays, in one run.

Starts where a training loop is: every batch arrives as dense boolean masks in memory
((N, H, W) per image; images of up to 480 x 640, about 60 detections and 7 GT each, 80
classes, 1 % crowd GTs). Batches are generated one at a time (not timed), then:

* objdet: ``MeanAveragePrecision(iou_type="segm")``, ``update`` per batch of 16 images, then
  ``compute`` (masks on ``--device``: cpu, or cuda when present);
* reference: what torchmetrics' segm does per mask (``pycocotools.mask.encode`` of the
  Fortran-ordered mask, after ``.cpu().numpy()``), timed per batch, then faster-coco-eval's
  and pycocotools' COCOeval evaluate + accumulate + summarize on those RLEs (the COCO objects
  are built beforehand and not timed);
* floor: one pass over the mask pixels (``numpy.packbits`` of every mask), timed per batch.

Prints the times, the ratios objdet / reference and the 12 stats' largest difference.

    python benchmarks/coco_segm.py [--images 500] [--quick] [--device cpu|cuda] [--no-pycocotools]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import time
from typing import Any

import numpy as np
import torch

from objdet.training.metrics import MeanAveragePrecision

N_CLASSES = 80


def _ellipse_into(mask: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> None:
    """Draw a filled ellipse into ``mask`` (H, W), touching only its bounding box."""
    h, w = mask.shape
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, h)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, w)
    if y1 <= y0 or x1 <= x0:
        return
    yy = ((np.arange(y0, y1) - cy) / ry) ** 2
    xx = ((np.arange(x0, x1) - cx) / rx) ** 2
    mask[y0:y1, x0:x1] |= (yy[:, None] + xx[None, :]) <= 1.0


def _dense(shape: tuple[int, ...]) -> np.ndarray:
    """All-False masks whose memory is written (as a model's output is), not lazily zero-mapped pages."""
    out = np.empty(shape, dtype=bool)
    out.fill(False)
    return out


def make_image(seed: int, image: int) -> dict[str, Any]:
    """One image: GT and detection masks (bool), labels, crowd flags, scores."""
    rng = np.random.default_rng([seed, image])
    h, w = int(rng.choice([240, 333, 375, 427, 480])), int(rng.choice([320, 500, 640]))
    m = int(rng.poisson(7))
    gt = _dense((m, h, w))
    shapes = []
    for j in range(m):
        ry, rx = np.exp(rng.uniform(np.log(4), np.log(min(h, w) / 2), 2))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        _ellipse_into(gt[j], cy, cx, ry, rx)
        if rng.random() < 0.3:  # a second lobe: not an ellipse
            _ellipse_into(gt[j], cy + ry * 0.6, cx + rx * 0.5, ry * 0.6, rx * 0.7)
        shapes.append((cy, cx, ry, rx))
    gl = rng.integers(0, N_CLASSES, m)
    crowd = (rng.random(m) < 0.01).astype(np.int64)
    n = int(rng.poisson(60))
    near = int(n * 0.6) if m else 0
    dt = _dense((n, h, w))
    dl = rng.integers(0, N_CLASSES, n)
    for j in range(n):
        if j < near:
            k = int(rng.integers(0, m))
            cy, cx, ry, rx = shapes[k]
            s = rng.choice([0.05, 0.15, 0.3])
            _ellipse_into(
                dt[j],
                cy + rng.normal(0, s * ry),
                cx + rng.normal(0, s * rx),
                ry * np.exp(rng.normal(0, s)),
                rx * np.exp(rng.normal(0, s)),
            )
            if rng.random() < 0.85:
                dl[j] = gl[k]
        else:
            ry, rx = np.exp(rng.uniform(np.log(3), np.log(min(h, w) / 3), 2))
            _ellipse_into(dt[j], rng.uniform(0, h), rng.uniform(0, w), ry, rx)
    scores = np.round(rng.random(n), 3)
    return {"gt": gt, "gl": gl, "crowd": crowd, "dt": dt, "dl": dl, "scores": scores, "h": h, "w": w}


def to_inputs(images: list[dict], device: str) -> tuple[list[dict], list[dict]]:
    preds = [
        {
            "masks": torch.from_numpy(im["dt"]).to(device),
            "scores": torch.from_numpy(im["scores"]).to(device),
            "labels": torch.from_numpy(im["dl"]).to(device),
        }
        for im in images
    ]
    target = [
        {
            "masks": torch.from_numpy(im["gt"]).to(device),
            "labels": torch.from_numpy(im["gl"]).to(device),
            "iscrowd": torch.from_numpy(im["crowd"]).to(device),
        }
        for im in images
    ]
    return preds, target


def torchmetrics_encode(masks: torch.Tensor) -> list[dict]:
    """What torchmetrics' segm does with every mask in update(): to CPU numpy, Fortran order, RLE."""
    from pycocotools import mask as mask_utils

    return [mask_utils.encode(np.asfortranarray(m)) for m in masks.cpu().numpy()]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reference_eval(module: str, gt_dataset: dict, results: list[dict]) -> tuple[float, np.ndarray] | None:
    try:
        if module == "faster_coco_eval":
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dataset)  # loadRes / createIndex change what they are given
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        t0 = time.perf_counter()
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        elapsed = time.perf_counter() - t0
    return elapsed, np.asarray(ev.stats[:12])


def state_bytes(metric: MeanAveragePrecision) -> int:
    total = 0
    for name in metric._defaults:
        value = getattr(metric, name)
        for t in value if isinstance(value, list) else [value]:
            total += t.numel() * t.element_size()
    return total


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="60 images, no pycocotools")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-pycocotools", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.no_pycocotools = 60, True
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Times (s) of objdet, the floor, the encoding and each installed reference, on the same masks."""
    torch.set_num_threads(args.threads)
    metric = MeanAveragePrecision(iou_type="segm").to(args.device)
    t_ours = t_encode = t_floor = 0.0
    n_det = n_gt = n_pixels = 0
    images_json, anns, results = [], [], []
    for start in range(0, args.images, args.batch):
        batch = [make_image(args.seed, i) for i in range(start, min(start + args.batch, args.images))]
        preds, target = to_inputs(batch, args.device)
        sync(args.device)

        t0 = time.perf_counter()
        for im in batch:
            np.packbits(im["dt"].reshape(len(im["dt"]), -1).view(np.uint8), axis=1)
            np.packbits(im["gt"].reshape(len(im["gt"]), -1).view(np.uint8), axis=1)
        t_floor += time.perf_counter() - t0

        t0 = time.perf_counter()
        metric.update(preds, target)
        sync(args.device)
        t_ours += time.perf_counter() - t0

        t0 = time.perf_counter()
        rles = [
            (torchmetrics_encode(p["masks"]), torchmetrics_encode(t["masks"]))
            for p, t in zip(preds, target, strict=True)
        ]
        t_encode += time.perf_counter() - t0

        for k, (im, (d_rle, g_rle)) in enumerate(zip(batch, rles, strict=True)):
            img_id = start + k
            images_json.append({"id": img_id, "height": im["h"], "width": im["w"]})
            for j, r in enumerate(g_rle):
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": img_id,
                        "category_id": int(im["gl"][j]),
                        "segmentation": r,
                        "area": float(im["gt"][j].sum()),
                        "iscrowd": int(im["crowd"][j]),
                        "bbox": [0, 0, 0, 0],
                    }
                )
            for j, r in enumerate(d_rle):
                results.append(
                    {
                        "image_id": img_id,
                        "category_id": int(im["dl"][j]),
                        "segmentation": r,
                        "score": float(im["scores"][j]),
                    }
                )
            n_det += len(d_rle)
            n_gt += len(g_rle)
            n_pixels += im["h"] * im["w"] * (len(d_rle) + len(g_rle))
        del preds, target, batch

    t0 = time.perf_counter()
    metric.compute()
    sync(args.device)
    t_compute = time.perf_counter() - t0
    t_ours += t_compute
    stats_ours = metric.coco_eval(full=False)[0].cpu().numpy()
    gt_dataset = {
        "images": images_json,
        "annotations": anns,
        "categories": [{"id": c} for c in range(N_CLASSES)],
    }
    refs: dict[str, tuple[float, float] | None] = {}
    for module in ("faster_coco_eval", "pycocotools"):
        if module == "pycocotools" and args.no_pycocotools:
            continue
        out = reference_eval(module, gt_dataset, results)
        refs[module] = None if out is None else (out[0], float(np.abs(out[1] - stats_ours).max()))
    size = state_bytes(metric)
    return {
        "images": args.images,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "n_gt": n_gt,
        "n_det": n_det,
        "gpixels": n_pixels / 1e9,
        "ours": t_ours,
        "compute": t_compute,
        "floor": t_floor,
        "encode": t_encode,
        "refs": refs,
        "state_bytes": size,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['images']} images, {r['n_gt']} GT, {r['n_det']} detections, {r['gpixels']:.2f} G mask pixels, "
        f"device {r['device']}, {r['threads']} threads"
    )
    print("\n| step | time (s) |\n|---|---:|")
    print(f"| objdet update + compute ({r['device']}) | {r['ours']:.3f} |")
    print(f"| of which compute | {r['compute']:.3f} |")
    print(f"| floor: one pass over the mask pixels (numpy.packbits) | {r['floor']:.3f} |")
    print(f"| pycocotools.mask.encode of every mask (torchmetrics' update) | {r['encode']:.3f} |")
    for module, out in r["refs"].items():
        if out is None:
            print(f"| {module}: not installed | |")
        else:
            print(f"| {module} evaluate + accumulate + summarize | {out[0]:.3f} |")
    print("\n| objdet vs | reference time (s) | ratio objdet / reference | max abs diff of the 12 stats |")
    print("|---|---:|---:|---:|")
    for module, out in r["refs"].items():
        if out is not None:
            ref = r["encode"] + out[0]
            print(f"| encode + {module} | {ref:.3f} | **{r['ours'] / ref:.3f}** | {out[1]:.2e} |")
    print(f"| floor (one pass) | {r['floor']:.3f} | {r['ours'] / r['floor']:.2f} x the floor | |")
    size = r["state_bytes"]
    print(f"\nstate: {size} bytes, {size / max(r['n_det'], 1):.1f} B per detection (no masks kept)")


def run(quick: bool) -> list[dict]:
    """Rows for benchmarks/run.py: against encode + each reference, and against the one-pass floor."""
    r = measure(parse_args(["--quick"] if quick else []))
    report(r)
    what = f"COCO segm, {r['images']} images / {r['n_det']} dets from dense masks, update + compute"
    rows = []
    for module, out in r["refs"].items():
        rows.append(
            {
                "benchmark": what,
                "objdet_s": r["ours"],
                "reference": f"pycocotools mask.encode + {module} evaluate",
                "reference_s": None if out is None else r["encode"] + out[0],
                "note": "" if out is None else f"stats differ by at most {out[1]:.1e}",
            }
        )
    rows.append(
        {
            "benchmark": what,
            "objdet_s": r["ours"],
            "reference": "floor: one pass over the mask pixels (numpy.packbits)",
            "reference_s": r["floor"],
            "note": f"state {r['state_bytes'] / max(r['n_det'], 1):.1f} B per detection",
        }
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    report(measure(parse_args(argv)))


if __name__ == "__main__":
    main()
