"""MeanAveragePrecision(iou_type="keypoints") under DDP (3 gloo processes) = one process = pycocotools."""

from __future__ import annotations

import numpy as np

from objdet.training.metrics import MeanAveragePrecision
from tests.helpers.ddp import count_all_gathers, run_distributed
from tests.helpers.keypoint_reference import make_keypoint_dataset, pycocotools_keypoints, to_torch

SEED = 11


def _metric() -> MeanAveragePrecision:
    return MeanAveragePrecision(iou_type="keypoints", box_format="xywh", class_metrics=True)


def _worker(rank: int, world_size: int, plan: list[list[tuple[int, int]]]) -> dict:
    preds, target = to_torch(make_keypoint_dataset(SEED))
    metric = _metric()
    for a, b in plan[rank]:
        metric.update(preds[a:b], target[a:b])
    out, n_gathers = count_all_gathers(metric.compute)
    stats, tables = metric.coco_eval()
    return {
        "stats": stats.numpy(),
        "precision": tables.precision.numpy(),
        "map_per_class": out["map_per_class"].numpy(),
        "curves_ap": metric.curves().ap.numpy(),
        "all_gathers": n_gathers,
    }


def test_uneven_and_idle_ranks_equal_one_process_and_pycocotools() -> None:
    data = make_keypoint_dataset(SEED)
    ref = pycocotools_keypoints(data)
    single = _metric()
    single.update(*to_torch(data))
    stats, tables = single.coco_eval()
    np.testing.assert_allclose(stats.numpy(), ref.stats, rtol=0, atol=1e-12)
    # one spawn of 3 ranks: uneven shards, several updates on one rank, and a rank without any
    plan = [[(0, 3), (3, 5)], [(5, 24)], []]
    gathers = set()
    for rank, res in enumerate(run_distributed(_worker, world_size=3, payload=plan)):
        # image ids: the order of the updates and the sharding do not matter
        np.testing.assert_array_equal(res["stats"], stats.numpy(), err_msg=f"rank {rank}")
        np.testing.assert_array_equal(res["precision"], tables.precision.numpy())
        np.testing.assert_array_equal(res["map_per_class"], single.compute()["map_per_class"].numpy())
        np.testing.assert_array_equal(res["curves_ap"], single.curves().ap.numpy())
        gathers.add(res["all_gathers"])
    assert len(gathers) == 1  # a fixed number of collectives
