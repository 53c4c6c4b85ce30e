"""COCO bbox evaluation in the training loop: objdet against hotcoco, ultrafast-pycocotools,
faster-coco-eval and pycocotools, in one run.

Synthetic COCO-val-shaped data: 5000 images, 80 classes, about 7 GT and 80 scored
detections per image (most near a GT, some clutter), about 1% crowd GTs. Times:

* objdet: ``MeanAveragePrecision(class_metrics=True)``, update in batches of 16 + compute;
* hotcoco ``StreamingEval``: the same batches of 16 images (images, GT dicts and the (N, 7)
  detection arrays it takes, built beforehand and not timed), update + finalize + accumulate
  + summarize: the other evaluator that matches batch by batch;
* hotcoco, ultrafast-pycocotools, faster-coco-eval and pycocotools: COCOeval evaluate +
  accumulate + summarize on COCO objects built beforehand (their loading is not timed).

``--busy N`` runs everything with N busy processes beside it (pure-Python loops, as
DataLoader workers keep the cores busy). Checks that the 12 stats agree and reports the
metric state's bytes per detection.

    python benchmarks/coco_bbox.py [--images 5000] [--repeat 3] [--no-pycocotools] [--busy 2]

``run(quick)`` gives the summary rows to ``benchmarks/run.py`` (all benchmarks in one run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import torch

from objdet.training.metrics import MeanAveragePrecision


def make_data(
    n_images: int, n_classes: int = 80, seed: int = 0
) -> tuple[list[dict], list[dict], dict, list[dict]]:
    """torchmetrics-format inputs (xywh) and the same data as COCO GT dataset + results list."""
    rng = np.random.default_rng(seed)
    preds, target, images, gt_anns, results = [], [], [], [], []
    for img in range(n_images):
        m = int(rng.poisson(7))
        xy = rng.uniform(0, 560, (m, 2))
        wh = np.exp(rng.uniform(np.log(8), np.log(400), (m, 2)))
        gt = np.concatenate([xy, wh], 1)
        gl = rng.integers(0, n_classes, m)
        crowd = (rng.random(m) < 0.01).astype(np.int64)
        n = int(rng.poisson(80))
        near = min(n, int(n * 0.6)) if m else 0
        src = rng.integers(0, max(m, 1), near)
        dt_near = gt[src] if m else np.zeros((0, 4))
        dt_near = dt_near + rng.normal(0, 0.15, (near, 4)) * np.concatenate(
            [dt_near[:, 2:], dt_near[:, 2:]], 1
        )
        dl_near = gl[src] if m else np.zeros(0, np.int64)
        swap = rng.random(near) < 0.15
        dl_near = np.where(swap, rng.integers(0, n_classes, near), dl_near)
        k = n - near
        clutter = np.concatenate(
            [rng.uniform(0, 560, (k, 2)), np.exp(rng.uniform(np.log(4), np.log(300), (k, 2)))], 1
        )
        dt = np.concatenate([dt_near, clutter])
        dt[:, 2:] = np.abs(dt[:, 2:])
        dl = np.concatenate([dl_near, rng.integers(0, n_classes, k)])
        sc = np.round(rng.random(n), 3)  # 3 decimals: ties across images, as in rounded result files
        preds.append(
            {"boxes": torch.from_numpy(dt), "scores": torch.from_numpy(sc), "labels": torch.from_numpy(dl)}
        )
        target.append(
            {
                "boxes": torch.from_numpy(gt),
                "labels": torch.from_numpy(gl),
                "iscrowd": torch.from_numpy(crowd),
            }
        )
        images.append({"id": img, "width": 640, "height": 640})
        for j in range(m):
            b = gt[j].tolist()
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": img,
                    "category_id": int(gl[j]),
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": int(crowd[j]),
                }
            )
        for j in range(n):
            b = dt[j].tolist()
            results.append({"image_id": img, "category_id": int(dl[j]), "bbox": b, "score": float(sc[j])})
    gt_dataset = {
        "images": images,
        "annotations": gt_anns,
        "categories": [{"id": c} for c in range(n_classes)],
    }
    return preds, target, gt_dataset, results


def run_objdet(preds: list[dict], target: list[dict], batch: int = 16) -> MeanAveragePrecision:
    """What is timed: updates in batches of 16 and one compute() with per-class results.

    On CUDA inputs the metric lives on the GPU (torch kernels); the result is read back, so
    the time includes the device's work.
    """
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    device = preds[0]["boxes"].device if preds else torch.device("cpu")
    metric.to(device)
    for k in range(0, len(preds), batch):
        metric.update(preds[k : k + batch], target[k : k + batch])
    float(metric.compute()["map"])
    return metric


def run_cpu(preds: list[dict], target: list[dict]) -> np.ndarray:
    return run_objdet(preds, target).coco_eval(full=False)[0].numpy()


def to_device(items: list[dict], device: str) -> list[dict]:
    return [{k: v.to(device) for k, v in d.items()} for d in items]


def reference_runner(module: str) -> Callable[[dict, list[dict]], np.ndarray] | None:
    try:
        if module == "faster_coco_eval":
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        elif module == "hotcoco":
            from hotcoco import COCO, COCOeval
        elif module == "ultrafast_pycocotools":
            from ultrafast_pycocotools import COCO, COCOeval
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None

    def build(gt_dataset: dict, results: list[dict]) -> tuple[Any, Any]:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if module == "hotcoco":
                gt = COCO(gt_dataset)
                return gt, gt.load_res(results)
            gt = COCO()
            gt.dataset = gt_dataset
            gt.createIndex()
            dt = gt.loadRes(results)
        return gt, dt

    def evaluate(gt: Any, dt: Any) -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return np.asarray(ev.stats[:12])

    evaluate.build = build  # type: ignore[attr-defined]
    return evaluate


def hotcoco_streaming(
    gt_dataset: dict, results: list[dict], batch: int = 16
) -> Callable[[], np.ndarray] | None:
    """hotcoco's StreamingEval fed the benchmark's batches; returns the timed function (or None)."""
    try:
        from hotcoco import StreamingEval
    except ImportError:
        return None
    images = gt_dataset["images"]
    anns: dict[int, list[dict]] = {}
    for a in gt_dataset["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    dets: dict[int, list[list[float]]] = {}
    for r in results:
        dets.setdefault(r["image_id"], []).append([r["image_id"], *r["bbox"], r["score"], r["category_id"]])
    batches = []
    for k in range(0, len(images), batch):
        ims = images[k : k + batch]
        rows = [row for im in ims for row in dets.get(im["id"], [])]
        gts = [a for im in ims for a in anns.get(im["id"], [])]
        batches.append((ims, gts, np.asarray(rows, dtype=np.float64).reshape(-1, 7)))
    categories = gt_dataset["categories"]

    def evaluate() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            stream = StreamingEval(categories, iou_type="bbox")
            for ims, gts, rows in batches:
                stream.update(ims, gts, rows)
            ev = stream.finalize()
            ev.accumulate()
            ev.summarize()
        return np.asarray(ev.stats[:12])

    return evaluate


#: a busy process: pure-Python work (as a DataLoader worker decoding images), until killed
_SPIN = "x = 0\nwhile True:\n    x = (x * 31 + 7) % 1000003\n"


@contextlib.contextmanager
def busy_processes(n: int) -> Any:
    """``n`` processes keeping cores busy for the duration of the block (checked to be running)."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(max(n, 0))]
    try:
        time.sleep(1.0 if procs else 0.0)  # let them start spinning
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a busy process exited early: {dead}")
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def state_bytes(metric: MeanAveragePrecision) -> int:
    total = 0
    for name in metric._defaults:
        value = getattr(metric, name)
        tensors = value if isinstance(value, list) else [value]
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pycocotools", action="store_true")
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the benchmark")
    parser.add_argument(
        "--device", default="cpu", help="device of the inputs and the metric (cuda: GPU in the loop)"
    )
    return parser.parse_args(argv)


def library_version(module: str) -> str:
    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return "?"


def measure(args: argparse.Namespace) -> list[dict]:
    """Run the benchmark as configured, print its table, return one summary row per reference."""
    torch.set_num_threads(os.cpu_count() or 1)

    preds, target, gt_dataset, results = make_data(args.images)
    n_det = sum(len(p["scores"]) for p in preds)
    n_gt = sum(len(t["labels"]) for t in target)
    load = f", {args.busy} busy processes beside it" if args.busy else ""
    print(
        f"{args.images} images, {n_gt} GT, {n_det} detections, 80 classes, "
        f"{torch.get_num_threads()} torch threads{load}"
    )
    cpu_preds, cpu_target = preds, target
    if args.device != "cpu":
        preds, target = to_device(preds, args.device), to_device(target, args.device)
        load += f", objdet on {args.device}"
    run_objdet(preds[:32], target[:32])  # compile cache loaded (or CUDA warmed up), not timed
    where = f"{args.images} images, batches of 16{load}"
    references: list[tuple[str, str, Callable[[], np.ndarray] | None]] = []
    streaming = hotcoco_streaming(gt_dataset, results)
    references.append(
        ("hotcoco", "StreamingEval, same batches (update+finalize+accumulate+summarize)", streaming)
    )
    if args.device != "cpu":  # the compiled CPU engine as a reference for the GPU run
        references.append(("objdet", "on CPU (compiled engine)", lambda: run_cpu(cpu_preds, cpu_target)))
    for name in ("hotcoco", "ultrafast_pycocotools", "faster_coco_eval", "pycocotools"):
        if name == "pycocotools" and args.no_pycocotools:
            continue
        runner = reference_runner(name)
        fn = None
        if runner is not None:
            gt, dt = runner.build(gt_dataset, results)  # type: ignore[attr-defined]
            fn = lambda r=runner, g=gt, d=dt: r(g, d)  # noqa: E731
        references.append((name, "COCOeval on prebuilt objects (evaluate+accumulate+summarize)", fn))

    with busy_processes(args.busy):
        t_ours, metric = timed(lambda: run_objdet(preds, target), args.repeat)
        timings = []
        for name, what, fn in references:
            if fn is None:
                timings.append((name, what, None, None))
                continue
            t_ref, stats_ref = timed(fn, 1 if name == "pycocotools" else args.repeat)
            timings.append((name, what, t_ref, stats_ref))
        print(
            "load average (1, 5, 15 min) at the end of the timed runs: {:.2f} {:.2f} {:.2f}".format(
                *os.getloadavg()
            )
        )
    stats_ours = metric.coco_eval(full=False)[0].cpu().numpy()  # float64 stats for the comparison, not timed
    kept = metric._state("macro_scores").numel()
    size = state_bytes(metric)
    summary = []
    rows = [("objdet MeanAveragePrecision (update+compute)", t_ours, stats_ours)]
    for name, what, t_ref, stats_ref in timings:
        label = f"{name.replace('_', '-')} {library_version(name)} {what}"
        if t_ref is None:
            print(f"{name}: not installed, skipped")
            note = "reference not installed"
        else:
            rows.append((label, t_ref, stats_ref))
            note = (
                f"12 stats max |diff| {np.abs(stats_ref - stats_ours).max():.1e}; "
                f"state {size / n_det:.1f} B per detection"
            )
        summary.append(
            {
                "benchmark": f"COCO bbox in the loop, {where} (update + compute)",
                "objdet_s": t_ours,
                "reference": label,
                "reference_s": t_ref,
                "note": note,
            }
        )

    print("\n| implementation | time (s) | ours / this | max abs diff of the 12 stats vs objdet |")
    print("|---|---:|---:|---:|")
    for name, t, s in rows:
        print(f"| {name} | {t:.3f} | {t_ours / t:.3f} | {np.abs(s - stats_ours).max():.2e} |")
    print(
        f"\nstate: {size} bytes = {size / n_det:.1f} B per input detection ({kept} kept of {n_det}, "
        f"{size / max(kept, 1):.1f} B per kept detection, GT rows included)"
    )
    return summary


def run(quick: bool = False) -> list[dict]:
    """Rows for ``benchmarks/run.py``: idle and with two busy processes; 200 images once with ``quick``."""
    if quick:
        return measure(parse_args(["--images", "200", "--repeat", "1"]))
    idle = measure(parse_args(["--repeat", "5"]))
    busy = measure(parse_args(["--repeat", "3", "--busy", "2", "--no-pycocotools"]))
    return idle + [row for row in busy if "hotcoco" in row["reference"]]


if __name__ == "__main__":
    measure(parse_args())
