"""ConfusionMatrix under DDP (2 gloo processes on CPU) equals one process over all images."""

from __future__ import annotations

import numpy as np
import pytest

from objdet.training.metrics import ConfusionMatrix
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.ddp import count_all_gathers, run_distributed

N_IMAGES = 12


def _data() -> tuple[list[dict], list[dict]]:
    return to_torch(make_dataset(17, n_images=N_IMAGES), "xyxy")


def _worker(rank: int, world_size: int, plan: list[list[tuple[int, int]]]) -> dict:
    preds, target = _data()
    metric = ConfusionMatrix(num_classes=4, iou_threshold=0.5, conf_threshold=0.2)
    for a, b in plan[rank]:
        metric.update(preds[a:b], target[a:b])
    out, n_gathers = count_all_gathers(metric.compute)
    return {"matrix": out.numpy(), "all_gathers": n_gathers, "local": metric.matrix.numpy()}


@pytest.mark.parametrize(
    "plan",
    [
        [[(0, 3), (3, 6)], [(6, 9), (9, 12)]],  # same number of updates
        [[(0, 2), (2, 5), (5, 11)], [(11, 12)]],  # different numbers of updates
        [[(0, 12)], []],  # a rank without any update
    ],
)
def test_ddp_sum_equals_single_process(plan: list[list[tuple[int, int]]]) -> None:
    preds, target = _data()
    single = ConfusionMatrix(num_classes=4, iou_threshold=0.5, conf_threshold=0.2)
    single.update(preds, target)
    expected = single.compute().numpy()
    assert expected.sum() > 0
    results = run_distributed(_worker, world_size=2, payload=plan)
    for r in results:
        np.testing.assert_array_equal(r["matrix"], expected)
        # three states (matrix, image records, cells): torchmetrics gathers the shape, then the
        # values of each, whatever the updates
        assert r["all_gathers"] == 6
    # the local state is kept after compute (unsynced), so updates can continue
    np.testing.assert_array_equal(results[0]["local"] + results[1]["local"], expected)
