"""MeanAveragePrecision against pycocotools COCOeval on generated data (tests/helpers/coco_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from objdet.training.metrics import MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, to_torch

#: every test here runs on both COCO engines (compiled CPU loops and torch kernels)
pytestmark = pytest.mark.usefixtures("engine")

TOL = 1e-9


def _assert_close(ours: torch.Tensor | np.ndarray, ref: np.ndarray, what: str) -> None:
    ours = ours.cpu().numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != pycocotools {ref.shape}"
    diff = np.abs(ours - ref).max() if ref.size else 0.0
    assert diff <= TOL, f"{what}: max |ours - pycocotools| = {diff}"


def _run(metric: MeanAveragePrecision, preds: list, target: list, batch: int) -> MeanAveragePrecision:
    for k in range(0, len(preds), batch):
        metric.update(preds[k : k + batch], target[k : k + batch])
    return metric


def _check_everything(metric: MeanAveragePrecision, ref) -> None:
    stats, tables = metric.coco_eval()
    _assert_close(stats, ref.stats, "stats")
    _assert_close(tables.precision, ref.precision, "precision")
    _assert_close(tables.recall, ref.recall, "recall")
    _assert_close(tables.scores, ref.scores, "scores")
    assert tables.classes.tolist() == ref.cat_ids


@pytest.mark.parametrize("seed", range(12))
def test_default_parameters_match_pycocotools(seed: int) -> None:
    images = make_dataset(seed)
    ref = pycocotools_eval(images)
    assert (ref.stats > 0).any(), "generated data should give non-trivial results"
    preds, target = to_torch(images)
    _check_everything(_run(MeanAveragePrecision(box_format="xywh"), preds, target, batch=3), ref)


@pytest.mark.parametrize("box_format", ["xyxy", "cxcywh"])
def test_box_formats_with_integer_coordinates(box_format: str) -> None:
    # integer coordinates make the format conversion exact, so pycocotools sees the same boxes
    images = make_dataset(100, integer_coords=True)
    ref = pycocotools_eval(images)
    preds, target = to_torch(images, box_format)
    _check_everything(_run(MeanAveragePrecision(box_format=box_format), preds, target, batch=2), ref)


@pytest.mark.parametrize("seed", [3, 4])
def test_custom_thresholds(seed: int) -> None:
    images = make_dataset(seed)
    iou = [0.3, 0.5, 0.75, 0.9, 1.0]
    rec = [0.0, 0.1, 0.25, 0.5, 1 / 3, 0.9, 1.0]
    md = [2, 5, 50]
    ref = pycocotools_eval(images, iou_thresholds=iou, rec_thresholds=sorted(rec), max_dets=md)
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(
        box_format="xywh", iou_thresholds=iou, rec_thresholds=sorted(rec), max_detection_thresholds=md
    )
    _check_everything(_run(metric, preds, target, batch=8), ref)
    out = metric.compute()
    assert {"mar_2", "mar_5", "mar_50"} <= set(out)


def test_many_lanes() -> None:
    # 20 thresholds x 4 areas = 80 lanes, packed into 10 bytes per detection
    images = make_dataset(7)
    iou = np.linspace(0.05, 1.0, 20).tolist()
    ref = pycocotools_eval(images, iou_thresholds=iou)
    preds, target = to_torch(images)
    metric = _run(MeanAveragePrecision(box_format="xywh", iou_thresholds=iou), preds, target, batch=4)
    assert metric._state("macro_tp").shape[1] == 10
    _check_everything(metric, ref)


@pytest.mark.parametrize("seed", [5, 6])
def test_class_metrics_match_per_category_evaluation(seed: int) -> None:
    images = make_dataset(seed)
    preds, target = to_torch(images)
    out = _run(MeanAveragePrecision(box_format="xywh", class_metrics=True), preds, target, batch=3).compute()
    classes = out["classes"].tolist()
    assert classes == pycocotools_eval(images).cat_ids
    for i, c in enumerate(classes):
        ref = pycocotools_eval(images, cat_ids=[c])
        assert abs(out["map_per_class"][i].item() - ref.stats[0]) < 1e-6
        assert abs(out["mar_100_per_class"][i].item() - ref.stats[8]) < 1e-6
    assert out["map_per_class"][-1].item() == -1.0  # the generator's last class never has GT


def test_micro_average_matches_class_agnostic_evaluation() -> None:
    images = make_dataset(11)
    agnostic = [
        type(im)(
            im.gt_boxes,
            np.zeros_like(im.gt_labels),
            im.gt_crowd,
            im.gt_area,
            im.dt_boxes,
            im.dt_scores,
            np.zeros_like(im.dt_labels),
        )
        for im in images
    ]
    ref = pycocotools_eval(agnostic)
    preds, target = to_torch(images)
    metric = _run(
        MeanAveragePrecision(box_format="xywh", average="micro", class_metrics=True), preds, target, 3
    )
    _check_everything(metric, ref)
    out = metric.compute()
    assert out["classes"].tolist() == pycocotools_eval(images).cat_ids
    assert out["map_per_class"].numel() == out["classes"].numel()


def test_images_without_anything_and_single_update() -> None:
    images = make_dataset(21)
    empty = type(images[0])(
        np.zeros((0, 4)),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        None,
        np.zeros((0, 4)),
        np.zeros(0),
        np.zeros(0, np.int64),
    )
    images = [empty, *images, empty]
    ref = pycocotools_eval(images)
    preds, target = to_torch(images)
    _check_everything(_run(MeanAveragePrecision(box_format="xywh"), preds, target, batch=len(preds)), ref)


def test_one_image_per_update_including_batches_without_gt_or_detections() -> None:
    images = make_dataset(0, n_images=10)
    assert any(len(im.gt_boxes) == 0 for im in images) and any(len(im.dt_boxes) == 0 for im in images)
    ref = pycocotools_eval(images)
    preds, target = to_torch(images)
    _check_everything(_run(MeanAveragePrecision(box_format="xywh"), preds, target, batch=1), ref)


def test_extended_summary_ious_match_pycocotools() -> None:
    from tests.helpers.coco_reference import pycocotools_ious

    images = make_dataset(13)
    ref = pycocotools_ious(images)
    preds, target = to_torch(images)
    metric = _run(MeanAveragePrecision(box_format="xywh", extended_summary=True), preds, target, batch=3)
    out = metric.compute()
    assert list(out["ious"]) == list(ref)  # same keys, same order (images, then classes)
    n_blocks = 0
    for key, expected in ref.items():
        ours = out["ious"][key]
        if isinstance(expected, list):
            assert ours == [], key
            continue
        n_blocks += 1
        assert ours.dtype == torch.float32
        np.testing.assert_allclose(
            ours.numpy(), expected.astype(np.float32), rtol=0, atol=0, err_msg=str(key)
        )
    assert n_blocks >= 5
    assert {"precision", "recall", "scores"} <= set(out)
    # contiguous, as torchmetrics' (the compiled engine fills strided views internally)
    assert all(out[k].is_contiguous() for k in ("precision", "recall", "scores"))
    _, tables = metric.coco_eval()
    assert tables.precision.is_contiguous() and tables.scores.is_contiguous()
    out["precision"].view(-1)  # a user's flat view works


# ---------------------------------------------------------------- corner cases found in review
def _image(gt: list, dt: list, scores: list, gt_labels=None, dt_labels=None):
    from tests.helpers.coco_reference import Image

    gt_a, dt_a = np.array(gt, dtype=np.float64).reshape(-1, 4), np.array(dt, dtype=np.float64).reshape(-1, 4)
    gl = np.zeros(len(gt_a), np.int64) if gt_labels is None else np.array(gt_labels, np.int64)
    dl = np.zeros(len(dt_a), np.int64) if dt_labels is None else np.array(dt_labels, np.int64)
    return Image(gt_a, gl, np.zeros(len(gt_a), np.int64), None, dt_a, np.array(scores, np.float64), dl)


def test_no_detection_in_the_whole_dataset() -> None:
    images = [_image([[0, 0, 10, 10]], [], []), _image([], [], [])]
    ref = pycocotools_eval(images)
    preds, target = to_torch(images)
    _check_everything(_run(MeanAveragePrecision(box_format="xywh"), preds, target, batch=2), ref)


@pytest.mark.parametrize("max_dets", [[1, 100, 200], [1, 10, 50], [1, 10, 100]])
def test_map_and_per_class_read_max_det_100_like_pycocotools(max_dets: list[int]) -> None:
    images = [
        _image(
            [[0, 0, 10, 10], [100, 100, 10, 10]], [[0, 0, 10, 10], [50, 50, 5, 5]], [0.9, 0.5], [0, 1], [0, 1]
        )
    ]
    ref = pycocotools_eval(images, max_dets=max_dets)
    preds, target = to_torch(images)
    metric = _run(
        MeanAveragePrecision(box_format="xywh", class_metrics=True, max_detection_thresholds=max_dets),
        preds,
        target,
        batch=1,
    )
    out = metric.compute()
    assert abs(out["map"].item() - ref.stats[0]) < 1e-7
    for i, c in enumerate(out["classes"].tolist()):
        per_class = pycocotools_eval(images, max_dets=max_dets, cat_ids=[c]).stats
        assert abs(out["map_per_class"][i].item() - per_class[0]) < 1e-7
        assert abs(out[f"mar_{max_dets[-1]}_per_class"][i].item() - per_class[8]) < 1e-7


def test_float32_xyxy_widths_are_rounded_like_torchmetrics() -> None:
    # torchmetrics converts xyxy -> xywh in float32 before pycocotools; this IoU sits at 0.75
    gt = torch.tensor([[6.4088826, 0.0, 44.408882, 10.0]], dtype=torch.float32)
    dt = torch.tensor([[6.4088826, 0.0, 34.908882, 10.0]], dtype=torch.float32)
    as_xywh = lambda b: torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], 1).double().numpy()  # noqa: E731
    ref = pycocotools_eval([_image(as_xywh(gt), as_xywh(dt), [float(np.float32(0.9))])])
    metric = MeanAveragePrecision()
    metric.update(
        [{"boxes": dt, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}],
        [{"boxes": gt, "labels": torch.tensor([0])}],
    )
    _check_everything(metric, ref)


def test_ious_after_forward_equal_ious_after_update() -> None:
    preds, target = to_torch(make_dataset(13))
    a = MeanAveragePrecision(box_format="xywh", extended_summary=True)
    b = MeanAveragePrecision(box_format="xywh", extended_summary=True)
    for k in range(0, len(preds), 3):
        a.update(preds[k : k + 3], target[k : k + 3])
        b(preds[k : k + 3], target[k : k + 3])
    ia, ib = a.compute()["ious"], b.compute()["ious"]
    assert list(ia) == list(ib)
    for key in ia:
        assert (ia[key] == ib[key]) if isinstance(ia[key], list) else torch.equal(ia[key], ib[key])


def test_labels_outside_int32_and_unsorted_recall_points_are_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"preds\[0\]\['labels'\] must have values in \[-2147483648, 2147483647\]"
    ):
        MeanAveragePrecision().update(
            [{"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.tensor([2**32])}],
            [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}],
        )
    with pytest.raises(ValueError, match="rec_thresholds"):
        MeanAveragePrecision(rec_thresholds=[1.0, 0.0])
