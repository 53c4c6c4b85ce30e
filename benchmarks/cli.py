"""``objdet eval`` end to end against hotcoco's ``coco eval``, whole processes on the same COCO files.

Both sides start from the files in a fresh process each, so interpreter start, imports,
JSON parsing, evaluation and printing all count; the times are the median of ``--repeat``
runs, alternating the two programs, and the peak RSS of each child is read from
``os.wait4`` (its own ``ru_maxrss``):

* objdet: ``python -m objdet eval GT DT --no-plots --json OUT -q`` (``--iou-type segm`` for
  masks; the JSON carries the per-class table and the confusion matrix);
* hotcoco: ``coco eval --gt GT --dt DT --json`` (``--iou-type segm``), its command line.

Data sets:

* bbox: the COCO-val-shaped set of ``coco_bbox.py`` (5000 images, 80 classes, about 400k
  detections);
* segm: the masks of ``coco_segm.py`` (500 images, about 30k detections), written as
  compressed RLE results without ``bbox`` (as mask models write them); segm-large: the same
  for 5000 images (about 300k results; skipped by ``--quick``);
* objects365: an Objects365-shaped set (80k images, 365 classes, about 1.2M detections and 1M
  GTs), generated with vectorised numpy (skipped by ``--quick``); time and peak RSS.

The 12 stats of both are compared.

And the demo, ``python -m objdet eval --demo --out DIR -q`` (48 images, five PNGs): warm (the
median of ``--repeat`` runs), beside two busy processes, and once with an empty compile cache
of its own (``NUMBA_CACHE_DIR``: what the first run after an install compiles; matplotlib's
font cache is not emptied). Its reference is the same run without the PNGs (``--no-plots``).

    python benchmarks/cli.py [--repeat 3] [--quick] [--only bbox segm segm-large objects365 demo]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: our stat keys, and hotcoco's ``--json`` names of the same 12 numbers
STAT_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip
HOTCOCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
SETS = ("bbox", "segm", "segm-large", "objects365", "demo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="small bbox and segm sets, no segm-large or objects365"
    )
    parser.add_argument("--only", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--images", type=int, default=None, help="bbox images (default 5000; 300 quick)")
    return parser.parse_args(argv)


def hotcoco_cli() -> str | None:
    """hotcoco's ``coco`` program: next to this Python, else on PATH."""
    here = Path(sys.executable).with_name("coco")
    return str(here) if here.exists() else shutil.which("coco")


# ----------------------------------------------------------------------------- data
def write_bbox(n_images: int, folder: Path) -> tuple[Path, Path]:
    from coco_bbox import make_data

    _, _, gt_dataset, results = make_data(n_images)
    return _write(folder, "bbox", gt_dataset, results)


def write_segm(n_images: int, folder: Path) -> tuple[Path, Path]:
    from pycocotools import mask as mask_utils

    from coco_segm import make_image

    def rles(masks: np.ndarray) -> list[dict]:
        if not len(masks):
            return []
        out = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
        return [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in out]

    images, anns, results = [], [], []
    for i in range(n_images):
        im = make_image(0, i)
        images.append({"id": i, "height": im["h"], "width": im["w"]})
        g_rles = rles(im["gt"])
        boxes = mask_utils.toBbox([{**r, "counts": r["counts"].encode()} for r in g_rles]) if g_rles else []
        for j, r in enumerate(g_rles):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(im["gl"][j]),
                    "segmentation": r,
                    "area": float(im["gt"][j].sum()),
                    "iscrowd": int(im["crowd"][j]),
                    "bbox": [float(v) for v in boxes[j]],
                }
            )
        for j, r in enumerate(rles(im["dt"])):  # no 'bbox': as mask models write their results
            results.append(
                {
                    "image_id": i,
                    "category_id": int(im["dl"][j]),
                    "segmentation": r,
                    "score": float(im["scores"][j]),
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in range(80)]
    return _write(folder, "segm", {"images": images, "annotations": anns, "categories": categories}, results)


def write_objects365(
    folder: Path, n_images: int = 80_000, n_classes: int = 365, seed: int = 0
) -> tuple[Path, Path]:
    """Objects365-shaped files: ~13 GT and ~15 detections per image (most near a GT), 365 classes."""
    rng = np.random.default_rng(seed)
    n_gt_img = rng.poisson(13, n_images)
    gt_img = np.repeat(np.arange(n_images), n_gt_img)
    g = gt_img.size
    gt_xy = rng.uniform(0, 600, (g, 2))
    gt_wh = np.exp(rng.uniform(np.log(6), np.log(400), (g, 2)))
    gt_box = np.round(np.concatenate([gt_xy, gt_wh], 1), 2)
    gt_cls = rng.zipf(1.3, g) % n_classes  # long-tailed classes, as Objects365
    crowd = (rng.random(g) < 0.01).astype(np.int64)
    # detections: 70% jittered copies of GTs (15% with another class), 30% clutter
    n_dt_img = rng.poisson(15, n_images)
    dt_img = np.repeat(np.arange(n_images), n_dt_img)
    d = dt_img.size
    starts = np.concatenate([[0], np.cumsum(n_gt_img)[:-1]])
    near = (rng.random(d) < 0.7) & (n_gt_img[dt_img] > 0)
    src = starts[dt_img] + (rng.random(d) * np.maximum(n_gt_img[dt_img], 1)).astype(np.int64)
    src = np.minimum(src, g - 1)
    jitter = rng.normal(0, 0.12, (d, 4)) * np.concatenate([gt_box[src, 2:], gt_box[src, 2:]], 1)
    clutter = np.concatenate(
        [rng.uniform(0, 600, (d, 2)), np.exp(rng.uniform(np.log(4), np.log(300), (d, 2)))], 1
    )
    dt_box = np.where(near[:, None], gt_box[src] + jitter, clutter)
    dt_box[:, 2:] = np.abs(dt_box[:, 2:])
    dt_box = np.round(dt_box, 2)
    dt_cls = np.where(near & (rng.random(d) > 0.15), gt_cls[src], rng.integers(0, n_classes, d))
    score = np.round(rng.random(d), 3)
    gt_dataset = {
        "images": [{"id": i, "width": 640, "height": 640} for i in range(n_images)],
        "annotations": [
            {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": z}
            for k, (i, c, b, z) in enumerate(
                zip(gt_img.tolist(), gt_cls.tolist(), gt_box.tolist(), crowd.tolist(), strict=True)
            )
        ],
        "categories": [{"id": c, "name": f"class{c}"} for c in range(n_classes)],
    }
    results = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(dt_img.tolist(), dt_cls.tolist(), dt_box.tolist(), score.tolist(), strict=True)
    ]
    return _write(folder, "o365", gt_dataset, results)


def _write(folder: Path, name: str, gt_dataset: dict, results: list[dict]) -> tuple[Path, Path]:
    gt_path, dt_path = folder / f"{name}_gt.json", folder / f"{name}_dt.json"
    gt_path.write_bytes(msgspec.json.encode(gt_dataset))
    dt_path.write_bytes(msgspec.json.encode(results))
    return gt_path, dt_path


# ----------------------------------------------------------------------------- timing
#: Runs its arguments (after the first, a file descriptor) as a child and writes the child's peak
#: RSS (KiB) to that descriptor. A process started
#: straight from this (large) benchmark process would report this process's RSS as its own peak
#: (Linux carries the peak over fork and exec), so the program is started from this small one.
LAUNCHER = """
import os, resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
os.write(int(sys.argv[1]), str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss).encode())
sys.exit(code)
"""


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process (the launcher's start included)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        read_end, write_end = os.pipe()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(write_end), *argv],
            stdout=out,
            stderr=err,
            pass_fds=(write_end,),
        )
        os.close(write_end)
        proc.wait()
        wall = time.perf_counter() - t0
        with os.fdopen(read_end) as pipe:
            peak_kb = float(pipe.read() or "nan")
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:4]} failed: {err.read().decode(errors='replace')[-2000:]}")
        return wall, peak_kb / 1024, out.read().decode()


def compare(name: str, gt_path: Path, dt_path: Path, iou_type: str, repeat: int) -> dict[str, Any]:
    """Both programs on one pair of files, alternating, ``repeat`` times each."""
    out_json = gt_path.with_name(f"{name}_metrics.json")
    ours = [sys.executable, "-m", "objdet", "eval", str(gt_path), str(dt_path), "--iou-type", iou_type]
    ours += ["--no-plots", "--json", str(out_json), "-q"]
    coco = hotcoco_cli()
    theirs = [coco, "eval", "--gt", str(gt_path), "--dt", str(dt_path), "--iou-type", iou_type, "--json"]
    times: dict[str, list[float]] = {"objdet": [], "hotcoco": []}
    rss: dict[str, list[float]] = {"objdet": [], "hotcoco": []}
    stdout = ""
    for _ in range(repeat):
        wall, peak, _ = run_child(ours)
        times["objdet"].append(wall)
        rss["objdet"].append(peak)
        if coco is not None:
            wall, peak, stdout = run_child(theirs)
            times["hotcoco"].append(wall)
            rss["hotcoco"].append(peak)
    metrics = json.loads(out_json.read_text())
    result: dict[str, Any] = {
        "name": name,
        "iou_type": iou_type,
        "images": metrics["n_images"],
        "detections": len(msgspec.json.decode(dt_path.read_bytes())),
        "objdet_s": statistics.median(times["objdet"]),
        "objdet_rss_mb": max(rss["objdet"]),
        "hotcoco_s": None,
        "hotcoco_rss_mb": None,
        "max_diff": None,
        "times": times,
    }
    if coco is not None:
        stats = json.loads(stdout)["metrics"]
        diff = np.abs(np.array([metrics[k] for k in STAT_KEYS]) - np.array([stats[k] for k in HOTCOCO_KEYS]))
        result.update(
            hotcoco_s=statistics.median(times["hotcoco"]),
            hotcoco_rss_mb=max(rss["hotcoco"]),
            max_diff=float(diff.max()),
        )
    return result


def demo(repeat: int) -> dict[str, Any]:
    """``objdet eval --demo``: with its PNGs (warm, busy, cold) and without them (warm)."""
    from coco_bbox import busy_processes

    with tempfile.TemporaryDirectory() as tmp:
        plots = [sys.executable, "-m", "objdet", "eval", "--demo", "--out", str(Path(tmp) / "demo"), "-q"]
        bare = [sys.executable, "-m", "objdet", "eval", "--demo", "--no-plots", "-q"]
        run_child(plots)  # the compile cache filled, not timed
        times: dict[str, list[float]] = {"plots": [], "no_plots": [], "busy": []}
        for _ in range(repeat):
            times["plots"].append(run_child(plots)[0])
            times["no_plots"].append(run_child(bare)[0])
        with busy_processes(2):
            times["busy"] = [run_child(plots)[0] for _ in range(repeat)]
        os.environ["NUMBA_CACHE_DIR"] = str(Path(tmp) / "empty_cache")
        try:
            cold = run_child(plots)[0]
        finally:
            del os.environ["NUMBA_CACHE_DIR"]
    return {
        "name": "demo",
        "plots_s": statistics.median(times["plots"]),
        "no_plots_s": statistics.median(times["no_plots"]),
        "busy_s": statistics.median(times["busy"]),
        "cold_s": cold,
        "times": times,
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "bbox" in args.only:
            n = args.images or (300 if args.quick else 5000)
            out.append(compare("bbox", *write_bbox(n, folder), "bbox", args.repeat))
        if "segm" in args.only:
            out.append(compare("segm", *write_segm(40 if args.quick else 500, folder), "segm", args.repeat))
        if "segm-large" in args.only and not args.quick:
            out.append(compare("segm-large", *write_segm(5000, folder), "segm", args.repeat))
        if "objects365" in args.only and not args.quick:
            t0 = time.perf_counter()
            files = write_objects365(folder)
            print(f"objects365-shaped files written in {time.perf_counter() - t0:.1f} s")
            out.append(compare("objects365", *files, "bbox", args.repeat))
    if "demo" in args.only:
        out.append(demo(args.repeat))
    return out


def report(r: dict[str, Any]) -> None:
    if r["name"] == "demo":
        print(
            f"demo: objdet eval --demo --out DIR {r['plots_s']:.3f} s warm, {r['busy_s']:.3f} s beside "
            f"two busy processes, {r['cold_s']:.1f} s with an empty compile cache; --no-plots "
            f"{r['no_plots_s']:.3f} s  {r['times']}"
        )
        return
    print(f"{r['name']}: {r['images']} images, {r['detections']} dets ({r['iou_type']}), a process each:")
    print(
        f"  objdet eval: {r['objdet_s']:.3f} s  peak RSS {r['objdet_rss_mb']:.0f} MB  {r['times']['objdet']}"
    )
    if r["hotcoco_s"] is None:
        print("  hotcoco's coco CLI not installed")
        return
    peak = r["hotcoco_rss_mb"]
    print(f"  hotcoco:     {r['hotcoco_s']:.3f} s  peak RSS {peak:.0f} MB  {r['times']['hotcoco']}")
    ratio, rss = r["objdet_s"] / r["hotcoco_s"], r["objdet_rss_mb"] / r["hotcoco_rss_mb"]
    print(f"  time ratio {ratio:.3f}, RSS ratio {rss:.3f}; stats differ by at most {r['max_diff']:.1e}")


def _hotcoco_version() -> str:
    try:
        return version("hotcoco")
    except PackageNotFoundError:
        return "?"


def run(quick: bool) -> list[dict]:
    """Rows for benchmarks/run.py."""
    args = parse_args(["--quick", "--repeat", "1"] if quick else [])
    rows = []
    for r in measure(args):
        report(r)
        if r["name"] == "demo":
            rows.append(
                {
                    "benchmark": "objdet eval --demo --out DIR (48 images, five PNGs), whole process, warm",
                    "objdet_s": r["plots_s"],
                    "reference": "the same without the PNGs (--no-plots)",
                    "reference_s": r["no_plots_s"],
                    "note": f"target < 1.5 s; beside two busy processes {r['busy_s']:.2f} s; "
                    f"first run after an install (empty compile cache) {r['cold_s']:.1f} s",
                }
            )
            continue
        note = "" if r["max_diff"] is None else f"stats differ by at most {r['max_diff']:.1e}"
        if r["hotcoco_rss_mb"] is not None:
            note += f"; peak RSS {r['objdet_rss_mb']:.0f} MB vs {r['hotcoco_rss_mb']:.0f} MB"
        rows.append(
            {
                "benchmark": f"objdet eval CLI ({r['name']}), {r['images']} images / {r['detections']} dets, "
                "whole process, files to JSON",
                "objdet_s": r["objdet_s"],
                "reference": f"hotcoco {_hotcoco_version()} `coco eval` CLI, whole process",
                "reference_s": r["hotcoco_s"],
                "note": note,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    for r in measure(parse_args(argv)):
        report(r)


if __name__ == "__main__":
    main()
