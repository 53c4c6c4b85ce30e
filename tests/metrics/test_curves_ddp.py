"""MeanAveragePrecision.curves() under DDP (2 gloo processes) equals one process over all images."""

from __future__ import annotations

import numpy as np

from objdet.training.metrics import MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.ddp import run_distributed

FIELDS = ("classes", "pr_precision", "ap", "tp", "fp", "f1", "overall_f1", "best_confidence")


def _data() -> tuple[list[dict], list[dict]]:
    return to_torch(make_dataset(23, n_images=10), "xywh")


def _arrays(metric: MeanAveragePrecision) -> dict[str, np.ndarray]:
    c = metric.curves(confidence=101)
    return {name: getattr(c, name).numpy() for name in FIELDS}


def _worker(rank: int, world_size: int, plan: list[list[tuple[int, int]]]) -> dict:
    preds, target = _data()
    metric = MeanAveragePrecision(box_format="xywh")
    for a, b in plan[rank]:
        metric.update(preds[a:b], target[a:b])
    gathered = _arrays(metric)  # syncs by itself
    local_after = metric._state("macro_scores").numel()  # and restores the local state
    with metric.sync_context():  # already synced: curves() must not sync again
        inside = _arrays(metric)
    return {"gathered": gathered, "inside": inside, "local_after": local_after}


def test_curves_gather_all_ranks() -> None:
    preds, target = _data()
    single = MeanAveragePrecision(box_format="xywh")
    single.update(preds, target)
    expected = _arrays(single)
    plan = [[(0, 3), (3, 10)], []]  # uneven: rank 1 saw nothing
    results = run_distributed(_worker, world_size=2, payload=plan)
    for rank, r in enumerate(results):
        for key in ("gathered", "inside"):
            for name in FIELDS:
                np.testing.assert_array_equal(
                    r[key][name], expected[name], err_msg=f"rank {rank} {key} {name}"
                )
    assert results[1]["local_after"] == 0 and results[0]["local_after"] > 0
