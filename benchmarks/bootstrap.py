"""Bootstrap intervals over images of COCO mAP: objdet's weighted state pass against re-evaluating.

    python benchmarks/bootstrap.py [--images 5000] [--resamples 1000]

objdet: ``MeanAveragePrecision.bootstrap(n_resamples=B)`` on the state of the loop of
coco_bbox.py (5000 images, 80 classes, about 400k detections), timed alone (the updates are
not). Reference: the same B resamples evaluated the usual way, each resampled data set given
to hotcoco's ``COCOeval`` (the fastest exact evaluator here, its objects built beforehand):
a few resamples are timed and the time is scaled to B (stated in the note). The first
resample is also checked: hotcoco's map on it equals objdet's replicate.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _coco_bbox() -> Any:
    name = "objdet_benchmarks_coco_bbox_for_bootstrap"
    spec = importlib.util.spec_from_file_location(name, HERE / "coco_bbox.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _resampled(gt_dataset: dict, results: list[dict], counts: np.ndarray) -> tuple[dict, list[dict]]:
    """The data set with image i repeated counts[i] times (new image and annotation ids)."""
    images = gt_dataset["images"]
    anns_of: dict[int, list[dict]] = {}
    for a in gt_dataset["annotations"]:
        anns_of.setdefault(a["image_id"], []).append(a)
    dets_of: dict[int, list[dict]] = {}
    for r in results:
        dets_of.setdefault(r["image_id"], []).append(r)
    new_images, new_anns, new_results = [], [], []
    for i, image in enumerate(images):
        for _ in range(int(counts[i])):
            new_id = len(new_images) + 1
            new_images.append({**image, "id": new_id})
            for a in anns_of.get(image["id"], []):
                new_anns.append({**a, "id": len(new_anns) + 1, "image_id": new_id})
            for r in dets_of.get(image["id"], []):
                new_results.append({**r, "image_id": new_id})
    return {**gt_dataset, "images": new_images, "annotations": new_anns}, new_results


def measure(args: argparse.Namespace) -> list[dict]:
    bench = _coco_bbox()
    preds, target, gt_dataset, results = bench.make_data(args.images)
    metric = bench.run_objdet(preds, target)
    metric.bootstrap(n_resamples=2, seed=0)  # compiled code loaded from the cache, not timed
    start = time.perf_counter()
    ci = metric.bootstrap(n_resamples=args.resamples, seed=0)
    t_ours = time.perf_counter() - start
    print(
        f"{args.images} images, {args.resamples} resamples: {t_ours:.2f} s; map {ci.estimate['map']:.4f} "
        f"[{ci.low['map']:.4f}, {ci.high['map']:.4f}], bias {ci.bias['map']:+.4f}"
    )
    from objdet.functional.bootstrap import bootstrap_weights

    runner = bench.reference_runner("hotcoco")
    row = {
        "benchmark": f"bootstrap of COCO mAP over {args.images} images, {args.resamples} resamples "
        "(intervals of map, map_50, map_75, per-class AP)",
        "objdet_s": t_ours,
        "reference": "hotcoco COCOeval on each resampled data set (prebuilt objects), scaled from "
        f"{args.timed} timed resamples",
        "reference_s": None,
        "note": "reference not installed",
    }
    if runner is None:
        return [row]
    weights = bootstrap_weights(args.images, args.resamples, 0)
    spent, first_map = 0.0, None
    for b in range(args.timed):
        gt_b, dt_b = runner.build(*_resampled(gt_dataset, results, weights[:, b]))  # type: ignore[attr-defined]
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            stats = runner(gt_b, dt_b)
        spent += time.perf_counter() - start
        first_map = float(stats[0]) if first_map is None else first_map
    row["reference_s"] = spent / args.timed * args.resamples
    diff = abs(first_map - float(ci.replicates[0, 0])) if first_map is not None else float("nan")
    row["note"] = (
        f"first resample's map: hotcoco vs objdet |diff| {diff:.1e}; reference time = mean of "
        f"{args.timed} resamples x {args.resamples}; map bias of the resamples {ci.bias['map']:+.4f}"
    )
    print(row["note"])
    return [row]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--timed", type=int, default=3, help="reference resamples actually timed")
    return parser.parse_args(argv)


def run(quick: bool = False) -> list[dict]:
    """Rows for ``benchmarks/run.py``."""
    if quick:
        return measure(parse_args(["--images", "200", "--resamples", "50", "--timed", "1"]))
    return measure(parse_args([]))


if __name__ == "__main__":
    measure(parse_args())
