"""MeanAveragePrecision / ClasswiseAP: input errors, Metric protocol, invariants (hypothesis)."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torchmetrics import MetricCollection

from objdet.training.metrics import ClasswiseAP, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, to_torch


def _pred(boxes=None, scores=None, labels=None) -> dict:
    return {
        "boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]) if boxes is None else boxes,
        "scores": torch.tensor([0.9]) if scores is None else scores,
        "labels": torch.tensor([1]) if labels is None else labels,
    }


def _gt(**extra) -> dict:
    out = {"boxes": torch.tensor([[12.0, 10.0, 50.0, 58.0]]), "labels": torch.tensor([1])}
    out.update(extra)
    return out


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        ({"boxes": 1}, [_gt()], TypeError, r"`preds` must be a list of dicts"),
        ([_pred()], [_gt(), _gt()], ValueError, r"got 1 and 2"),
        (
            [{"scores": torch.tensor([0.5]), "labels": torch.tensor([1])}],
            [_gt()],
            ValueError,
            r"preds\[0\] has no key 'boxes'",
        ),
        ([_pred()], [{"boxes": torch.zeros(1, 4)}], ValueError, r"target\[0\] has no key 'labels'"),
        (
            [_pred(boxes=torch.zeros(1, 5))],
            [_gt()],
            ValueError,
            r"preds\[0\]\['boxes'\] must have shape \(N, 4\), got \(1, 5\)",
        ),
        (
            [_pred(boxes=[[1, 2, 3, 4]])],
            [_gt()],
            TypeError,
            r"preds\[0\]\['boxes'\] must be a torch.Tensor, got list",
        ),
        (
            [_pred(scores=torch.tensor([0.5, 0.4]))],
            [_gt()],
            ValueError,
            r"preds\[0\]\['scores'\] must have shape \(1,\)",
        ),
        (
            [_pred(scores=torch.tensor([1]))],
            [_gt()],
            TypeError,
            r"preds\[0\]\['scores'\] must be a floating point",
        ),
        (
            [_pred(labels=torch.tensor([1.5]))],
            [_gt()],
            ValueError,
            r"preds\[0\]\['labels'\] must hold integer class ids, got 1.5",
        ),
        (
            [_pred(boxes=torch.tensor([[0.0, float("nan"), 1.0, 1.0]]))],
            [_gt()],
            ValueError,
            r"preds\[0\]\['boxes'\] must have finite",
        ),
        (
            [_pred(scores=torch.tensor([float("inf")]))],
            [_gt()],
            ValueError,
            r"preds\[0\]\['scores'\] must have finite",
        ),
        (
            [_pred(boxes=torch.tensor([[10.0, 10.0, 5.0, 20.0]]))],
            [_gt()],
            ValueError,
            r"non-negative width and height \(xyxy; `box_format` must be the boxes' format: COCO files "
            r"and objdet.io.load_coco_gt give 'xywh'\), got \[10.0, 10.0, 5.0, 20.0\]",
        ),
        (
            [_pred()],
            [_gt(iscrowd=torch.tensor([2]))],
            ValueError,
            r"target\[0\]\['iscrowd'\] must have values in \{0, 1\}, got 2",
        ),
        (
            [_pred()],
            [_gt(area=torch.tensor([-1.0]))],
            ValueError,
            r"target\[0\]\['area'\] must have finite values >= 0",
        ),
        (
            [_pred()],
            [_gt(boxes=torch.tensor([[0.0, 0.0, 1.0, float("inf")]]))],
            ValueError,
            r"target\[0\]\['boxes'\]",
        ),
    ],
)
def test_bad_input_names_the_field(preds, target, error, match) -> None:
    with pytest.raises(error, match=match):
        MeanAveragePrecision().update(preds, target)


def test_bad_image_is_located() -> None:
    preds = [_pred(), _pred(), _pred(scores=torch.tensor([float("nan")]))]
    with pytest.raises(ValueError, match=r"preds\[2\]\['scores'\]"):
        MeanAveragePrecision().update(preds, [_gt()] * 3)


@pytest.mark.parametrize(
    ("side", "key", "value"),
    [
        ("preds", "scores", torch.tensor(0.9)),
        ("preds", "labels", torch.tensor(1)),
        ("target", "labels", torch.tensor(1)),
        ("target", "iscrowd", torch.tensor(0)),
        ("target", "area", torch.tensor(1900.0)),
    ],
)
def test_zero_dim_field_reads_as_one_value(side: str, key: str, value: torch.Tensor) -> None:
    """A 0-d tensor for a one-detection image leaves the fast path and counts as one value."""
    one_d = {"iscrowd": torch.tensor([0]), "area": torch.tensor([1900.0])}
    preds, target = [_pred(), _pred()], [_gt(**one_d), _gt(**one_d)]
    zero = copy.deepcopy((preds, target))
    zero[0 if side == "preds" else 1][1][key] = value
    expected, got = MeanAveragePrecision(), MeanAveragePrecision()
    expected.update(preds, target)
    got.update(*zero)
    assert float(expected.compute()["map"]) > 0.5
    assert torch.equal(got.compute()["map"], expected.compute()["map"])


def test_classwise_ap_label_range_and_arguments() -> None:
    with pytest.raises(ValueError, match=r"preds\[0\]\['labels'\] must have values in \[0, 2\], got 3"):
        ClasswiseAP(num_classes=3).update([_pred(labels=torch.tensor([3]))], [_gt()])
    with pytest.raises(ValueError, match=r"target\[0\]\['labels'\] must have values in \[0, 2\], got -1"):
        ClasswiseAP(num_classes=3).update([_pred()], [_gt(labels=torch.tensor([-1]))])
    with pytest.raises(ValueError, match="class_names"):
        ClasswiseAP(num_classes=3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="num_classes"):
        ClasswiseAP(num_classes=0)
    with pytest.raises(ValueError, match="iou_threshold"):
        ClasswiseAP(num_classes=2, iou_threshold=1.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"box_format": "xyzw"}, "box_format"),
        ({"iou_type": "keypointz"}, "iou_type"),
        ({"iou_type": ("bbox", "bbox")}, "iou_type"),
        ({"iou_thresholds": 0.5}, "iou_thresholds"),
        ({"iou_thresholds": [1.5]}, "iou_thresholds"),
        ({"max_detection_thresholds": [1, 10]}, "max_detection_thresholds"),
        ({"class_metrics": 1}, "class_metrics"),
        ({"average": "weighted"}, "average"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MeanAveragePrecision(**kwargs)


# ---------------------------------------------------------------- empty inputs
def test_no_update_and_empty_lists_give_minus_one() -> None:
    metric = MeanAveragePrecision()
    out = metric.compute()
    assert out["map"].item() == -1 and out["classes"].numel() == 0
    metric.update([], [])
    assert metric.compute()["mar_100"].item() == -1


def test_images_with_zero_boxes_are_valid() -> None:
    empty_pred = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
    }
    empty_gt = {"boxes": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    metric = MeanAveragePrecision(class_metrics=True)
    metric.update([empty_pred, _pred()], [_gt(), empty_gt])
    out = metric.compute()
    assert out["map"].item() == 0.0  # one GT never detected, one detection on an image without GT
    assert out["classes"].tolist() == 1


# ---------------------------------------------------------------- Metric protocol
def _data(seed: int = 1) -> tuple[list[dict], list[dict]]:
    return to_torch(make_dataset(seed, n_images=10), "xywh")


def test_metric_collection_forward_reset() -> None:
    preds, target = _data()
    collection = MetricCollection(
        {"map": MeanAveragePrecision(box_format="xywh"), "cap": ClasswiseAP(num_classes=4, box_format="xywh")}
    )
    batch_values = collection(preds[:4], target[:4])  # forward: value of this batch only
    alone = MeanAveragePrecision(box_format="xywh")
    alone.update(preds[:4], target[:4])
    assert batch_values["map"] == alone.compute()["map"]
    collection.update(preds[4:], target[4:])
    full = collection.compute()
    single = MeanAveragePrecision(box_format="xywh")
    single.update(preds, target)
    assert full["map"] == single.compute()["map"]
    assert set(full) >= {"class_0_AP", "class_3_AP"}
    collection.reset()
    assert collection.compute()["map"].item() == -1


def test_state_dict_round_trip_mid_epoch() -> None:
    preds, target = _data(2)
    reference = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    reference.update(preds, target)
    first = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    first.persistent(True)  # as in torchmetrics, states are in state_dict() only on request
    first.update(preds[:5], target[:5])
    saved = copy.deepcopy(first.state_dict())
    assert any(k.startswith("macro_tp") for k in saved)
    resumed = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    resumed.load_state_dict(saved)
    resumed.update(preds[5:], target[5:])
    for key, value in reference.compute().items():
        torch.testing.assert_close(resumed.compute()[key], value, rtol=0, atol=0)


def test_classwise_ap_matches_pycocotools_per_class() -> None:
    images = make_dataset(9)
    preds, target = to_torch(images)
    for thr in (0.5, 0.65, None):
        metric = ClasswiseAP(num_classes=5, iou_threshold=thr, box_format="xywh")
        metric.update(preds[:4], target[:4])
        metric.update(preds[4:], target[4:])
        out = metric.compute()
        assert list(out) == [f"class_{i}_AP" for i in range(5)]
        ref = pycocotools_eval(images, iou_thresholds=None if thr is None else [thr])
        for i in range(5):
            if i not in ref.cat_ids:
                assert out[f"class_{i}_AP"].item() == -1
                continue
            k = ref.cat_ids.index(i)
            p = ref.precision[:, :, k, 0, 2]
            expected = p[p > -1].mean() if (p > -1).any() else -1.0
            assert abs(out[f"class_{i}_AP"].item() - expected) < 1e-6, (thr, i)


def test_classwise_ap_state_is_one_byte_of_flags() -> None:
    metric = ClasswiseAP(num_classes=5, box_format="xywh")
    preds, target = _data()
    metric.update(preds, target)
    assert metric._state("macro_tp").shape[1] == 1 and metric._state("macro_ignored").dtype == torch.uint8


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    preds, target = _data(3)
    cpu = MeanAveragePrecision(box_format="xywh", class_metrics=True, extended_summary=True)
    cpu.update(preds, target)
    to = lambda items: [{k: v.cuda() for k, v in d.items()} for d in items]  # noqa: E731
    gpu = MeanAveragePrecision(box_format="xywh", class_metrics=True, extended_summary=True).cuda()
    gpu.update(to(preds), to(target))
    for key, value in cpu.compute().items():
        torch.testing.assert_close(gpu.compute()[key].cpu(), value, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- invariants
def _stats(metric: MeanAveragePrecision) -> np.ndarray:
    stats, tables = metric.coco_eval()
    return np.concatenate([stats.numpy(), tables.precision.numpy().ravel(), tables.recall.numpy().ravel()])


@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 8), max_size=5))
def test_batch_split_invariance(seed: int, cuts: list[int]) -> None:
    preds, target = to_torch(make_dataset(seed, n_images=8, crowded_image=False))
    one = MeanAveragePrecision(box_format="xywh")
    one.update(preds, target)
    many = MeanAveragePrecision(box_format="xywh")
    bounds = [0, *sorted(cuts), len(preds)]
    for a, b in itertools.pairwise(bounds):
        many.update(preds[a:b], target[a:b])  # includes empty updates
    np.testing.assert_array_equal(_stats(one), _stats(many))
    stats = one.coco_eval()[0]
    assert ((stats == -1) | ((stats >= 0) & (stats <= 1))).all()


@given(seed=st.integers(0, 10_000))
def test_detection_order_within_an_image_does_not_matter(seed: int) -> None:
    images = make_dataset(seed, n_images=6, crowded_image=False)
    rng = np.random.default_rng(seed)
    for im in images:
        im.dt_scores = rng.permutation(len(im.dt_scores)) / max(len(im.dt_scores), 1) + 0.01  # distinct
    preds, target = to_torch(images)
    shuffled = []
    for p in preds:
        perm = torch.from_numpy(rng.permutation(len(p["scores"])))
        shuffled.append({k: v[perm] for k, v in p.items()})
    a, b = MeanAveragePrecision(box_format="xywh"), MeanAveragePrecision(box_format="xywh")
    a.update(preds, target)
    b.update(shuffled, target)
    np.testing.assert_array_equal(_stats(a), _stats(b))


@given(seed=st.integers(0, 10_000), n_images=st.integers(1, 6))
def test_perfect_predictions_score_one(seed: int, n_images: int) -> None:
    rng = np.random.default_rng(seed)
    preds, target = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (m, 2))
        wh = rng.uniform(1, 200, (m, 2))
        boxes = torch.tensor(np.concatenate([xy, xy + wh], 1))
        labels = torch.from_numpy(rng.integers(0, 3, m))
        preds.append({"boxes": boxes, "scores": torch.from_numpy(rng.uniform(0.1, 1, m)), "labels": labels})
        target.append({"boxes": boxes.clone(), "labels": labels.clone()})
    metric = MeanAveragePrecision(class_metrics=True)
    metric.update(preds, target)
    out = metric.compute()
    for key in (
        "map",
        "map_50",
        "map_75",
        "mar_100",
        "map_small",
        "map_medium",
        "map_large",
        "map_per_class",
    ):
        values = out[key].flatten()
        assert ((values == 1) | (values == -1)).all(), key
    has_gt = any(len(t["labels"]) for t in target)
    assert (out["map"].item() == 1.0) == has_gt


# ---------------------------------------------------------------- input dtypes (torchmetrics' idioms)
def _xywh_stats(preds: list, target: list, **kwargs) -> torch.Tensor:
    metric = MeanAveragePrecision(box_format="xywh", **kwargs)
    metric.update(preds, target)
    return metric.coco_eval()[0]


def test_label_dtypes_empty_float_labels_and_bool_crowd_give_the_same_numbers() -> None:
    preds, target = _data()
    expected = _xywh_stats(preds, target)

    def relabel(items: list, dtype: torch.dtype) -> list:
        return [{**d, "labels": d["labels"].to(dtype)} for d in items]

    for dtype in (torch.int32, torch.uint8, torch.int16, torch.float32, torch.float64):
        assert torch.equal(_xywh_stats(relabel(preds, dtype), relabel(target, dtype)), expected), dtype
    crowd_bool = [{**t, "iscrowd": t["iscrowd"].bool()} if "iscrowd" in t else t for t in target]
    assert torch.equal(_xywh_stats(preds, crowd_bool), expected)
    # an image without objects written the usual way: float32 torch.tensor([]) labels, empty boxes
    empty_p = {"boxes": torch.zeros(0, 4), "scores": torch.tensor([]), "labels": torch.tensor([])}
    empty_t = {"boxes": torch.zeros(0, 4), "labels": torch.tensor([])}
    with_empty = _xywh_stats([*preds, empty_p], [*target, empty_t])
    reference = _xywh_stats(
        [*preds, {**empty_p, "labels": torch.zeros(0, dtype=torch.long)}],
        [*target, {**empty_t, "labels": torch.zeros(0, dtype=torch.long)}],
    )
    assert torch.equal(with_empty, reference)


def test_inputs_that_require_grad_or_mix_float_precisions_take_the_checked_path() -> None:
    preds, target = _data()
    expected = _xywh_stats(preds, target)
    grad = [{**p, "scores": p["scores"].clone().requires_grad_(True)} for p in preds]
    assert torch.equal(_xywh_stats(grad, target), expected)
    # one image's boxes in float32: torch.cat promotes to float64, so the numbers stay the same
    mixed = [{**p, "boxes": p["boxes"].float()} if i == 0 else p for i, p in enumerate(preds)]
    # both engines read precisions alike (the torch accumulate agrees to rounding, not bitwise)
    torch.testing.assert_close(
        _xywh_stats(mixed, target), _xywh_stats(mixed, target, engine="torch"), rtol=0, atol=1e-12
    )


def test_input_errors_are_value_and_type_errors() -> None:
    from objdet.training.metrics import InputError

    with pytest.raises(InputError) as info:
        MeanAveragePrecision().update([_pred(scores=torch.tensor([1]))], [_gt()])
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    ("side", "key", "value"),
    [
        ("preds", "boxes", torch.tensor([[10.0, 10.0, 50.0, 60.0, 1.0]])),  # (N, 5) in every image
        ("preds", "scores", torch.tensor([[0.9]])),  # (N, 1)
        ("preds", "labels", torch.tensor([[1]])),
        ("target", "boxes", torch.tensor([[12.0, 10.0, 50.0, 58.0, 0.0]])),
        ("target", "labels", torch.tensor([[1]])),
        ("target", "iscrowd", torch.tensor([[0]])),
        ("target", "area", torch.tensor([[100.0]])),
        ("preds", "labels", torch.tensor([True])),  # bool labels
        ("preds", "scores", torch.tensor([1])),  # integer scores
    ],
)
def test_a_shape_or_dtype_wrong_in_every_image_is_named(side: str, key: str, value: torch.Tensor) -> None:
    # the fast reader checks shapes and dtypes on the concatenation: a field wrong in every image
    # (so that torch.cat accepts it) must still reach the checked path and its error
    preds, target = [_pred(), _pred()], [_gt(), _gt()]
    for item in preds if side == "preds" else target:
        item[key] = value.clone()
    with pytest.raises(ValueError, match=rf"{side}\[0\]\['{key}'\]"):
        MeanAveragePrecision().update(preds, target)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("scores", torch.tensor([1])),
        ("labels", torch.tensor([True])),
        ("boxes", torch.ones(1, 4, dtype=torch.bool)),
    ],
)
def test_one_image_of_another_dtype_is_named_also_beside_others(key: str, value: torch.Tensor) -> None:
    # torch.cat would promote it to the others' dtype: the fast reader checks dtypes per image
    alone = [_pred(**{key: value})]
    with pytest.raises(ValueError, match=rf"preds\[0\]\['{key}'\]"):
        MeanAveragePrecision().update(alone, [_gt()])
    with pytest.raises(ValueError, match=rf"preds\[1\]\['{key}'\]"):
        MeanAveragePrecision().update([_pred(), *alone], [_gt(), _gt()])
