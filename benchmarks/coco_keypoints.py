"""COCO keypoint evaluation (OKS): objdet against hotcoco, faster-coco-eval and pycocotools, in one run.

Data: a COCO-person-keypoints-shaped set (``--images`` images, default 5000, about 3 people each
with COCO's 17 keypoints, a fifth of them unlabelled, some people without keypoints, 1 % crowd;
20 detected poses per image, most near a person, without ``bbox`` as many pose models write
them). Timed, on the same data:

* objdet in the loop: ``MeanAveragePrecision(iou_type="keypoints")``, ``update`` per batch of
  16 images from tensors (built beforehand, not timed), then ``compute``;
* hotcoco, faster-coco-eval and pycocotools: ``COCOeval(gt, dt, "keypoints")`` evaluate +
  accumulate + summarize on COCO objects built beforehand (not timed);
* on files, whole processes: ``objdet eval GT DT --iou-type keypoints --no-plots --json OUT -q``
  against hotcoco's ``coco eval --gt GT --dt DT --iou-type keypoints --json`` (median of
  ``--repeat`` runs, alternating).

The 10 stats of every tool are compared with pycocotools'.

    python benchmarks/coco_keypoints.py [--images 5000] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from objdet.training.metrics import MeanAveragePrecision

STAT_KEYS = (
    "map", "map_50", "map_75", "map_medium", "map_large",
    "mar_20", "mar_50", "mar_75", "mar_medium", "mar_large",
)  # fmt: skip
HOTCOCO_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def make_data(n_images: int, seed: int = 0, dets_per_image: int = 20) -> tuple[dict, list[dict]]:
    """A COCO keypoint GT dict and a result list (no ``bbox``), numpy-generated."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480} for i in range(n_images)]
    n_people = rng.poisson(3, n_images)
    img_of = np.repeat(np.arange(n_images), n_people)
    g = img_of.size
    height = np.exp(rng.uniform(np.log(30), np.log(400), g))
    width = height * rng.uniform(0.3, 0.6, g)
    x0, y0 = rng.uniform(0, 640 - width), rng.uniform(0, 480 - np.minimum(height, 470))
    xy = np.stack(
        [
            x0[:, None] + rng.random((g, 17)) * width[:, None],
            y0[:, None] + rng.random((g, 17)) * height[:, None],
        ],
        2,
    )
    vis = np.where(rng.random((g, 17)) < 0.8, 2, 0)
    vis[(height < 50) & (rng.random(g) < 0.5)] = 0  # small people without keypoints
    gt_kp = np.concatenate([np.round(xy), vis[..., None]], 2)
    gt_kp[vis == 0] = 0
    area = np.round(width * height * rng.uniform(0.4, 0.7, g), 2)
    crowd = rng.random(g) < 0.01
    anns = [
        {
            "id": k + 1, "image_id": int(img_of[k]) + 1, "category_id": 1,
            "keypoints": gt_kp[k].ravel().tolist(), "num_keypoints": int((vis[k] > 0).sum()),
            "bbox": [round(float(v), 2) for v in (x0[k], y0[k], width[k], height[k])],
            "area": float(area[k]), "iscrowd": int(crowd[k]),
        }
        for k in range(g)
    ]  # fmt: skip
    d = n_images * dets_per_image
    det_img = np.repeat(np.arange(n_images), dets_per_image)
    starts = np.concatenate([[0], np.cumsum(n_people)[:-1]])
    has = n_people[det_img] > 0
    pick = starts[det_img] + (rng.random(d) * np.maximum(n_people[det_img], 1)).astype(np.int64)
    near = has & (rng.random(d) < 0.6)
    scale = np.where(near, height[np.minimum(pick, g - 1)], 100.0)
    base = np.where(near[:, None, None], xy[np.minimum(pick, g - 1)], rng.uniform(0, 480, (d, 17, 2)))
    det_xy = np.round(
        base + rng.normal(0, 1, (d, 17, 2)) * (scale * rng.uniform(0.005, 0.08, d))[:, None, None], 2
    )
    conf = np.round(rng.random((d, 17, 1)), 3)
    det_kp = np.concatenate([det_xy, conf], 2)
    score = np.round(np.where(near, rng.beta(5, 2, d), rng.beta(2, 5, d)), 4)
    results = [
        {
            "image_id": int(det_img[k]) + 1,
            "category_id": 1,
            "keypoints": det_kp[k].ravel().tolist(),
            "score": float(score[k]),
        }
        for k in range(d)
    ]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    return gt, results


def to_inputs(gt: dict, results: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per-image metric inputs with ``image_id`` (what a training loop would hold)."""
    n = len(gt["images"])
    by_gt: list[list[dict]] = [[] for _ in range(n)]
    by_dt: list[list[dict]] = [[] for _ in range(n)]
    for a in gt["annotations"]:
        by_gt[a["image_id"] - 1].append(a)
    for r in results:
        by_dt[r["image_id"] - 1].append(r)
    preds, target = [], []
    for i in range(n):
        dts, gts = by_dt[i], by_gt[i]
        preds.append(
            {
                "keypoints": torch.tensor([r["keypoints"] for r in dts], dtype=torch.float64).reshape(
                    -1, 17, 3
                ),
                "scores": torch.tensor([r["score"] for r in dts], dtype=torch.float64),
                "labels": torch.ones(len(dts), dtype=torch.int64),
            }
        )
        target.append(
            {
                "keypoints": torch.tensor([a["keypoints"] for a in gts], dtype=torch.float64).reshape(
                    -1, 17, 3
                ),
                "boxes": torch.tensor([a["bbox"] for a in gts], dtype=torch.float64).reshape(-1, 4),
                "area": torch.tensor([a["area"] for a in gts], dtype=torch.float64),
                "iscrowd": torch.tensor([a["iscrowd"] for a in gts], dtype=torch.int64),
                "num_keypoints": torch.tensor([a["num_keypoints"] for a in gts], dtype=torch.int64),
                "labels": torch.ones(len(gts), dtype=torch.int64),
                "image_id": i + 1,
            }
        )
    return preds, target


def run_objdet(preds: list[dict], target: list[dict], batch: int = 16) -> np.ndarray:
    metric = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    for k in range(0, len(preds), batch):
        metric.update(preds[k : k + batch], target[k : k + batch])
    out = metric.compute()
    return np.array([out[key].item() for key in STAT_KEYS])


def reference(module: str, gt: dict, results: list[dict]) -> Callable[[], np.ndarray] | None:
    """The timed evaluate + accumulate + summarize of ``module`` on COCO objects built here (not timed)."""
    try:
        if module == "hotcoco":
            from hotcoco import COCO, COCOeval
        elif module == "faster_coco_eval":
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        if module == "hotcoco":
            path = Path(tempfile.mkdtemp()) / "gt.json"
            path.write_text(json.dumps(gt))
            coco = COCO(str(path))
        else:
            coco.dataset = json.loads(json.dumps(gt))
            coco.createIndex()
        dt = coco.loadRes(json.loads(json.dumps(results)))

    def evaluate() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(coco, dt, "keypoints")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return np.asarray(ev.stats, np.float64)

    return evaluate


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def library_version(module: str) -> str:
    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return "?"


def cli_runs(gt: dict, results: list[dict], repeat: int) -> list[dict]:
    """``objdet eval`` against hotcoco's ``coco eval``: median of ``repeat`` alternating runs."""
    folder = Path(tempfile.mkdtemp())
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(results))
    ours_cmd = [sys.executable, "-m", "objdet", "eval", str(gt_path), str(dt_path), "--iou-type", "keypoints",
                "--no-plots", "--json", str(folder / "m.json"), "-q"]  # fmt: skip
    coco = shutil.which("coco") or shutil.which("coco", path=str(Path(sys.executable).parent))
    theirs_cmd = [
        coco,
        "eval",
        "--gt",
        str(gt_path),
        "--dt",
        str(dt_path),
        "--iou-type",
        "keypoints",
        "--json",
    ]
    subprocess.run(ours_cmd, check=True)  # warm numba's cache: the loop, not the first compilation, is timed
    times: dict[str, list[float]] = {"objdet": [], "hotcoco": []}
    theirs_out = ""
    for _ in range(repeat):
        for name, cmd in (("objdet", ours_cmd), ("hotcoco", theirs_cmd)):
            if name == "hotcoco" and coco is None:
                continue
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t0)
            if name == "hotcoco":
                theirs_out = proc.stdout
    ours = json.loads((folder / "m.json").read_text())
    note = ""
    if theirs_out:
        start = theirs_out.find("{")
        theirs = json.loads(theirs_out[start:]) if start >= 0 else {}
        metrics = theirs.get("metrics", theirs)
        if all(k in metrics for k in HOTCOCO_KEYS):
            diff = max(abs(ours[a] - metrics[b]) for a, b in zip(STAT_KEYS, HOTCOCO_KEYS, strict=True))
            note = f"10 stats: max |objdet - hotcoco| = {diff:.1e}"
    shutil.rmtree(folder, ignore_errors=True)
    return [
        {
            "benchmark": f"`objdet eval --iou-type keypoints`, whole process ({len(gt['images'])} images, "
            f"{len(results)} poses)",
            "objdet_s": statistics.median(times["objdet"]),
            "reference": f"hotcoco {library_version('hotcoco')} `coco eval --iou-type keypoints`",
            "reference_s": statistics.median(times["hotcoco"]) if times["hotcoco"] else None,
            "note": note,
        }
    ]


def measure(n_images: int, repeat: int, files: bool = True) -> list[dict]:
    gt, results = make_data(n_images)
    preds, target = to_inputs(gt, results)
    run_objdet(preds[:32], target[:32])  # compile / load numba's cache before timing
    t_ours, ours = timed(lambda: run_objdet(preds, target), repeat)
    print(f"{n_images} images, {len(gt['annotations'])} people, {len(results)} poses")
    print(f"objdet in the loop (update per 16 images + compute): {t_ours:.3f} s")
    rows, ref_stats = [], None
    for module in ("pycocotools", "hotcoco", "faster_coco_eval"):
        fn = reference(module, gt, results)
        if fn is None:
            continue
        t_ref, stats = timed(fn, repeat if module != "pycocotools" else 1)
        if module == "pycocotools":
            ref_stats = stats
        diff = float(np.abs(stats - ours).max())
        print(
            f"{module} COCOeval keypoints: {t_ref:.3f} s  (objdet / it = {t_ours / t_ref:.2f}); "
            f"max |diff| {diff:.1e}"
        )
        rows.append(
            {
                "benchmark": f"COCO keypoints in the loop, {n_images} images, {len(results)} poses, "
                "batches of 16",
                "objdet_s": t_ours,
                "reference": f"{module} {library_version(module)} COCOeval keypoints "
                "(evaluate+accumulate+summarize, objects prebuilt)",
                "reference_s": t_ref,
                "note": f"10 stats: max |objdet - {module}| = {diff:.1e} (float32 outputs)",
            }
        )
    if ref_stats is not None:
        print("pycocotools stats:", np.round(ref_stats, 4).tolist())
    if files:
        for row in cli_runs(gt, results, repeat):
            print(
                f"{row['benchmark']}: objdet {row['objdet_s']:.2f} s, reference {row['reference_s']} s; "
                f"{row['note']}"
            )
            rows.append(row)
    return rows


def run(quick: bool = False) -> list[dict]:
    return measure(200 if quick else 5000, 1 if quick else 3, files=not quick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        run(quick=True)
    else:
        measure(args.images, args.repeat)


if __name__ == "__main__":
    main()
