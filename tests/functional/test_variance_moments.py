"""Chan merging of (n, mean, M2) against numpy on the concatenated data."""

from __future__ import annotations

import itertools

import numpy as np
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
