"""The first use after an install: what compiling costs a training loop, with and without the helper.

Each side is a fresh process with an empty numba cache of its own (``NUMBA_CACHE_DIR``), as
after ``pip install``: ``MeanAveragePrecision(class_metrics=True)``, 13 updates of 16 images
(the data of ``coco_bbox.py``), one ``compute()``. The first update compiles the matching
kernels; ``compute()`` needs accumulate's. objdet starts a helper process on that first update
that compiles accumulate's meanwhile (``objdet.functional.compile_helper``); the reference is
the same run with the helper off (``LOCAL_RANK=1``, as a second DDP rank). Times: the first
update, ``compute()``, and the sum (the process's start and imports not counted).

    python benchmarks/first_use.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import coco_bbox
from objdet.training.metrics import MeanAveragePrecision
preds, target, _, _ = coco_bbox.make_data(208)
metric = MeanAveragePrecision(box_format="xywh", class_metrics=True)
t0 = time.perf_counter()
metric.update(preds[:16], target[:16])
t1 = time.perf_counter()
for k in range(16, 208, 16):
    metric.update(preds[k : k + 16], target[k : k + 16])
t2 = time.perf_counter()
value = float(metric.compute()["map"])
t3 = time.perf_counter()
print(json.dumps({"first_update": t1 - t0, "compute": t3 - t2, "map": value}))
"""


def first_use(helper: bool) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        if not helper:
            env["LOCAL_RANK"] = "1"  # objdet starts helpers on local rank 0 only
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(HERE)], capture_output=True, text=True, env=env, check=True
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py (the same sizes with ``quick``: compiling does not depend on them)."""
    with_helper, without = first_use(True), first_use(False)
    ours = with_helper["first_update"] + with_helper["compute"]
    theirs = without["first_update"] + without["compute"]
    print(f"with the helper: {with_helper}\nwithout it:      {without}")
    return [
        {
            "benchmark": "first use after an install (empty compile cache): first update + compute(), "
            "MeanAveragePrecision on CPU",
            "objdet_s": ours,
            "reference": "the same with the compile helper off (LOCAL_RANK=1)",
            "reference_s": theirs,
            "note": f"first update {with_helper['first_update']:.1f} s, compute "
            f"{with_helper['compute']:.1f} s (without the helper {without['first_update']:.1f} s, "
            f"{without['compute']:.1f} s); "
            f"the same map: {with_helper['map'] == without['map']}",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
