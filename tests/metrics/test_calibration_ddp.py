"""MeanAveragePrecision.calibration() under DDP (2 gloo processes) equals one process over all images."""

from __future__ import annotations

import numpy as np
import torch

from objdet.training.metrics import MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.ddp import run_distributed

FIELDS = (
    "classes",
    "count",
    "confidence",
    "accuracy",
    "lower",
    "upper",
    "ece",
    "mce",
    "class_count",
    "class_ece",
)


def _data(with_ids: bool) -> tuple[list[dict], list[dict]]:
    preds, target = to_torch(make_dataset(31, n_images=11), "xywh")
    if with_ids:
        for i, t in enumerate(target):
            t["image_id"] = torch.tensor(7 * i + 3)
    return preds, target


def _arrays(metric: MeanAveragePrecision) -> dict[str, np.ndarray]:
    out = {}
    for strategy in ("width", "mass"):
        c = metric.calibration(bins=7, strategy=strategy)  # type: ignore[arg-type]
        out.update({f"{strategy}/{name}": getattr(c, name).numpy() for name in FIELDS})
    return out


def _worker(rank: int, world_size: int, payload: tuple[list[list[tuple[int, int]]], bool]) -> dict:
    plan, with_ids = payload
    preds, target = _data(with_ids)
    metric = MeanAveragePrecision(box_format="xywh")
    metric.warn_on_many_detections = False
    for a, b in plan[rank]:
        metric.update(preds[a:b], target[a:b])
    gathered = _arrays(metric)  # syncs by itself
    local_after = metric._state("macro_scores").numel()  # and restores the local state
    with metric.sync_context():  # already synced: calibration() must not sync again
        inside = _arrays(metric)
    return {"gathered": gathered, "inside": inside, "local_after": local_after}


def _single(with_ids: bool) -> dict[str, np.ndarray]:
    preds, target = _data(with_ids)
    single = MeanAveragePrecision(box_format="xywh")
    single.warn_on_many_detections = False
    single.update(preds, target)
    return _arrays(single)


def _check(results: list[dict], expected: dict[str, np.ndarray]) -> None:
    for rank, r in enumerate(results):
        for key in ("gathered", "inside"):
            for name, value in expected.items():
                np.testing.assert_allclose(
                    r[key][name], value, rtol=1e-12, atol=1e-12, err_msg=f"rank {rank} {key} {name}"
                )


def test_calibration_gathers_all_ranks_uneven_and_empty_shards() -> None:
    plan = [[(0, 3), (3, 11)], []]  # uneven: rank 1 saw nothing
    results = run_distributed(_worker, world_size=2, payload=(plan, False))
    _check(results, _single(False))
    assert results[1]["local_after"] == 0 and results[0]["local_after"] > 0


def test_calibration_counts_images_repeated_across_ranks_once() -> None:
    # DistributedSampler's padding: rank 1 sees images 0 and 1 again, with their image ids
    plan = [[(0, 2), (2, 6)], [(6, 7), (7, 11), (0, 2)]]
    results = run_distributed(_worker, world_size=2, payload=(plan, True))
    expected = _single(True)
    _check(results, expected)
    assert int(expected["width/count"].sum()) > 0
