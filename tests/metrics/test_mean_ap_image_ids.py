"""``image_id`` in the targets: pycocotools' image order whatever the update order, each id once.

pycocotools sorts ``imgIds``; score ties between images are broken in that order. With ids the
metric gives pycocotools' numbers for any update order, batch split or sharding, and a copy
of an image (a ``DistributedSampler`` pads its shards with copies) counts once.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.functional.image_records import (
    NO_IMAGE_ID,
    conflicting_duplicates,
    evaluation_order,
    image_fingerprints,
    segment_rows,
)
from objdet.training.metrics import ClasswiseAP, InputError, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, pycocotools_ious, to_torch
from tests.helpers.coco_segm_reference import make_segm_dataset, to_torch_segm

pytestmark = pytest.mark.usefixtures("engine")

TOL = 1e-9


def _with_ids(target: list[dict], ids: list[int]) -> list[dict]:
    return [{**t, "image_id": i} for t, i in zip(target, ids, strict=True)]


def _ids(seed: int, n: int) -> list[int]:
    """Distinct ids in an order unrelated to the list order (as in real COCO files)."""
    return (np.random.default_rng(seed).permutation(10 * n)[:n] * 3 + 1).tolist()


def _update_in(
    metric: MeanAveragePrecision, preds: list, target: list, order: list[int], sizes: list[int]
) -> None:
    k = 0
    for size in sizes:
        part = order[k : k + size]
        metric.update([preds[i] for i in part], [target[i] for i in part])
        k += size
    assert k == len(order)


def _flat(metric: MeanAveragePrecision) -> np.ndarray:
    stats, tables = metric.coco_eval()
    return np.concatenate([stats.numpy(), tables.precision.numpy().ravel(), tables.recall.numpy().ravel()])


def _assert_matches(metric: MeanAveragePrecision, ref) -> None:
    stats, tables = metric.coco_eval()
    for name, ours, theirs in (
        ("stats", stats, ref.stats),
        ("precision", tables.precision, ref.precision),
        ("recall", tables.recall, ref.recall),
        ("scores", tables.scores, ref.scores),
    ):
        assert ours.shape == theirs.shape, name
        assert np.abs(ours.numpy() - theirs).max() <= TOL, name
    assert tables.classes.tolist() == ref.cat_ids


@pytest.mark.parametrize("seed", range(6))
def test_any_update_order_gives_pycocotools_numbers(seed: int) -> None:
    images = make_dataset(seed, n_images=14)
    ids = _ids(seed, len(images))
    ref = pycocotools_eval(images, image_ids=ids)
    preds, target = to_torch(images)
    target = _with_ids(target, ids)
    order = np.random.default_rng(seed + 100).permutation(len(images)).tolist()
    metric = MeanAveragePrecision(box_format="xywh")
    _update_in(metric, preds, target, order, [3, 1, 5, 5])
    _assert_matches(metric, ref)


def test_without_ids_the_update_order_decides_ties() -> None:
    """The case above needs ids: without them some update orders break ties otherwise."""
    images = make_dataset(0, n_images=14)
    ids = _ids(0, len(images))
    preds, target = to_torch(images)
    by_id = sorted(range(len(images)), key=lambda i: ids[i])
    differs = 0
    for seed in range(4):
        order = np.random.default_rng(seed).permutation(len(images)).tolist()
        plain = MeanAveragePrecision(box_format="xywh")
        _update_in(plain, preds, target, order, [len(order)])
        in_id_order = MeanAveragePrecision(box_format="xywh")
        _update_in(in_id_order, preds, target, by_id, [len(by_id)])
        differs += not np.array_equal(_flat(plain), _flat(in_id_order))
    assert differs, "generated ties should make the image order matter"


def test_copies_of_images_count_once_and_the_first_copy_is_kept() -> None:
    images = make_dataset(3, n_images=11)
    ids = _ids(3, len(images))
    ref = pycocotools_eval(images, image_ids=ids)
    preds, target = to_torch(images)
    target = _with_ids(target, ids)
    # a sampler's padding: the first images once more, in a later update, and one copy inside a batch
    padded = [*range(11), 0, 1, 2]
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    once = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _update_in(metric, preds, target, [*padded, 5], [6, 6, 3])
        _update_in(once, preds, target, list(range(11)), [11])
        _assert_matches(metric, ref)
        ours, theirs = metric.compute(), once.compute()
    assert not [w for w in seen if "image_id" in str(w.message)], "identical copies: no warning"
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    c_ours, c_once = metric.curves(), once.curves()
    torch.testing.assert_close(c_ours.precision, c_once.precision, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(c_ours.ap, c_once.ap, rtol=0, atol=0, equal_nan=True)
    assert int(metric.n_images) == 15  # images seen; 11 evaluated


def test_an_id_given_to_other_content_warns_and_keeps_the_first() -> None:
    images = make_dataset(5, n_images=8)
    ids = _ids(5, len(images))
    ref = pycocotools_eval(images, image_ids=ids)
    preds, target = to_torch(images)
    target = _with_ids(target, ids)
    changed = {**preds[4], "scores": preds[4]["scores"] * 0.5}
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    metric.update([changed, preds[6]], [target[4], target[6]])
    with pytest.warns(
        UserWarning, match=rf"1 `image_id`\(s\) were given to images with different content: {ids[4]}\."
    ):
        _assert_matches(metric, ref)


@pytest.mark.parametrize(
    "value",
    [7, np.int64(7), torch.tensor(7), torch.tensor([7]), torch.tensor([7], dtype=torch.int32)],
    ids=["int", "numpy", "0-d tensor", "torchvision's tensor([id])", "int32"],
)
def test_accepted_id_forms(value: object) -> None:
    images = make_dataset(1, n_images=2)
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh", extended_summary=True)
    metric.update(preds, [{**target[0], "image_id": value}, {**target[1], "image_id": 3}])
    assert sorted({image for image, _ in metric.compute()["ious"]}) == [3, 7]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.5, "float 1.5"),
        ("7", "str '7'"),
        (True, "bool True"),
        (torch.tensor([1, 2]), "torch.int64 tensor of shape (2,)"),
        (torch.tensor(1.0), "torch.float32 tensor of shape ()"),
        (-(2**63), "must fit in int64"),
    ],
)
def test_bad_ids_name_the_field(value: object, shown: str) -> None:
    preds, target = to_torch(make_dataset(1, n_images=2))
    metric = MeanAveragePrecision(box_format="xywh")
    with pytest.raises(InputError, match=r"target\[1\]\['image_id'\]") as err:
        metric.update(preds, [{**target[0], "image_id": 0}, {**target[1], "image_id": value}])
    assert shown in str(err.value)
    assert isinstance(err.value, ValueError)


def test_ids_in_some_targets_only_are_an_error() -> None:
    preds, target = to_torch(make_dataset(1, n_images=3))
    metric = MeanAveragePrecision(box_format="xywh")
    with pytest.raises(InputError, match=r"target\[1\] has no 'image_id' but target\[0\] has one"):
        metric.update(preds, [{**target[0], "image_id": 0}, target[1], {**target[2], "image_id": 2}])
    metric.update(preds[:1], [{**target[0], "image_id": 0}])
    with pytest.raises(InputError, match="earlier batches' targets had it, this batch's do not"):
        metric.update(preds[1:], target[1:])
    plain = MeanAveragePrecision(box_format="xywh")
    plain.update(preds[:1], target[:1])
    with pytest.raises(InputError, match="this batch's targets have it, earlier batches' did not"):
        plain.update(preds[1:], _with_ids(target[1:], [1, 2]))
    # states merged from a metric without ids (another rank): compute() says so
    plain.merge_state(metric)
    with pytest.raises(InputError, match="`image_id` was given for 1 of 2 images"):
        plain.compute()


def test_ious_are_keyed_by_image_id() -> None:
    images = make_dataset(2, n_images=6)
    ids = _ids(2, len(images))
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh", extended_summary=True)
    _update_in(metric, preds, _with_ids(target, ids), [5, 0, 3, 1, 2, 4, 0], [4, 3])
    ours = metric.compute()["ious"]
    ref = pycocotools_ious(images, ids)
    assert set(ours) == set(ref)
    for key, block in ref.items():
        if isinstance(block, list):
            assert ours[key] == [] or ours[key].numel() == 0, key
        else:
            np.testing.assert_allclose(ours[key].numpy(), block, rtol=0, atol=1e-6, err_msg=str(key))


def test_classwise_ap_counts_copies_once() -> None:
    images = make_dataset(4, n_images=9)
    ids = _ids(4, len(images))
    preds, target = to_torch(images)
    target = _with_ids(target, ids)
    padded, once = (
        ClasswiseAP(num_classes=4, box_format="xywh"),
        ClasswiseAP(num_classes=4, box_format="xywh"),
    )
    _update_in(padded, preds, target, [8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 1], [5, 6])
    _update_in(once, preds, target, list(range(9)), [9])
    assert padded.compute() == once.compute()
    ref = pycocotools_eval(images, image_ids=ids, iou_thresholds=[0.5])
    assert once.compute()["class_0_AP"].item() == pytest.approx(
        float(np.mean(ref.precision[0, :, 0, 0, -1][ref.precision[0, :, 0, 0, -1] > -1])), abs=1e-6
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_order_split_and_copies_never_change_the_result(seed: int, data: st.DataObject) -> None:
    images = make_dataset(seed % 50, n_images=7, max_gt=4, crowded_image=False)
    ids = _ids(seed, len(images))
    preds, target = to_torch(images)
    target = _with_ids(target, ids)
    reference = MeanAveragePrecision(box_format="xywh")
    _update_in(reference, preds, target, list(range(7)), [7])
    order = data.draw(st.permutations(range(7)))
    copies = data.draw(st.lists(st.integers(0, 6), max_size=4))
    seen = [*order, *copies]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(seen) - 1), max_size=4)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(seen)], strict=True)]
    metric = MeanAveragePrecision(box_format="xywh")
    _update_in(metric, preds, target, seen, sizes)
    np.testing.assert_array_equal(_flat(metric), _flat(reference))


@pytest.mark.parametrize("iou_type", ["segm", ("bbox", "segm")])
def test_masks_with_ids_equal_the_unique_images_in_id_order(iou_type: str | tuple[str, ...]) -> None:
    """Masks: copies and any order with ids give what the unique images in id order give without."""
    images = make_segm_dataset(12, n_images=8)
    ids = _ids(12, len(images))
    preds, target = to_torch_segm(images, with_boxes=True)
    by_id = sorted(range(len(images)), key=lambda i: ids[i])
    plain = MeanAveragePrecision(iou_type=iou_type, box_format="xywh", class_metrics=True)
    _update_in(plain, preds, target, by_id, [8])
    metric = MeanAveragePrecision(iou_type=iou_type, box_format="xywh", class_metrics=True)
    _update_in(metric, preds, _with_ids(target, ids), [7, 3, 0, 5, 1, 6, 2, 4, 3, 0], [4, 6])
    ours, theirs = metric.compute(), plain.compute()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------------------- the records themselves
def test_evaluation_order_sorts_ids_and_keeps_first_copies() -> None:
    ids = torch.tensor([30, 10, 30, 20, 10])
    assert evaluation_order(ids).tolist() == [1, 3, 0]
    assert evaluation_order(torch.full((3,), NO_IMAGE_ID)) is None
    assert evaluation_order(torch.zeros(0, dtype=torch.int64)) is None
    with pytest.raises(ValueError, match="given for 2 of 3 images"):
        evaluation_order(torch.tensor([1, NO_IMAGE_ID, 2]))


@given(counts=st.lists(st.integers(0, 4), min_size=1, max_size=8), data=st.data())
def test_segment_rows_picks_each_images_rows_in_order(counts: list[int], data: st.DataObject) -> None:
    chosen = data.draw(st.permutations(range(len(counts))))[: data.draw(st.integers(0, len(counts)))]
    starts = np.cumsum([0, *counts])
    expected = [r for i in chosen for r in range(starts[i], starts[i + 1])]
    assert segment_rows(torch.tensor(counts), torch.tensor(chosen, dtype=torch.int64)).tolist() == expected


def test_fingerprints_tell_copies_from_other_content() -> None:
    rows = torch.tensor([[0.5, 1.0, 2.0], [0.25, 3.0, 1.0], [0.5, 1.0, 2.0], [0.25, 3.0, 1.5]])
    prints = image_fingerprints(
        4, [(torch.tensor([0, 0, 1, 1]), rows), (torch.zeros(0, dtype=torch.int64), rows[:0])]
    )
    assert prints[0] != prints[1]
    same = image_fingerprints(2, [(torch.tensor([0, 1]), rows[[0, 2]])])
    assert same[0] == same[1]
    assert conflicting_duplicates(torch.tensor([5, 5, 6]), torch.tensor([1.0, 1.0 + 1e-12, 2.0])) == []
    assert conflicting_duplicates(torch.tensor([5, 5, 6]), torch.tensor([1.0, 1.1, 2.0])) == [5]


# ---------------------------------------------------------------------------- sliced evaluation
def _fresh(images_order: list[int], preds: list, target: list, **kwargs: object) -> dict:
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True, **kwargs)
    if images_order:
        metric.update([preds[i] for i in images_order], [target[i] for i in images_order])
    return metric.compute()


def _assert_same(ours: dict, theirs: dict, what: str) -> None:
    assert ours.keys() == theirs.keys(), what
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=f"{what}: {key}")


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_a_slice_equals_a_metric_that_saw_only_its_images(seed: int, data: st.DataObject) -> None:
    """Tags at update time and ids afterwards give what the slice's images alone give; a
    partition's slices together hold every image's detections and GTs once."""
    images = make_dataset(seed % 40, n_images=8, max_gt=4, crowded_image=False)
    ids = _ids(seed, len(images))
    preds, target = to_torch(images)
    night = data.draw(st.sets(st.integers(0, 7)))
    tagged = [
        {**t, "image_id": i, "slices": {"night"} if k in night else {"day"}}
        for k, (t, i) in enumerate(zip(target, ids, strict=True))
    ]
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True, slices=["night", "day"])
    order = data.draw(st.permutations(range(8)))
    _update_in(metric, preds, tagged, [*order, order[0]], [3, 6])  # a copy too
    hard = data.draw(st.sets(st.integers(0, 7)))
    out = metric.compute_slices({"hard": [ids[k] for k in hard]})
    plain = _with_ids(target, ids)
    by_id = lambda ks: sorted(ks, key=lambda k: ids[k])  # noqa: E731
    _assert_same(out["night"], _fresh(by_id(night), preds, plain), "night")
    _assert_same(out["day"], _fresh(by_id(set(range(8)) - night), preds, plain), "day")
    _assert_same(out["hard"], _fresh(by_id(hard), preds, plain), "hard")


def test_slices_against_pycocotools_and_without_ids() -> None:
    images = make_dataset(9, n_images=10)
    preds, target = to_torch(images)
    odd = [k for k in range(10) if k % 2]
    ref = pycocotools_eval([images[k] for k in odd])
    tagged = [{**t, "slices": torch.tensor([k % 2 == 1])} for k, t in enumerate(target)]  # a bool mask
    metric = MeanAveragePrecision(box_format="xywh", slices=["odd"])
    _update_in(metric, preds, tagged, list(range(10)), [4, 6])
    stats = torch.stack([metric.compute_slices()["odd"][k] for k in ("map", "map_50", "map_75")])
    np.testing.assert_allclose(stats.numpy(), ref.stats[:3], rtol=0, atol=1e-6)
    # an empty slice: -1, as a metric without images
    empty = MeanAveragePrecision(box_format="xywh", slices=["none"])
    empty.update(preds, target)
    assert empty.compute_slices()["none"]["map"].item() == -1.0


def test_bad_slices_name_the_field() -> None:
    preds, target = to_torch(make_dataset(1, n_images=2))
    with pytest.raises(InputError, match="`slices` must be distinct non-empty strings"):
        MeanAveragePrecision(slices=["a", "a"])
    metric = MeanAveragePrecision(box_format="xywh", slices=["a", "b"])
    with pytest.raises(
        InputError, match=r"target\[1\]\['slices'\] names 'c', not one of the metric's \['a', 'b'\]"
    ):
        metric.update(preds, [target[0], {**target[1], "slices": {"c"}}])
    with pytest.raises(
        InputError, match=r"target\[0\]\['slices'\] as a tensor must be a bool mask of shape \(2,\)"
    ):
        metric.update(preds, [{**target[0], "slices": torch.tensor([1, 0])}, target[1]])
    plain = MeanAveragePrecision(box_format="xywh")
    with pytest.raises(
        InputError, match=r"target\[0\] has 'slices' but the metric was created without `slices=`"
    ):
        plain.update(preds[:1], [{**target[0], "slices": {"a"}}])
    metric.update(preds, target)  # no ids
    with pytest.raises(InputError, match="slices given as image ids need `image_id`"):
        metric.compute_slices({"x": [0]})
    with_ids = MeanAveragePrecision(box_format="xywh")
    with_ids.update(preds, _with_ids(target, [4, 5]))
    with pytest.raises(InputError, match=r"slice 'x': 1 image id\(s\) were never seen by the metric: \[6\]"):
        with_ids.compute_slices({"x": [4, 6]})
    with pytest.raises(InputError, match=r"`slices\['x'\]` must hold int image ids"):
        with_ids.compute_slices({"x": ["4"]})
