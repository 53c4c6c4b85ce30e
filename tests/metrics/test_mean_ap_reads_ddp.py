"""Every public read of MeanAveragePrecision's state sees all ranks under DDP, like compute().

coco_eval(), curves() and plot() called on every rank (without sync_context) of 2 gloo
processes, one of which saw no image, equal one process over all images; afterwards each
rank's own state is back (so later updates and compute() stay right).
"""

from __future__ import annotations

import numpy as np
import pytest

from objdet.training.metrics import MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.ddp import run_distributed

N_IMAGES = 10


def _data() -> tuple[list[dict], list[dict]]:
    return to_torch(make_dataset(7, n_images=N_IMAGES), "xywh")


def _reads(metric: MeanAveragePrecision) -> dict:
    import matplotlib.pyplot as plt

    stats, tables = metric.coco_eval()
    curves = metric.curves(iou_threshold=0.5)
    fig, _ = metric.plot(kind="pr")
    plt.close(fig)
    return {
        "stats": stats.numpy(),
        "precision": tables.precision.numpy(),
        "recall": tables.recall.numpy(),
        "curve_ap": curves.ap.numpy(),
        "curve_classes": curves.classes.numpy(),
    }


def _worker(rank: int, world_size: int, with_images: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    preds, target = _data()
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    if rank == with_images:
        metric.update(preds[:4], target[:4])
        metric.update(preds[4:], target[4:])
    out = _reads(metric)
    out["local_images_after"] = int(metric.n_images)
    out["map"] = float(metric.compute()["map"])
    return out


@pytest.mark.parametrize("with_images", [0, 1])
def test_coco_eval_curves_and_plot_see_every_rank(with_images: int) -> None:
    preds, target = _data()
    single = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    single.update(preds, target)
    expected = _reads(single)
    results = run_distributed(_worker, world_size=2, payload=with_images)
    for rank, got in enumerate(results):
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"rank {rank}: {key}")
        assert got["local_images_after"] == (N_IMAGES if rank == with_images else 0)
        assert got["map"] == pytest.approx(float(expected["stats"][0]), abs=1e-7)
    assert expected["stats"][0] > 0
