"""Bootstrap over images: each replicate equals pycocotools on the resampled images, seeded, paired."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.functional.bootstrap import bootstrap_weights, summary_of_replicates, weighted_class_ap
from objdet.training.metrics import InputError, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, to_torch

pytestmark = pytest.mark.usefixtures("engine")


def _metric(images: list, **kwargs: object) -> MeanAveragePrecision:
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True, **kwargs)
    for k in range(0, len(preds), 4):
        metric.update(preds[k : k + 4], target[k : k + 4])
    return metric


def _untied(seed: int, n: int) -> list:
    """Generated images (crowds, area boundaries, empty images) with distinct scores."""
    rng = np.random.default_rng(seed)
    images = make_dataset(seed, n_images=n, crowded_image=False)
    for im in images:
        im.dt_scores = rng.random(len(im.dt_scores))
    return images


@pytest.mark.parametrize("seed", range(3))
def test_each_replicate_is_pycocotools_on_the_resampled_images(seed: int) -> None:
    images = _untied(seed, 10)
    metric = _metric(images)
    state, _ = metric._bootstrap_inputs("bbox")
    weights = bootstrap_weights(10, 6, seed)
    classes, ap = weighted_class_ap(state, weights)
    summary, per_class = summary_of_replicates(ap, np.asarray(metric.iou_thresholds))
    for b in range(6):
        resampled = [images[i] for i in range(10) for _ in range(int(weights[i, b]))]
        ref = pycocotools_eval(resampled)
        np.testing.assert_allclose(summary[b], ref.stats[:3], rtol=0, atol=1e-12, err_msg=str(b))
        ref_ap = ref.precision[:, :, :, 0, -1]  # (T, R, K)
        for k, cat in enumerate(ref.cat_ids):
            mine = per_class[b, np.searchsorted(classes, cat)]
            defined = ref_ap[:, :, k] > -1
            if defined.any():
                assert mine == pytest.approx(ref_ap[:, :, k][defined].mean(), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 4])
def test_the_estimate_is_the_metrics_value_with_ties_and_crowds(seed: int) -> None:
    metric = _metric(make_dataset(seed, n_images=12))  # score ties across images, > 100 detections
    out = metric.compute()
    ci = metric.bootstrap(n_resamples=40, seed=1)
    for key in ("map", "map_50", "map_75"):
        assert ci.estimate[key] == pytest.approx(out[key].item(), abs=1e-6)
        assert ci.low[key] <= ci.high[key]
    per_class = np.where(out["map_per_class"].numpy() < 0, np.nan, out["map_per_class"].numpy())
    np.testing.assert_allclose(ci.estimate["map_per_class"], per_class, atol=1e-6)
    assert ci.replicates.shape == (40, 3) and ci.class_replicates.shape == (40, len(ci.classes))
    assert ci.bias["map"] == pytest.approx(np.nanmean(ci.replicates[:, 0]) - ci.estimate["map"])


def test_seeded_and_containing_the_estimate() -> None:
    metric = _metric(make_dataset(2, n_images=16))
    a, b, c = (metric.bootstrap(n_resamples=200, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.replicates, b.replicates)
    assert not np.array_equal(a.replicates, c.replicates)
    for key in ("map", "map_50", "map_75"):
        assert a.low[key] <= a.estimate[key] <= a.high[key], key


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(2, 10))
def test_a_metric_compared_with_itself_differs_by_zero(seed: int, n: int) -> None:
    metric = _metric(make_dataset(seed % 30, n_images=n, crowded_image=False))
    diff = metric.bootstrap(n_resamples=30, seed=seed, other=metric)
    for values in (diff.estimate, diff.low, diff.high):
        for key in ("map", "map_50", "map_75"):
            assert values[key] == 0.0 or np.isnan(values[key])
    assert np.all((diff.replicates == 0) | np.isnan(diff.replicates))


def test_paired_difference_is_the_difference_of_the_two_metrics() -> None:
    images = make_dataset(6, n_images=16, crowded_image=False)
    worse = make_dataset(6, n_images=16, crowded_image=False)
    for im in worse:  # the same images, every detection's score scrambled
        im.dt_scores = np.random.default_rng(0).permutation(im.dt_scores)[::-1].copy()
    good, bad = _metric(images), _metric(worse)
    diff = good.bootstrap(n_resamples=200, seed=0, other=bad)
    expected = good.compute()["map"].item() - bad.compute()["map"].item()
    assert diff.estimate["map"] == pytest.approx(expected, abs=1e-6)
    assert diff.low["map"] <= diff.high["map"]


def test_bad_arguments() -> None:
    metric = _metric(make_dataset(1, n_images=4))
    with pytest.raises(InputError, match="`n_resamples` must be a positive int"):
        metric.bootstrap(n_resamples=0)
    with pytest.raises(InputError, match=r"`level` must lie in \(0, 1\)"):
        metric.bootstrap(level=1.5)
    with pytest.raises(InputError, match="`other` must have seen the same images"):
        metric.bootstrap(n_resamples=5, other=_metric(make_dataset(1, n_images=5)))


def test_images_without_detections_or_gt_are_drawn_too() -> None:
    """The resamples draw from every evaluated image: trailing empty images change the draws."""
    import torch

    metric = _metric(make_dataset(3, n_images=8, crowded_image=False))
    padded = _metric(make_dataset(3, n_images=8, crowded_image=False))
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    padded.update([{**empty, "scores": torch.zeros(0)}] * 3, [empty] * 3)
    state, _ = padded._bootstrap_inputs("bbox")
    assert state.n_images == 11
    ci = padded.bootstrap(n_resamples=50, seed=2)
    weights = bootstrap_weights(11, 50, 2)
    _, ap = weighted_class_ap(state, weights)
    np.testing.assert_array_equal(ci.replicates, summary_of_replicates(ap, state.iou_thresholds)[0])
    assert ci.estimate["map"] == metric.bootstrap(n_resamples=5).estimate["map"]
