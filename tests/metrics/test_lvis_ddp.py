"""LVISMeanAveragePrecision under DDP (2 gloo processes on CPU) equals one process over all images."""

from __future__ import annotations

import warnings

import numpy as np

from objdet.training.metrics import LVISMeanAveragePrecision
from tests.helpers.ddp import run_distributed
from tests.helpers.lvis_reference import make_lvis_case

N_IMAGES = 10


def _metric() -> LVISMeanAveragePrecision:
    case = make_lvis_case(11, n_images=N_IMAGES)
    metric = LVISMeanAveragePrecision(box_format="xywh", frequencies=case.frequencies, class_metrics=True)
    metric.warn_on_many_detections = False
    return metric


def _result(metric: LVISMeanAveragePrecision) -> dict:
    out = metric.compute()
    curves = metric.curves()
    return {
        "lvis": metric.lvis_results(),
        "map_per_class": out["map_per_class"].numpy(),
        "classes": out["classes"].numpy(),
        "curve_ap": curves.ap.numpy(),
    }


def _worker(rank: int, world_size: int, plans: list[list[list[tuple[int, int]]]]) -> list[dict]:
    """Every plan in one process group (one spawn): per plan, this rank's updates, then compute."""
    case = make_lvis_case(11, n_images=N_IMAGES)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for plan in plans:
            metric = _metric()
            for a, b in plan[rank]:
                metric.update(case.preds[a:b], case.target[a:b])
            out.append(_result(metric))
    return out


def test_uneven_and_empty_ranks_match_one_process() -> None:
    case = make_lvis_case(11, n_images=N_IMAGES)
    single = _metric()
    single.update(case.preds, case.target)
    expected = _result(single)
    assert expected["lvis"]["AP"] > 0
    plans = {
        "uneven": [[(0, 2), (2, 3), (3, 7)], [(7, 10)]],
        "rank 1 idle": [[(0, 4), (4, 10)], []],
        "rank 0 idle": [[], [(0, 10)]],
    }
    results = run_distributed(_worker, world_size=2, payload=list(plans.values()))
    for k, name in enumerate(plans):
        for rank, res in enumerate(r[k] for r in results):
            # image ids order the images, so the result does not depend on the sharding
            assert res["lvis"] == expected["lvis"], f"{name}, rank {rank}"
            np.testing.assert_array_equal(res["map_per_class"], expected["map_per_class"])
            np.testing.assert_array_equal(res["classes"], expected["classes"])
            np.testing.assert_array_equal(res["curve_ap"], expected["curve_ap"])
