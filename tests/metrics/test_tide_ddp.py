"""TIDE under DDP (2 gloo processes on CPU) equals one process over all images."""

from __future__ import annotations

import pytest
import torch

from objdet.training.metrics import TIDE
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.coco_segm_reference import make_segm_dataset, to_torch_segm
from tests.helpers.ddp import count_all_gathers, run_distributed

N_IMAGES = 12


def _data(ids: bool) -> tuple[list[dict], list[dict]]:
    preds, target = to_torch(make_dataset(29, n_images=N_IMAGES), "xyxy")
    if ids:
        for i, t in enumerate(target):
            t["image_id"] = torch.tensor(100 - 7 * i)  # not in update order
    return preds, target


def _numbers(metric: TIDE) -> tuple:
    r = metric.result()
    return r.ap, r.main, r.special, r.counts, r.main_per_class["cls"].tolist()


def _segm_data() -> tuple[list[dict], list[dict]]:
    return to_torch_segm(make_segm_dataset(5, n_images=N_IMAGES))


def _worker(rank: int, world_size: int, payload: tuple[bool, list[list[list[int]]]]) -> dict:
    ids, plan = payload
    preds, target = _data(ids)
    metric = TIDE(class_metrics=True)
    for batch in plan[rank]:
        metric.update([preds[i] for i in batch], [target[i] for i in batch])
    out, n_gathers = count_all_gathers(metric.compute)
    return {
        "numbers": _numbers(metric),
        "compute": {k: v.tolist() for k, v in out.items()},
        "all_gathers": n_gathers,
        "local_rows": sum(t.numel() for t in metric.det_codes),
    }


CONTIGUOUS = [
    [[[0, 1, 2], [3, 4, 5, 6, 7, 8]], [[9, 10], [11]]],  # uneven numbers of updates
    [[list(range(N_IMAGES))], []],  # a rank without any update
]
WITH_IDS = [
    [[[0, 2, 4], [6, 8, 10]], [[1, 3, 5, 7, 9, 11, 0]]],  # DistributedSampler-like, padded with a copy
    [[[11, 10], [9]], [[8, 7, 6, 5, 4, 3, 2, 1, 0]]],
]


@pytest.mark.parametrize(
    "ids, plan", [(False, p) for p in CONTIGUOUS] + [(True, p) for p in WITH_IDS]
)  # fmt: skip
def test_ddp_equals_single_process(ids: bool, plan: list[list[list[int]]]) -> None:
    preds, target = _data(ids)
    single = TIDE(class_metrics=True)
    single.update(preds, target)
    expected = _numbers(single)
    expected_compute = {k: v.tolist() for k, v in single.compute().items()}
    assert sum(expected[1].values()) > 0
    results = run_distributed(_worker, world_size=2, payload=(ids, plan))
    for rank, r in enumerate(results):
        assert r["numbers"] == expected, rank
        assert r["compute"] == expected_compute, rank
        assert r["all_gathers"] == 16  # 8 list states: their shapes, then their values
    assert (results[0]["local_rows"] > 0) == bool(plan[0])  # the local state stays after compute


def _segm_worker(rank: int, world_size: int, plan: list[list[list[int]]]) -> dict:
    preds, target = _segm_data()
    metric = TIDE(iou_type="segm", class_metrics=True)
    for batch in plan[rank]:
        metric.update([preds[i] for i in batch], [target[i] for i in batch])
    metric.compute()
    return {"numbers": _numbers(metric)}


def test_ddp_masks_equal_single_process() -> None:
    """iou_type="segm": mask IoU decided per rank, the same state merged."""
    preds, target = _segm_data()
    single = TIDE(iou_type="segm", class_metrics=True)
    single.update(preds, target)
    expected = _numbers(single)
    assert sum(expected[1].values()) > 0
    results = run_distributed(_segm_worker, world_size=2, payload=CONTIGUOUS[0])
    assert [r["numbers"] for r in results] == [expected, expected]
