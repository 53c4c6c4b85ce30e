"""``objdet eval`` end to end against faster-coco-eval's load + evaluate, on the same COCO files.

The data is the COCO-val-shaped set of ``coco_bbox.py`` (5000 images, 80 classes, about 400k
detections), written to a GT file and a results file. Both sides start from the files, in a
fresh Python process each, so interpreter start and imports count too:

* objdet: ``python -m objdet eval GT DT --json OUT -q`` (load + evaluate + metrics JSON with
  per-class lists and the confusion matrix; no plots);
* faster-coco-eval: a script that imports it, loads both files (``COCO``, ``loadRes``) and runs
  ``COCOeval_faster`` evaluate + accumulate + summarize.

The 12 stats of both are compared. ``--in-process`` also times both without process start.

    python benchmarks/cli.py [--images 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coco_bbox import make_data
from objdet.functional.coco import coco_stat_names

STAT_KEYS = coco_stat_names()

FASTER_SCRIPT = """
import contextlib, io, json, sys
from faster_coco_eval import COCO, COCOeval_faster
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1])
    dt = gt.loadRes(sys.argv[2])
    ev = COCOeval_faster(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
print(json.dumps([float(s) for s in ev.stats[:12]]))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args(argv)


def write_files(n_images: int, folder: Path) -> tuple[Path, Path]:
    _, _, gt_dataset, results = make_data(n_images)
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_text(json.dumps(gt_dataset))
    dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


def timed_process(argv: list[str], repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed: {proc.stderr.strip()[-2000:]}")
        out = proc.stdout
    return statistics.median(times), out


def measure(n_images: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gt_path, dt_path = write_files(n_images, folder)
        out_json = folder / "metrics.json"
        objdet_s, _ = timed_process(
            [
                sys.executable,
                "-m",
                "objdet",
                "eval",
                str(gt_path),
                str(dt_path),
                "--json",
                str(out_json),
                "-q",
            ],
            repeat,
        )
        ours = json.loads(out_json.read_text())
        result: dict[str, Any] = {
            "images": n_images,
            "detections": sum(1 for _ in json.loads(dt_path.read_text())),
            "objdet_s": objdet_s,
            "faster_s": None,
            "max_diff": None,
        }
        try:
            result["faster_version"] = version("faster-coco-eval")
        except PackageNotFoundError:
            return result
        faster_s, stdout = timed_process(
            [sys.executable, "-c", FASTER_SCRIPT, str(gt_path), str(dt_path)], repeat
        )
        theirs = np.array(json.loads(stdout))
        result["faster_s"] = faster_s
        result["max_diff"] = float(np.abs(np.array([ours[k] for k in STAT_KEYS]) - theirs).max())
    return result


def run(quick: bool) -> list[dict]:
    """Rows for benchmarks/run.py."""
    args = parse_args(["--images", "300", "--repeat", "1"] if quick else [])
    r = measure(args.images, args.repeat)
    report(r)
    note = "" if r["max_diff"] is None else f"stats differ by at most {r['max_diff']:.1e}"
    return [
        {
            "benchmark": f"objdet eval CLI, {r['images']} images / {r['detections']} dets, files to JSON",
            "objdet_s": r["objdet_s"],
            "reference": f"faster-coco-eval {r.get('faster_version', '?')} load + evaluate, own process",
            "reference_s": r["faster_s"],
            "note": note,
        }
    ]


def report(r: dict[str, Any]) -> None:
    print(f"objdet eval, {r['images']} images, {r['detections']} detections, fresh process each:")
    print(f"  objdet eval (load + evaluate + JSON): {r['objdet_s']:.3f} s")
    if r["faster_s"] is None:
        print("  faster-coco-eval not installed")
        return
    print(f"  faster-coco-eval load + evaluate:     {r['faster_s']:.3f} s")
    print(f"  ratio {r['objdet_s'] / r['faster_s']:.3f}; stats differ by at most {r['max_diff']:.1e}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(measure(args.images, args.repeat))


if __name__ == "__main__":
    main()
