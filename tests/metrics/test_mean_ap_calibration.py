"""MeanAveragePrecision.calibration(): ECE, MCE and bins against a reference on pycocotools' match flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from objdet.training.metrics import MeanAveragePrecision
from tests.functional.test_calibration import assert_matches, reference
from tests.functional.test_detection_curves import pycocotools_flags
from tests.helpers.coco_reference import make_dataset, to_torch

pytestmark = [
    pytest.mark.usefixtures("engine"),
    pytest.mark.filterwarnings("ignore:Encountered more than 100 detections"),
]


def reference_from_pycocotools(images: list, t_index: int, bins: int, strategy: str) -> dict:
    """The plain reference on the detections pycocotools keeps (area all, maxDet 100), with its flags."""
    scores, tp, labels, ignored = [], [], [], []
    for category, (s, t, ig, _) in pycocotools_flags(images, t_index).items():
        scores += s
        tp += t
        ignored += ig
        labels += [category] * len(s)
    return reference(scores, tp, labels, ignored, bins, strategy)


@pytest.mark.parametrize("strategy", ["width", "mass"])
@pytest.mark.parametrize(("iou_threshold", "t_index"), [(None, 0), (0.75, 5)])
@pytest.mark.parametrize("seed", [0, 3])
def test_equals_the_reference_on_pycocotools_flags(
    seed: int, iou_threshold: float | None, t_index: int, strategy: str
) -> None:
    images = make_dataset(seed, n_images=10)  # crowds (ignored matches), > 100 detections in an image, ties
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    got = metric.calibration(iou_threshold, bins=10, strategy=strategy)  # type: ignore[arg-type]
    ref = reference_from_pycocotools(images, t_index, 10, strategy)
    assert_matches(got, ref)
    assert got.iou_threshold == (0.5 if iou_threshold is None else 0.75)
    assert got.n_detections == int(sum(ref["count"])) > 0


def test_batch_split_and_image_order_do_not_matter() -> None:
    preds, target = to_torch(make_dataset(5, n_images=12))
    whole = MeanAveragePrecision(box_format="xywh")
    whole.update(preds, target)
    pieces = MeanAveragePrecision(box_format="xywh")
    for a, b in [(0, 1), (1, 5), (5, 5), (5, 12)]:
        pieces.update(preds[a:b], target[a:b])
    backwards = MeanAveragePrecision(box_format="xywh")
    for i in reversed(range(12)):
        backwards.update(preds[i : i + 1], target[i : i + 1])
    for strategy in ("width", "mass"):
        expected = whole.calibration(strategy=strategy)  # type: ignore[arg-type]
        for other in (pieces, backwards):
            got = other.calibration(strategy=strategy)  # type: ignore[arg-type]
            torch.testing.assert_close(got.count, expected.count, rtol=0, atol=0)
            for key in ("confidence", "accuracy", "ece", "mce", "class_ece", "class_mce"):
                torch.testing.assert_close(getattr(got, key), getattr(expected, key), rtol=1e-12, atol=1e-12)


def test_repeated_image_ids_count_once() -> None:
    preds, target = to_torch(make_dataset(2, n_images=6))
    for i, t in enumerate(target):
        t["image_id"] = torch.tensor(100 + i)
    once = MeanAveragePrecision(box_format="xywh")
    once.update(preds, target)
    twice = MeanAveragePrecision(box_format="xywh")
    twice.update(preds, target)
    twice.update(preds[:2], target[:2])  # DistributedSampler padding: the same images again
    a, b = once.calibration(), twice.calibration()
    assert a.n_detections == b.n_detections
    torch.testing.assert_close(a.ece, b.ece, rtol=0, atol=0)


def test_empty_metric_gives_nan_and_bad_arguments_fail() -> None:
    metric = MeanAveragePrecision()
    c = metric.calibration()
    assert c.n_detections == 0 and torch.isnan(c.ece) and torch.isnan(c.mce)
    with pytest.raises(ValueError, match="`iou_threshold` must be one of the metric's iou_thresholds"):
        metric.calibration(iou_threshold=0.62)
    with pytest.raises(ValueError, match="`bins` must be a positive int"):
        metric.calibration(bins=0)
    with pytest.raises(ValueError, match="needs per-class state"):
        MeanAveragePrecision(average="micro").calibration()


def test_logits_are_an_error_naming_their_range() -> None:
    metric = MeanAveragePrecision()
    metric.update(
        [dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), scores=torch.tensor([2.5]), labels=torch.tensor([0]))],
        [dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))],
    )
    assert metric.compute()["map"] == 1.0  # AP does not care about the scores' range
    with pytest.raises(ValueError, match=r"scores in \[0, 1\].*range over \[2.5, 2.5\]"):
        metric.calibration()


def test_plot_calibration_draws_the_diagram() -> None:
    preds, target = to_torch(make_dataset(1, n_images=6))
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    fig, ax = metric.plot_calibration(bins=5)
    assert ax.get_title() == "Reliability diagram (IoU ≥ 0.5, 5 equal-width bins)"
    assert any("ECE = " in t.get_text() for t in ax.texts)
    _fig2, ax2 = metric.plot_calibration(metric.calibration(strategy="mass"))
    assert "equal-mass" in ax2.get_title()
    np.testing.assert_equal(len(fig.axes), 2)  # the diagram and the counts below it
