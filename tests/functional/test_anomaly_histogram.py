"""Histogram AUROC / AP / best F1 against exact sort-based numpy references, and the binning itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from objdet.functional.anomaly import binary_counts, counts_to_metrics
from objdet.functional.histogram import (
    binned_auroc,
    binned_average_precision,
    binned_best_f1,
    binned_error_bounds,
    float_bin_index,
    float_bin_lower_edges,
    float_num_bins,
    linear_bin_index,
    linear_bin_lower_edges,
)

# ---------------------------------------------------------------- exact references (plain numpy)


def exact_auroc(s: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney rank formula with average ranks for ties."""
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    p, n = int(y.sum()), int((1 - y).sum())
    return float((ranks[y == 1].sum() - p * (p + 1) / 2) / (p * n))


def exact_ap(s: np.ndarray, y: np.ndarray) -> float:
    """sum_k (R_k - R_{k-1}) P_k over distinct thresholds (scikit-learn / torchmetrics definition)."""
    thresholds = np.unique(s)[::-1]
    p = y.sum()
    ap, prev_r = 0.0, 0.0
    for t in thresholds:
        pred = s >= t
        tp = (pred & (y == 1)).sum()
        fp = (pred & (y == 0)).sum()
        r = tp / p
        ap += (r - prev_r) * (tp / (tp + fp))
        prev_r = r
    return float(ap)


def f1_at(s: np.ndarray, y: np.ndarray, t: float) -> float:
    pred = s >= t
    tp = (pred & (y == 1)).sum()
    fp = (pred & (y == 0)).sum()
    fn = (~pred & (y == 1)).sum()
    return float(2 * tp / (2 * tp + fp + fn))


def exact_best_f1(s: np.ndarray, y: np.ndarray) -> float:
    return max(f1_at(s, y, t) for t in np.unique(s))


def hist(scores: torch.Tensor, target: torch.Tensor, m: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    idx = float_bin_index(scores, m)
    nb = float_num_bins(m)
    pos = torch.bincount(idx[target == 1], minlength=nb)
    neg = torch.bincount(idx[target == 0], minlength=nb)
    return pos, neg


# ---------------------------------------------------------------- binning


def float32_ulp(v: float) -> float:
    return float(np.spacing(np.float32(abs(v))))


@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=50), st.integers(0, 8))
def test_float_bins_contain_their_values(values: list[float], m: int) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    b = float_bin_index(x, m)
    edges = float_bin_lower_edges(m)
    assert int(b.min()) >= 0 and int(b.max()) < float_num_bins(m)
    upper = torch.cat([edges[1:], torch.tensor([torch.inf], dtype=torch.float64)])
    xd = x.double()
    assert bool((edges[b] <= xd).all())
    inside = (xd < upper[b]) | (torch.isinf(xd) & (xd > 0))
    assert bool(inside.all())
    # order preserving
    order = torch.argsort(x)
    assert bool((b[order].diff() >= 0).all())


def test_float_bin_relative_width() -> None:
    m = 6
    edges = float_bin_lower_edges(m)
    finite = edges[torch.isfinite(edges)]
    lo, hi = finite[:-1], finite[1:]
    normal = (lo.abs() >= 2.0**-126) & (hi.abs() >= 2.0**-126) & (torch.sign(lo) == torch.sign(hi))
    rel = (hi - lo)[normal] / torch.minimum(lo.abs(), hi.abs())[normal]
    assert float(rel.max()) <= 2.0**-m * (1 + 1e-6)
    assert bool((edges[1:] >= edges[:-1]).all())


@given(
    st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=60),
    st.floats(-100, 100),
    st.floats(1e-3, 300),
    st.integers(1, 5000),
)
def test_linear_bins_agree_with_their_edges(values: list[float], low: float, width: float, nb: int) -> None:
    assume(width / nb >= 4 * float32_ulp(max(abs(low), abs(low + width))))  # narrower ranges are rejected
    x = torch.tensor(values, dtype=torch.float32)
    idx = linear_bin_index(x, low, low + width, nb)
    edges = linear_bin_lower_edges(low, low + width, nb)
    reference = torch.searchsorted(edges[1:], x.double(), right=True)  # independent: binary search
    assert idx.tolist() == reference.tolist()


def test_linear_bins() -> None:
    x = torch.tensor([-5.0, 0.0, 0.2499, 0.25, 0.99, 1.0, 7.0])
    assert linear_bin_index(x, 0.0, 1.0, 4).tolist() == [0, 1, 1, 2, 4, 5, 5]
    edges = linear_bin_lower_edges(0.0, 1.0, 4)
    assert edges.tolist() == [-np.inf, 0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="score_range"):
        linear_bin_lower_edges(1.0, 0.0, 4)
    with pytest.raises(ValueError, match="mantissa_bits"):
        float_bin_index(x, 12)


# ---------------------------------------------------------------- estimators vs exact, within the bounds

mixed_scores = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 1e-30, 3.0]),
)


@given(
    st.lists(st.tuples(mixed_scores, st.booleans()), min_size=2, max_size=80),
    st.integers(0, 6),
)
def test_estimators_within_documented_bounds(data: list[tuple[float, bool]], m: int) -> None:
    s = np.array([d[0] for d in data], dtype=np.float32)
    y = np.array([d[1] for d in data], dtype=np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        y[0] = 1 - y[0]
    pos, neg = hist(torch.from_numpy(s), torch.from_numpy(y), m)
    bounds = binned_error_bounds(pos, neg)
    tol = 1e-12
    assert abs(float(binned_auroc(pos, neg)) - exact_auroc(s, y)) <= float(bounds["auroc"]) + tol
    ap = float(binned_average_precision(pos, neg))
    assert abs(ap - exact_ap(s, y)) <= float(bounds["average_precision"]) + tol
    f1, thr = binned_best_f1(pos, neg, float_bin_lower_edges(m))
    # best_f1 is exactly the F1 of its threshold, and within the gap bound of the true best
    assert float(f1) == pytest.approx(f1_at(s, y, float(thr)), abs=1e-12)
    best = exact_best_f1(s, y)
    assert float(f1) <= best + tol
    assert best - float(f1) <= float(bounds["best_f1"]) + tol


def test_exact_when_every_value_has_its_own_bin() -> None:
    # well separated distinct values: every bin holds one value, so the histogram is exact
    s = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0], dtype=np.float32)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 1])
    pos, neg = hist(torch.from_numpy(s), torch.from_numpy(y))
    assert float(binned_auroc(pos, neg)) == pytest.approx(exact_auroc(s, y), abs=1e-15)
    assert float(binned_best_f1(pos, neg, float_bin_lower_edges(6))[0]) == pytest.approx(exact_best_f1(s, y))
    assert all(float(v) == 0.0 for k, v in binned_error_bounds(pos, neg).items() if k != "average_precision")


def test_realistic_maps_error_small() -> None:
    g = torch.Generator().manual_seed(1)
    y = (torch.rand(200_000, generator=g) < 0.03).long()
    s = torch.randn(200_000, generator=g) * 1.5 + 2.0 * y
    pos, neg = hist(s, y)
    sn, yn = s.numpy(), y.numpy()
    auroc_err = abs(float(binned_auroc(pos, neg)) - exact_auroc(sn, yn))
    bounds = binned_error_bounds(pos, neg)
    assert auroc_err <= float(bounds["auroc"])
    assert float(bounds["auroc"]) < 2e-3
    assert auroc_err < 2e-4


def test_degenerate_classes_are_nan() -> None:
    pos = torch.zeros(8, dtype=torch.int64)
    neg = torch.tensor([0, 3, 0, 1, 0, 0, 0, 0])
    assert torch.isnan(binned_auroc(pos, neg))
    assert torch.isnan(binned_average_precision(pos, neg))
    assert all(torch.isnan(v) for v in binned_best_f1(pos, neg, torch.arange(8.0)))
    # only positives: AUROC undefined, AP = 1
    assert torch.isnan(binned_auroc(neg, pos))
    assert float(binned_average_precision(neg, pos)) == 1.0


# ---------------------------------------------------------------- counts


@given(
    st.lists(st.tuples(st.floats(-10, 10, width=32), st.booleans(), st.booleans()), min_size=0, max_size=40),
    st.floats(-5, 5),
)
def test_counts_and_ratios_match_plain_formulas(data: list[tuple[float, bool, bool]], thr: float) -> None:
    s = torch.tensor([d[0] for d in data], dtype=torch.float32)
    y = torch.tensor([d[1] for d in data], dtype=torch.bool)
    ign = torch.tensor([d[2] for d in data], dtype=torch.bool)
    counts = binary_counts(s, y, thr, ign)
    tp = fp = fn = tn = 0
    for v, t, skip in data:
        if skip:
            continue
        p = float(np.float32(v)) >= thr  # exact: a Python float comparison, threshold not rounded
        tp += p and t
        fp += p and not t
        fn += (not p) and t
        tn += (not p) and not t
    assert counts.tolist() == [tp, fp, fn, tn]
    m = counts_to_metrics(counts)

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    expected = {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "specificity": ratio(tn, tn + fp),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }
    for k, v in expected.items():
        assert float(m[k]) == pytest.approx(v, nan_ok=True), k


def test_linear_bins_put_infinities_and_nan_in_outer_bins() -> None:
    # +inf belongs to the overflow bin [high, inf], -inf to the underflow bin; NaN (only allowed
    # under an ignore mask) must not crash the indexing
    x = torch.tensor([np.inf, 5.0, -np.inf, 0.5, np.nan])
    idx = linear_bin_index(x, 0.0, 1.0, 4)
    assert idx[:4].tolist() == [5, 5, 0, 3]
    assert 0 <= int(idx[4]) <= 5


@given(
    st.sampled_from([0.0, 1.0, -1.0, 1e-30, -1e-30, 1e-38, 100.0, 1e7, -1e7, 3e37, -1e20]),
    st.floats(4.0, 40.0),
    st.integers(1, 3000),
    st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    st.lists(st.floats(0, 1), min_size=1, max_size=40),
)
def test_narrow_linear_bins_agree_with_their_edges(
    low: float, ulps: float, nb: int, nudges: list[int], fracs: list[float]
) -> None:
    # bins only a few float32 ulps wide: the arithmetic bin estimate must still be corrected
    # to the bin given by the float32 edges (independent reference: binary search)
    width = ulps * nb * float32_ulp(max(abs(low), 1e-30))
    high = low + width
    try:
        edges = linear_bin_lower_edges(low, high, nb)
    except ValueError as err:  # only ranges that are narrower than the documented rule
        assert "score_range" in str(err)
        assert width / nb < 4 * float32_ulp(max(abs(low), abs(high))) or nb / width > 3.4e38
        return
    inner = edges[1:].numpy().astype(np.float32)
    picks = [inner[int(f * (len(inner) - 1))] for f in fracs]
    nudged = [
        np.nextafter(p, np.float32(np.inf * k)) if k else p for p, k in zip(picks, nudges, strict=False)
    ]
    x = torch.from_numpy(np.array(nudged, dtype=np.float32))
    reference = torch.searchsorted(edges[1:], x.double(), right=True)
    assert linear_bin_index(x, low, high, nb).tolist() == reference.tolist()


def test_linear_range_is_validated() -> None:
    for low, high, nb in [
        (0.0, 1e-40, 10),  # num_bins / (high - low) overflows float32
        (1e7, 1e7 + 1, 100),  # bins narrower than float32's resolution
        (100.0, 100.001, 5000),
        (-3e38, 3e38, 4),  # high - low overflows float32
        (0.0, float("inf"), 4),
        (1.0, 1.0, 4),
    ]:
        with pytest.raises(ValueError, match="score_range"):
            linear_bin_lower_edges(low, high, nb)


def exact_predictions(values: list[float] | list[int], threshold: float | int) -> list[bool]:
    # Python compares int / float pairs exactly (no rounding of either side)
    return [v >= threshold for v in values]


@pytest.mark.parametrize(
    ("values", "dtype", "threshold"),
    [
        ([0.0999755859375, 0.1], torch.float16, 0.1),  # fp16(0.1) < 0.1
        ([0.69921875, 0.703125], torch.bfloat16, 0.7),
        ([0.7, 0.70000005], torch.float32, 0.7),  # float32(0.7) = 0.699999988 < 0.7
        ([0.7, np.nextafter(0.7, 0)], torch.float64, 0.7),
        ([16777216, 16777217, 16777218], torch.int64, 16777217),
        ([16777216, 16777217], torch.int64, 16777216.5),
        ([3, 255], torch.uint8, 300.0),  # beyond the dtype's range
        ([3, 255], torch.uint8, -1e30),
        ([-(2**62), 2**62], torch.int64, float(2**62)),
        ([65504.0, np.inf], torch.float16, 65510.0),  # between fp16 max and inf
        ([-np.inf, -65504.0], torch.float16, -1e10),
        ([1.0, np.inf], torch.float32, np.inf),
        ([-np.inf, 1.0], torch.int32, -np.inf),
        ([5, 6], torch.int32, np.inf),
        ([2**53, 2**53 + 1], torch.int64, 2**53 + 1),  # int threshold not exact in float64
    ],
)
def test_threshold_comparison_is_exact_for_every_dtype(
    values: list[float], dtype: torch.dtype, threshold: float
) -> None:
    if not dtype.is_floating_point:
        values = [v for v in values if not (isinstance(v, float) and np.isinf(v))] or [5]
    x = torch.tensor(values, dtype=dtype)
    expected = exact_predictions(x.tolist(), threshold)
    y = torch.ones(len(values), dtype=torch.bool)
    counts = binary_counts(x, y, threshold)
    assert counts.tolist() == [sum(expected), 0, len(values) - sum(expected), 0]


@given(
    st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int16]),
    st.lists(st.floats(-1e5, 1e5), min_size=1, max_size=20),
    st.integers(0, 19),
    st.sampled_from([-2, -1, 0, 1, 2]),
)
def test_threshold_comparison_exact_near_values(
    dtype: torch.dtype, values: list[float], pick: int, nudge: int
) -> None:
    # thresholds at, just below and just above a value of the tensor (in float64 steps)
    x = torch.tensor(values, dtype=torch.float64).to(dtype)
    threshold = float(x[pick % len(values)].double())
    for _ in range(abs(nudge)):
        threshold = float(np.nextafter(threshold, np.sign(nudge) * np.inf))
    expected = exact_predictions(x.tolist(), threshold)
    counts = binary_counts(x, torch.ones(len(values), dtype=torch.bool), threshold)
    assert int(counts[0]) == sum(expected)


near_edges = st.tuples(
    st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, -1.0, -0.5, 3.0]), st.floats(-4, 4, width=32)),
    st.integers(-3, 3),
).map(lambda t: t[0] + t[1] * 2.0**-30 * max(abs(t[0]), 1e-3))  # float64 values around float32 edges


@given(
    st.lists(st.tuples(near_edges, st.booleans()), min_size=2, max_size=60),
    st.integers(0, 6),
    st.booleans(),
)
def test_float64_scores_binned_by_their_exact_value(
    data: list[tuple[float, bool]], m: int, linear: bool
) -> None:
    # float64 scores just below a float32 bin edge must not be rounded up into the bin above:
    # best_f1 is then exactly the F1 of `score >= best_f1_threshold` on the float64 scores
    s = np.array([d[0] for d in data], dtype=np.float64)
    y = np.array([d[1] for d in data], dtype=np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        y[0] = 1 - y[0]
    t = torch.from_numpy(s)
    if linear:
        idx, edges, nb = linear_bin_index(t, -4.0, 4.0, 16), linear_bin_lower_edges(-4.0, 4.0, 16), 18
    else:
        idx, edges, nb = float_bin_index(t, m), float_bin_lower_edges(m), float_num_bins(m)
    # every value lies in [edge[b], edge[b + 1]) by its float64 value (independent: binary search)
    assert idx.tolist() == torch.searchsorted(edges[1:], t, right=True).tolist()
    pos = torch.bincount(idx[torch.from_numpy(y) == 1], minlength=nb)
    neg = torch.bincount(idx[torch.from_numpy(y) == 0], minlength=nb)
    f1, thr = binned_best_f1(pos, neg, edges)
    assert float(f1) == pytest.approx(f1_at(s, y, float(thr)), abs=1e-12)
    bounds = binned_error_bounds(pos, neg)
    assert abs(float(binned_auroc(pos, neg)) - exact_auroc(s, y)) <= float(bounds["auroc"]) + 1e-12
    assert (
        abs(float(binned_average_precision(pos, neg)) - exact_ap(s, y))
        <= float(bounds["average_precision"]) + 1e-12
    )


def test_integer_scores_binned_by_their_exact_value() -> None:
    x = torch.tensor([2**25 - 1, 2**25, 2**25 + 1, -(2**25) - 1, 2**53])  # 2**25 - 1 rounds up in float32
    for idx, edges in (
        (float_bin_index(x, 6), float_bin_lower_edges(6)),
        (linear_bin_index(x, 0.0, 2.0**25, 8), linear_bin_lower_edges(0.0, 2.0**25, 8)),
    ):
        assert idx.tolist() == torch.searchsorted(edges[1:], x.double(), right=True).tolist()
