"""MeanAveragePrecision(iou_type="keypoints") against pycocotools' COCOeval(..., "keypoints")."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.training.metrics import MeanAveragePrecision
from objdet.training.metrics._errors import InputError
from tests.helpers.keypoint_reference import STAT_KEYS, make_keypoint_dataset, pycocotools_keypoints, to_torch

pytestmark = pytest.mark.usefixtures("engine")


def _stats(out: dict, prefix: str = "") -> np.ndarray:
    return np.array([out[f"{prefix}{k}"].item() for k in STAT_KEYS])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ten_stats_per_class_and_tables_equal_pycocotools(seed: int) -> None:
    data = make_keypoint_dataset(seed)
    ref = pycocotools_keypoints(data)
    preds, target = to_torch(data)
    metric = MeanAveragePrecision(
        iou_type="keypoints", box_format="xywh", class_metrics=True, extended_summary=True
    )
    metric.update(preds[:7], target[:7])
    metric.update(preds[7:], target[7:])
    stats64, tables = metric.coco_eval()
    np.testing.assert_allclose(stats64.numpy(), ref.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables.precision.numpy(), ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables.recall.numpy(), ref.eval["recall"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables.scores.numpy(), ref.eval["scores"], rtol=0, atol=1e-12)
    out = metric.compute()
    np.testing.assert_allclose(_stats(out), ref.stats, rtol=0, atol=1e-6)  # float32 outputs
    assert out["precision"].shape == ref.eval["precision"].shape  # (T, R, K, 3 areas, 1 maxDet)
    # per class: pycocotools run on that class alone
    for k, c in enumerate(out["classes"].tolist()):
        alone = pycocotools_keypoints(data, cat_ids=[c])
        assert out["map_per_class"][k].item() == pytest.approx(alone.stats[0], abs=1e-6)
        assert out["mar_20_per_class"][k].item() == pytest.approx(alone.stats[5], abs=1e-6)


def test_sigmas_for_other_keypoint_sets() -> None:
    data = make_keypoint_dataset(5, n_kpts=5, n_classes=1)
    sigmas = [0.05, 0.1, 0.025, 0.07, 0.09]
    ref = pycocotools_keypoints(data, sigmas=np.array(sigmas))
    preds, target = to_torch(data, n_kpts=5)
    metric = MeanAveragePrecision(iou_type="keypoints", box_format="xywh", keypoint_sigmas=sigmas)
    metric.update(preds, target)
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), ref.stats, rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="keypoint_sigmas"):
        MeanAveragePrecision(iou_type="keypoints", box_format="xywh").update(preds, target)  # 5 keypoints


def test_bbox_and_keypoints_together_give_both_prefixed() -> None:
    data = make_keypoint_dataset(6)
    ref = pycocotools_keypoints(data)
    preds, target = to_torch(data)
    boxes_of = {}
    for p in preds:  # boxes around the detected keypoints, for the bbox evaluation
        xy = p["keypoints"][..., :2]
        lo, hi = xy.amin(1), xy.amax(1)
        p["boxes"] = torch.cat([lo, hi - lo], 1) if xy.shape[0] else torch.zeros(0, 4, dtype=torch.float64)
        boxes_of[id(p)] = p["boxes"]
    both = MeanAveragePrecision(iou_type=("bbox", "keypoints"), box_format="xywh")
    both.update(preds, target)
    out = both.compute()
    np.testing.assert_allclose(_stats(out, "keypoints_"), ref.stats, rtol=0, atol=1e-6)
    boxes_only = MeanAveragePrecision(box_format="xywh")
    boxes_only.update(preds, target)
    assert out["bbox_map"] == boxes_only.compute()["map"]
    assert "keypoints_map_small" not in out and "bbox_map_small" in out


def test_a_gt_without_labelled_keypoints_or_box() -> None:
    """Without boxes a GT with no labelled keypoints matches nothing (OKS 0); it is ignored anyway."""
    data = make_keypoint_dataset(7, crowded=False)
    ref = pycocotools_keypoints(data)
    preds, target = to_torch(data, boxes=False)
    metric = MeanAveragePrecision(iou_type="keypoints")
    metric.update(preds, target)
    ours = metric.coco_eval()[0].numpy()
    # boxes only decide which detections the ignored GTs absorb: close, and equal with boxes
    assert np.abs(ours - ref.stats).max() < 0.05
    with_boxes = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    with_boxes.update(*to_torch(data))
    np.testing.assert_allclose(with_boxes.coco_eval()[0].numpy(), ref.stats, rtol=0, atol=1e-12)


def test_num_keypoints_given_overrides_the_count() -> None:
    """pycocotools reads the annotation's ``num_keypoints`` for its ignore rule, not the visibilities."""
    data = make_keypoint_dataset(8)
    for ann in data["gt"]["annotations"][::3]:
        ann["num_keypoints"] = 0  # ignored by pycocotools although its keypoints are labelled
    ref = pycocotools_keypoints(data)
    preds, target = to_torch(data)
    by_image: dict[int, list[int]] = {}
    for ann in data["gt"]["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["num_keypoints"])
    for t in target:
        t["num_keypoints"] = torch.tensor(by_image.get(t["image_id"], []), dtype=torch.int64)
    metric = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    metric.update(preds, target)
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), ref.stats, rtol=0, atol=1e-12)


def test_perfect_poses_and_empty_inputs() -> None:
    gt = torch.tensor([[[10.0, 10.0, 2.0], [30.0, 12.0, 2.0], [20.0, 40.0, 1.0]]])
    pred = {"keypoints": gt.clone(), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
    tgt = {"keypoints": gt, "labels": torch.tensor([0]), "area": torch.tensor([5000.0])}
    metric = MeanAveragePrecision(iou_type="keypoints", keypoint_sigmas=[0.1, 0.1, 0.1])
    metric.update([pred], [tgt])
    out = metric.compute()
    assert out["map"].item() == 1.0 and out["mar_20"].item() == 1.0 and out["map_medium"].item() == 1.0
    empty = MeanAveragePrecision(iou_type="keypoints")
    assert empty.compute()["map"].item() == -1.0
    empty.update(
        [
            {
                "keypoints": torch.zeros(0, 17, 3),
                "scores": torch.zeros(0),
                "labels": torch.zeros(0, dtype=torch.long),
            }
        ],
        [
            {
                "keypoints": torch.zeros(0, 17, 3),
                "labels": torch.zeros(0, dtype=torch.long),
                "area": torch.zeros(0),
            }
        ],
    )
    assert set(empty.compute()) >= set(STAT_KEYS)


@pytest.mark.parametrize(
    ("pred", "tgt", "match"),
    [
        ({"keypoints": torch.zeros(1, 17)}, {}, r"preds\[0\]\['keypoints'\] must have shape"),
        ({}, {"keypoints": torch.zeros(1, 17, 2)}, r"target\[0\]\['keypoints'\] must have shape \(N, K, 3\)"),
        (
            {"keypoints": torch.full((1, 17, 3), float("nan"))},
            {},
            r"preds\[0\]\['keypoints'\] must have finite",
        ),
        ({"keypoints": torch.zeros(2, 17, 3)}, {}, r"preds\[0\]\['scores'\] must have shape \(2,\)"),
        ({}, {"area": None}, r"target\[0\] needs 'area'"),
        ({}, {"num_keypoints": torch.tensor([-1])}, r"target\[0\]\['num_keypoints'\] must be >= 0"),
        ({}, {"keypoints": None}, r"target` to contain the `keypoints` key"),
    ],
)
def test_bad_keypoint_inputs_name_the_field(pred: dict, tgt: dict, match: str) -> None:
    p = {"keypoints": torch.zeros(1, 17, 3), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}
    t = {"keypoints": torch.ones(1, 17, 3), "labels": torch.tensor([0]), "area": torch.tensor([100.0])}
    for side, change in ((p, pred), (t, tgt)):
        for key, value in change.items():
            if value is None:
                side.pop(key)
            else:
                side[key] = value
    with pytest.raises(InputError, match=match):
        MeanAveragePrecision(iou_type="keypoints").update([p], [t])


def test_bad_sigmas() -> None:
    for bad in ([], [0.1, -0.2], ["a"], [float("inf")]):
        with pytest.raises(InputError, match="keypoint_sigmas"):
            MeanAveragePrecision(iou_type="keypoints", keypoint_sigmas=bad)


def test_curves_calibration_and_bootstrap_read_the_keypoint_state() -> None:
    data = make_keypoint_dataset(9)
    ref = pycocotools_keypoints(data)
    metric = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    metric.update(*to_torch(data))
    curves = metric.curves(iou_threshold=0.5)
    # per-class AP50 of the curves = pycocotools' precision table at OKS 0.5, area all, maxDets 20
    prec = ref.eval["precision"][0, :, :, 0, 0]
    expected = [prec[:, k].mean() for k in range(prec.shape[1]) if (prec[:, k] > -1).any()]
    np.testing.assert_allclose(curves.ap[curves.ap > -1].numpy(), expected, atol=1e-12)
    assert 0.0 <= metric.calibration().ece.item() <= 1.0
    ci = metric.bootstrap(n_resamples=50, seed=3)
    assert ci.estimate["map"] == pytest.approx(ref.stats[0], abs=1e-12)
    assert 0.0 <= ci.low["map"] <= ci.high["map"] <= 1.0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 23), max_size=4))
def test_update_order_and_batch_split_do_not_change_the_result(seed: int, cuts: list[int]) -> None:
    data = make_keypoint_dataset(seed % 50, n_images=24)
    preds, target = to_torch(data)
    whole = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    whole.update(preds, target)
    order = np.random.default_rng(seed).permutation(len(preds))
    split = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    bounds = [0, *sorted(set(cuts)), len(preds)]
    for a, b in itertools.pairwise(bounds):
        split.update([preds[i] for i in order[a:b]], [target[i] for i in order[a:b]])
    np.testing.assert_array_equal(whole.coco_eval()[0].numpy(), split.coco_eval()[0].numpy())


def test_classwise_ap_and_plots_for_keypoints() -> None:
    from objdet.training.metrics import ClasswiseAP

    data = make_keypoint_dataset(10)
    preds, target = to_torch(data)
    for t in target:
        t["labels"] = t["labels"] - 1  # ClasswiseAP's labels are 0..num_classes-1
    for p in preds:
        p["labels"] = p["labels"] - 1
    data_cats = [1, 2, 3]
    metric = ClasswiseAP(num_classes=3, iou_threshold=None, iou_type="keypoints", box_format="xywh")
    metric.update(preds, target)
    out = metric.compute()
    for k, cat in enumerate(data_cats):
        expected = pycocotools_keypoints(data, cat_ids=[cat]).stats[0]
        assert out[f"class_{k}_AP"].item() == pytest.approx(expected, abs=1e-6)
    fig, _ = metric.plot()
    import matplotlib.pyplot as plt

    plt.close(fig)
    full = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    full.update(preds, target)
    for kind in ("pr", "f1"):
        fig, _ = full.plot(kind=kind)
        plt.close(fig)
    fig, _ = full.plot()  # the scalars of compute(): the 10 keypoint numbers
    plt.close(fig)


def test_figures_of_a_keypoint_metric_say_oks() -> None:
    import matplotlib.pyplot as plt

    metric = MeanAveragePrecision(iou_type="keypoints", box_format="xywh")
    metric.update(*to_torch(make_keypoint_dataset(13)))
    assert metric.curves().similarity == "OKS" and metric.calibration().similarity == "OKS"
    for kind in ("pr", "f1", "ap"):
        fig, ax = metric.plot(kind=kind)
        assert "OKS ≥ 0.5" in ax.get_title() and "IoU" not in ax.get_title()
        plt.close(fig)
    fig, ax = metric.plot_calibration()
    assert "OKS ≥ 0.5" in fig.axes[0].get_title()
    plt.close(fig)
