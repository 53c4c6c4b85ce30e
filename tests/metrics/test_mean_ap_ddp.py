"""MeanAveragePrecision under DDP (2 gloo processes on CPU) equals one process over all images."""

from __future__ import annotations

import numpy as np

from objdet.training.metrics import ClasswiseAP, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.ddp import count_all_gathers, run_distributed

N_IMAGES = 12


def _data() -> tuple[list[dict], list[dict]]:
    return to_torch(make_dataset(31, n_images=N_IMAGES), "xywh")


def _flat(metric: MeanAveragePrecision) -> np.ndarray:
    stats, tables = metric.coco_eval()
    return np.concatenate([stats.numpy(), tables.precision.numpy().ravel(), tables.recall.numpy().ravel()])


def _worker(rank: int, world_size: int, plan: list[list[tuple[int, int]]]) -> dict:
    """Update with this rank's slices, then compute; count the collectives compute issues."""
    preds, target = _data()
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True, extended_summary=True)
    classwise = ClasswiseAP(num_classes=4, box_format="xywh")
    for a, b in plan[rank]:
        metric.update(preds[a:b], target[a:b])
        classwise.update(preds[a:b], target[a:b])
    out, n_gathers = count_all_gathers(metric.compute)
    with metric.sync_context():
        flat = _flat(metric)
    return {
        "flat": flat,
        "map_per_class": out["map_per_class"].numpy(),
        "classes": out["classes"].numpy(),
        "ious": _plain(out["ious"]),
        "classwise": {k: v.item() for k, v in classwise.compute().items()},
        "all_gathers": n_gathers,
        "bootstrap": metric.bootstrap(n_resamples=20, seed=5).replicates,
    }


def _plain(ious: dict) -> dict:
    return {key: value if isinstance(value, list) else value.tolist() for key, value in ious.items()}


def _single(order: list[int]) -> tuple[np.ndarray, dict, dict]:
    preds, target = _data()
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True, extended_summary=True)
    classwise = ClasswiseAP(num_classes=4, box_format="xywh")
    metric.update([preds[i] for i in order], [target[i] for i in order])
    classwise.update([preds[i] for i in order], [target[i] for i in order])
    out = metric.compute()
    out["bootstrap"] = metric.bootstrap(n_resamples=20, seed=5).replicates
    return _flat(metric), out, {k: v.item() for k, v in classwise.compute().items()}


def test_uneven_ranks_and_a_rank_without_updates_match_one_process() -> None:
    plans = {
        "uneven": [[(0, 2), (2, 5), (5, 7)], [(7, 12)]],
        "rank 1 idle": [[(0, 4), (4, 12)], []],
        "one update each": [[(0, 6)], [(6, 12)]],
    }
    gathers = {}
    for name, plan in plans.items():
        results = run_distributed(_worker, world_size=2, payload=plan)
        order = [i for rank_plan in plan for a, b in rank_plan for i in range(a, b)]
        flat, out, classwise = _single(order)
        for rank, res in enumerate(results):
            np.testing.assert_array_equal(res["flat"], flat, err_msg=f"{name}, rank {rank}")
            np.testing.assert_array_equal(res["map_per_class"], out["map_per_class"].numpy())
            np.testing.assert_array_equal(res["classes"], out["classes"].numpy())
            assert res["ious"] == _plain(out["ious"])
            assert res["classwise"] == classwise
            np.testing.assert_array_equal(res["bootstrap"], out["bootstrap"])
        gathers[name] = {res["all_gathers"] for res in results}
    # a fixed number of collectives, whatever the number of updates per rank
    assert len(set().union(*gathers.values())) == 1, gathers
