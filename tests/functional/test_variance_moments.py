"""Chan merging of (n, mean, M2) against numpy on the concatenated data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.functional.moments import batch_moments, merge_packed, pack, unpack


@given(
    st.integers(1, 60),
    st.integers(1, 5),
    st.lists(st.integers(0, 60), max_size=4),
    st.floats(-1e6, 1e6),
    st.integers(0, 2**31 - 1),
)
def test_chan_merge_equals_full_data(n: int, c: int, cuts: list[int], offset: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c)) * rng.uniform(0.1, 10, size=c) + offset
    bounds = sorted({0, n, *[min(k, n) for k in cuts]})
    parts = [pack(*batch_moments(torch.from_numpy(x[a:b]))) for a, b in itertools.pairwise(bounds)]
    n_, mean, m2 = unpack(merge_packed(torch.stack(parts), c, True), c, True)
    assert float(n_) == n
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-12, atol=1e-9)
    xc = x - x.mean(0)
    scale = max(1.0, float(np.abs(xc).max()) ** 2 * n)
    np.testing.assert_allclose(m2.numpy(), xc.T @ xc, rtol=1e-9, atol=1e-12 * scale)


def test_variance_only_and_cancellation() -> None:
    # a large offset breaks sum(x^2) - n mean^2 in float64; Chan keeps the variance
    x = 1e9 + np.arange(10, dtype=np.float64)
    parts = torch.stack(
        [pack(*batch_moments(torch.from_numpy(x[i : i + 3, None]), covariance=False)) for i in (0, 3, 6, 9)]
    )
    _, _, m2 = unpack(merge_packed(parts, 1, False), 1, False)
    assert float(m2[0]) == np.sum((x - x.mean()) ** 2) == 82.5


def splits(n: int) -> list[list[int]]:
    """Every way to cut range(n) into contiguous parts, also with empty parts at both ends."""
    out = []
    for mask in range(2 ** max(n - 1, 0)):
        cuts = [i + 1 for i in range(n - 1) if mask >> i & 1]
        out.append([0, 0, *cuts, n, n])
    return out


@pytest.mark.parametrize(
    "values",
    [
        [1.0, np.inf, 2.0],
        [-np.inf, 0.0, np.inf],
        [np.inf, np.inf, 3.0],
        [1e200, 1e200, 1e200],  # mean above 1.3e154: (mean - 0)**2 overflows
        [-1e200, -1e200, -1e200, -1e200],
        [1e308, -1e308, 5.0],  # opposite huge means: their difference overflows
        [1e300, 2e300, 1e300, 3.0],
    ],
)
def test_merge_with_infinite_or_huge_values_is_split_invariant(values: list[float]) -> None:
    x = np.array(values)
    with np.errstate(all="ignore"):
        mean = x.mean()
        m2 = ((x - mean) ** 2).sum()
    scale = np.abs(x).max() * (4 * np.finfo(np.float64).eps)
    for bounds in splits(len(x)):
        parts = [
            pack(*batch_moments(torch.from_numpy(x[a:b, None]), covariance=False))
            for a, b in itertools.pairwise(bounds)
        ]
        n_, mean_, m2_ = (float(v) for v in merge_packed(torch.stack(parts), 1, False))
        assert n_ == len(x)
        if np.isfinite(mean):
            assert abs(mean_ - mean) <= scale, bounds
        else:
            assert mean_ == mean or (np.isnan(mean) and np.isnan(mean_)), bounds
        if np.isfinite(m2):
            assert m2_ == pytest.approx(m2, rel=1e-12, abs=scale), bounds
        else:
            assert m2_ == m2 or (np.isnan(m2) and np.isnan(m2_)), bounds


def test_merge_with_empty_side_is_identity() -> None:
    full = pack(*batch_moments(torch.tensor([[1e200, -3e180], [1e200, 5.0]], dtype=torch.float64)))
    empty = pack(*batch_moments(torch.zeros(0, 2, dtype=torch.float64)))
    assert torch.equal(merge_packed(torch.stack([full, empty]), 2, True), full)
    assert torch.equal(merge_packed(torch.stack([empty, full, empty]), 2, True), full)
