"""AnomalyDetectionMetrics and ScoreStatisticsMetric: exact references, properties, bad input."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.training.metrics import AnomalyDetectionMetrics, ScoreStatisticsMetric
from tests.functional.test_anomaly_histogram import exact_ap, exact_auroc, exact_best_f1, f1_at
from tests.helpers.invariance import assert_split_invariant


def maps(seed: int = 0, b: int = 4, h: int = 32, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, h, w, generator=g) < 0.05
    scores = torch.randn(b, h, w, generator=g) * 2.0 + 3.0 * target - 1.0
    return scores, target


def plain_counts(s: np.ndarray, y: np.ndarray, thr: float) -> tuple[int, int, int, int]:
    p = s >= thr
    return (int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum()), int((~p & ~y).sum()))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]) or (torch.isnan(a[k]) and torch.isnan(b[k])), k


# ---------------------------------------------------------------- AnomalyDetectionMetrics


def test_values_against_exact_references() -> None:
    scores, target = maps()
    metric = AnomalyDetectionMetrics(threshold=0.7, return_error_bounds=True)
    metric.update(scores[:2], target[:2])
    metric.update(scores[2:].unsqueeze(1), target[2:])  # (B, 1, H, W) scores with (B, H, W) target
    out = metric.compute()
    s, y = scores.numpy().ravel(), target.numpy().ravel()
    tp, fp, fn, tn = plain_counts(s, y, 0.7)
    assert float(out["precision"]) == pytest.approx(tp / (tp + fp))
    assert float(out["recall"]) == pytest.approx(tp / (tp + fn))
    assert float(out["f1"]) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert float(out["iou"]) == pytest.approx(tp / (tp + fp + fn))
    assert float(out["specificity"]) == pytest.approx(tn / (tn + fp))
    assert float(out["accuracy"]) == pytest.approx((tp + tn) / len(s))
    yi = y.astype(np.int64)
    auroc, ap = exact_auroc(s, yi), exact_ap(s, yi)
    assert abs(float(out["auroc"]) - auroc) <= float(out["auroc_error_bound"]) + 1e-12
    assert abs(float(out["average_precision"]) - ap) <= float(out["average_precision_error_bound"]) + 1e-12
    assert abs(float(out["auroc"]) - auroc) < 1e-3
    assert abs(float(out["average_precision"]) - ap) < 2e-3
    assert float(out["best_f1"]) == pytest.approx(
        f1_at(s, y.astype(np.int64), float(out["best_f1_threshold"]))
    )


def test_no_sigmoid_is_applied() -> None:
    # sigmoid(0.3) = 0.57 would pass a 0.5 threshold; raw 0.3 must not
    metric = AnomalyDetectionMetrics(threshold=0.5)
    metric.update(torch.tensor([0.3, 0.6, -4.0, 100.0]), torch.tensor([1, 1, 0, 0]))
    out = metric.compute()
    assert metric.counts.tolist() == [1, 1, 1, 1]
    assert float(out["recall"]) == 0.5
    # raw unbounded scores far outside [0, 1] keep their order
    assert float(out["auroc"]) == 0.5


def test_fixed_range_binning_matches_counts() -> None:
    scores, target = maps(3)
    metric = AnomalyDetectionMetrics(
        threshold=0.0, score_range=(-8.0, 8.0), num_bins=4096, return_error_bounds=True
    )
    metric.update(scores, target)
    out = metric.compute()
    s, y = scores.numpy().ravel(), target.numpy().ravel().astype(np.int64)
    assert abs(float(out["auroc"]) - exact_auroc(s, y)) <= float(out["auroc_error_bound"]) + 1e-12
    assert float(out["best_f1"]) == pytest.approx(f1_at(s, y, float(out["best_f1_threshold"])))


def test_ignore_mask_equals_dropping() -> None:
    scores, target = maps(1)
    ignore = torch.rand(scores.shape, generator=torch.Generator().manual_seed(5)) < 0.3
    a = AnomalyDetectionMetrics()
    a.update(scores, target, ignore_mask=ignore)
    b = AnomalyDetectionMetrics()
    b.update(scores[~ignore], target[~ignore])
    assert_same(a.compute(), b.compute())


@given(st.lists(st.integers(0, 7), max_size=5), st.integers(0, 1000))
def test_batch_split_and_permutation_invariance(cuts: list[int], seed: int) -> None:
    scores, target = maps(seed % 7, b=8, h=8, w=8)
    whole = AnomalyDetectionMetrics(threshold=-0.2)
    whole.update(scores, target)
    split = AnomalyDetectionMetrics(threshold=-0.2)
    bounds = sorted({0, 8, *cuts})
    for lo, hi in itertools.pairwise(bounds):
        split.update(scores[lo:hi], target[lo:hi])
    perm = torch.randperm(scores.numel(), generator=torch.Generator().manual_seed(seed))
    shuffled = AnomalyDetectionMetrics(threshold=-0.2)
    shuffled.update(scores.reshape(-1)[perm], target.reshape(-1)[perm])
    ref = whole.compute()
    assert_same(ref, split.compute())
    assert_same(ref, shuffled.compute())
    for k, v in ref.items():
        if k != "best_f1_threshold" and not torch.isnan(v):
            assert 0.0 <= float(v) <= 1.0, k


def test_forward_and_reset() -> None:
    scores, target = maps(2)
    metric = AnomalyDetectionMetrics()
    batch = metric(scores[:2], target[:2])
    metric(scores[2:], target[2:])
    single = AnomalyDetectionMetrics()
    single.update(scores[:2], target[:2])
    assert_same(batch, single.compute())
    full = AnomalyDetectionMetrics()
    full.update(scores, target)
    assert_same(metric.compute(), full.compute())
    metric.reset()
    assert int(metric.histogram.sum()) == 0 and int(metric.counts.sum()) == 0


def test_no_positives_or_no_negatives_give_nan_with_warning() -> None:
    metric = AnomalyDetectionMetrics(threshold=0.0)
    metric.update(torch.tensor([-1.0, 2.0, 0.5]), torch.zeros(3, dtype=torch.long))
    with pytest.warns(UserWarning, match="no anomalous"):
        out = metric.compute()
    for k in ("recall", "auroc", "average_precision", "best_f1", "best_f1_threshold"):
        assert math.isnan(float(out[k])), k
    for k in ("precision", "f1", "iou"):  # two flags, both false alarms
        assert float(out[k]) == 0.0, k
    metric = AnomalyDetectionMetrics(threshold=10.0)
    metric.update(torch.tensor([-1.0, 2.0]), torch.zeros(2, dtype=torch.long))
    with pytest.warns(UserWarning, match="no anomalous"):
        out = metric.compute()
    assert all(math.isnan(float(out[k])) for k in ("precision", "f1", "iou"))
    assert float(out["specificity"]) == 1.0

    metric = AnomalyDetectionMetrics(threshold=0.0)
    metric.update(torch.tensor([-1.0, 2.0]), torch.ones(2, dtype=torch.long))
    with pytest.warns(UserWarning, match="no normal"):
        out = metric.compute()
    assert math.isnan(float(out["auroc"])) and math.isnan(float(out["specificity"]))
    assert float(out["average_precision"]) == 1.0
    assert float(out["recall"]) == 0.5


def test_state_is_bounded() -> None:
    metric = AnomalyDetectionMetrics()
    nbytes = sum(getattr(metric, k).numel() * getattr(metric, k).element_size() for k in metric._defaults)
    assert nbytes <= 1_000_000
    with pytest.raises(ValueError, match="bytes"):
        AnomalyDetectionMetrics(mantissa_bits=7)
    with pytest.raises(ValueError, match="bytes"):
        AnomalyDetectionMetrics(score_range=(0, 1), num_bins=100_000)


def test_bad_inputs_are_named() -> None:
    metric = AnomalyDetectionMetrics()
    with pytest.raises(
        ValueError, match=r"`target` must have the same shape as `scores` \(\(2, 3\).*got \(2, 4\)"
    ):
        metric.update(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="`scores` contains NaN"):
        metric.update(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"`target` must be binary.*got values such as \[2\]"):
        metric.update(torch.tensor([0.1, 0.2]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"got values such as \[0.5"):
        metric.update(torch.tensor([0.1, 0.2]), torch.tensor([0.5, 1.0]))
    with pytest.raises(TypeError, match=r"`scores` must have a real.*got torch.bool"):
        metric.update(torch.tensor([True]), torch.tensor([1]))
    with pytest.raises(TypeError, match=r"`scores` must be a torch\.Tensor, got list"):
        metric.update([0.1], torch.tensor([1]))
    with pytest.raises(TypeError, match="`ignore_mask` must be a bool tensor"):
        metric.update(torch.tensor([0.1]), torch.tensor([1]), ignore_mask=torch.tensor([1]))
    with pytest.raises(ValueError, match="`threshold`"):
        AnomalyDetectionMetrics(threshold=float("nan"))
    # NaN under the ignore mask is fine
    metric.update(
        torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]), ignore_mask=torch.tensor([False, True])
    )
    assert int(metric.histogram.sum()) == 1


# ---------------------------------------------------------------- ScoreStatisticsMetric


def test_statistics_against_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    chunks = [torch.randn(1000, generator=g) * 3 + 1e4, torch.randn(3, 7, generator=g) * 3 + 1e4]
    metric = ScoreStatisticsMetric(quantiles=(0.05, 0.5, 0.95, 0.999))
    for c in chunks:
        metric.update(c)
    out = metric.compute()
    x = np.concatenate([c.numpy().ravel().astype(np.float64) for c in chunks])
    assert list(out) == ["mean", "std", "min", "max", "q5", "q50", "q95", "q99.9"]
    assert float(out["mean"]) == pytest.approx(x.mean(), rel=1e-14)
    assert float(out["std"]) == pytest.approx(x.std(ddof=1), rel=1e-10)
    assert float(out["min"]) == x.min() and float(out["max"]) == x.max()
    xs = np.sort(x)
    for key, q in (("q5", 0.05), ("q50", 0.5), ("q95", 0.95), ("q99.9", 0.999)):
        h = (len(xs) - 1) * q
        nb = max(abs(xs[int(np.floor(h))]), abs(xs[min(int(np.floor(h)) + 1, len(xs) - 1)]))
        assert abs(float(out[key]) - np.quantile(x, q)) <= 2.0**-8 * nb


@given(st.lists(st.integers(0, 50), max_size=4), st.integers(0, 100))
def test_statistics_split_invariance(cuts: list[int], seed: int) -> None:
    x = torch.randn(50, generator=torch.Generator().manual_seed(seed)) * 10
    assert_split_invariant(ScoreStatisticsMetric, x, cuts)


def test_statistics_mask_empty_and_errors() -> None:
    metric = ScoreStatisticsMetric()
    with pytest.warns(UserWarning, match="before the ``update``"):
        out = metric.compute()
    assert all(math.isnan(float(v)) for v in out.values())
    x = torch.tensor([1.0, 2.0, float("nan"), 100.0])
    metric.update(x, ignore_mask=torch.tensor([False, False, True, True]))
    out = metric.compute()
    assert float(out["mean"]) == 1.5 and float(out["max"]) == 2.0
    assert float(out["std"]) == pytest.approx(np.std([1.0, 2.0], ddof=1))
    with pytest.raises(ValueError, match="`scores` contains NaN"):
        metric.update(x)
    with pytest.raises(ValueError, match="`quantiles`"):
        ScoreStatisticsMetric(quantiles=(1.5,))


def test_statistics_beyond_2_pow_24() -> None:
    n = 2**24 + 3
    x = torch.arange(n, dtype=torch.float32) / 1024
    metric = ScoreStatisticsMetric()
    metric.update(x[: n // 2])
    metric.update(x[n // 2 :])
    out = metric.compute()
    xd = torch.arange(n, dtype=torch.float64) / 1024
    assert float(out["mean"]) == pytest.approx(float(xd.mean()), rel=1e-14)
    assert float(out["std"]) == pytest.approx(float(xd.std()), rel=1e-12)
    for key, q in (("q50", 0.5), ("q95", 0.95)):
        exact = (n - 1) * q / 1024
        assert abs(float(out[key]) - exact) <= 2.0**-8 * exact


def test_compute_without_warnings_on_normal_data() -> None:
    scores, target = maps()
    metric = AnomalyDetectionMetrics()
    metric.update(scores, target)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.compute()


def test_fixed_range_counts_infinite_scores() -> None:
    # +inf is the most anomalous score: it must land in the overflow bin, not be dropped
    s = np.array([np.inf, 0.2, -np.inf, 0.7, 3.0], dtype=np.float32)
    y = np.array([1, 0, 0, 1, 0])
    metric = AnomalyDetectionMetrics(score_range=(0, 1), num_bins=4, return_error_bounds=True)
    metric.update(torch.from_numpy(s), torch.from_numpy(y))
    out = metric.compute()
    assert int(metric.histogram.sum()) == 5
    assert abs(float(out["auroc"]) - exact_auroc(s, y)) <= float(out["auroc_error_bound"]) + 1e-12
    assert float(out["best_f1"]) == pytest.approx(f1_at(s, y, float(out["best_f1_threshold"])))
    single = AnomalyDetectionMetrics(score_range=(0, 1), num_bins=4)
    single.update(torch.tensor([np.inf, 0.2]), torch.tensor([1, 0]))
    out = single.compute()
    assert [float(out[k]) for k in ("auroc", "average_precision", "best_f1")] == [1.0, 1.0, 1.0]
    # NaN is allowed under the ignore mask with fixed-range bins too
    single.update(torch.tensor([0.1, np.nan]), torch.tensor([0, 1]), ignore_mask=torch.tensor([False, True]))
    assert int(single.histogram.sum()) == 3


def test_score_range_is_validated_at_construction() -> None:
    for score_range in [(0, 1e-40), (1e7, 1e7 + 1), (0, float("inf")), (1, 0), (-3e38, 3e38)]:
        with pytest.raises(ValueError, match="`score_range`"):
            AnomalyDetectionMetrics(score_range=score_range, num_bins=100)


def test_threshold_is_exact_for_integer_and_half_scores() -> None:
    metric = AnomalyDetectionMetrics(threshold=16777217)
    metric.update(torch.tensor([16777216, 16777217, 0]), torch.tensor([0, 1, 0]))
    assert metric.counts.tolist() == [1, 0, 0, 2]
    metric = AnomalyDetectionMetrics(threshold=2**53 + 1)  # an int threshold is not rounded to float64
    metric.update(torch.tensor([2**53, 2**53 + 1]), torch.tensor([0, 1]))
    assert metric.counts.tolist() == [1, 0, 0, 1]
    metric = AnomalyDetectionMetrics(threshold=0.7)
    metric.update(torch.tensor([0.7, 0.70000005]), torch.tensor([0, 1]))  # float32(0.7) < 0.7
    metric.update(torch.tensor([0.69921875], dtype=torch.bfloat16), torch.tensor([0]))
    metric.update(torch.tensor([0.7], dtype=torch.float64), torch.tensor([1]))
    assert metric.counts.tolist() == [2, 0, 0, 2]


def test_statistics_of_integers_are_exact() -> None:
    x = np.array([16777217, 16777217, 0], dtype=np.int64)  # not exact in float32
    metric = ScoreStatisticsMetric()
    metric.update(torch.from_numpy(x))
    out = metric.compute()
    assert float(out["mean"]) == x.mean() == 2 * 16777217 / 3
    assert float(out["max"]) == 16777217 and float(out["min"]) == 0
    assert float(out["std"]) == pytest.approx(x.std(ddof=1), rel=1e-15)


@pytest.mark.parametrize(
    "values", [[1.0, np.inf, 2.0], [-np.inf, 0.0, np.inf], [np.inf, np.inf], [1e200] * 3]
)
def test_statistics_with_infinite_or_huge_scores_as_numpy(values: list[float]) -> None:
    x = np.array(values)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = {"mean": x.mean(), "std": x.std(ddof=1), "min": x.min(), "max": x.max()}
    for cut in range(len(x) + 1):  # every split in two batches (one may be empty)
        metric = ScoreStatisticsMetric()
        metric.update(torch.from_numpy(x[:cut]))
        metric.update(torch.from_numpy(x[cut:]))
        out = metric.compute()
        for k, v in expected.items():
            assert float(out[k]) == v or (np.isnan(v) and math.isnan(float(out[k]))), (cut, k)


def test_best_f1_threshold_is_exact_for_float64_scores() -> None:
    s = np.array([1 - 1e-12, 0.5, 0.999, 1 - 2.0**-26, 2.0])  # float32 rounds the first and fourth up to 1.0
    y = np.array([1, 0, 0, 1, 0])
    for kwargs in ({}, {"score_range": (0.0, 4.0), "num_bins": 8}):
        metric = AnomalyDetectionMetrics(return_error_bounds=True, **kwargs)
        metric.update(torch.from_numpy(s), torch.from_numpy(y))
        out = metric.compute()
        assert float(out["best_f1"]) == pytest.approx(f1_at(s, y, float(out["best_f1_threshold"])))
        best = exact_best_f1(s, y)
        assert 0.0 <= best - float(out["best_f1"]) <= float(out["best_f1_error_bound"]) + 1e-12
        # the threshold, used as `threshold`, gives best_f1 from the exact counts
        again = AnomalyDetectionMetrics(threshold=float(out["best_f1_threshold"]), **kwargs)
        again.update(torch.from_numpy(s), torch.from_numpy(y))
        assert float(again.compute()["f1"]) == pytest.approx(float(out["best_f1"]))


def test_statistics_state_is_bounded() -> None:
    metric = ScoreStatisticsMetric()
    nbytes = sum(getattr(metric, k).numel() * getattr(metric, k).element_size() for k in metric._defaults)
    assert nbytes <= 1_000_000
    for m in (8, 10):
        with pytest.raises(ValueError, match=r"bytes \(> 1000000\).*mantissa_bits"):
            ScoreStatisticsMetric(mantissa_bits=m)
