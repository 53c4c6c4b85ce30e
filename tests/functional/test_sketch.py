"""Quantile sketch against numpy.quantile, with the documented bound; beyond 2**24 values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.functional.sketch import sketch_counts, sketch_quantiles


def documented_bound(sorted_x: np.ndarray, q: float, m: int) -> float:
    h = (len(sorted_x) - 1) * q
    j = int(np.floor(h))
    j1 = min(j + 1, len(sorted_x) - 1)
    return 2.0 ** -(m + 1) * max(abs(float(sorted_x[j])), abs(float(sorted_x[j1]))) + 2.0**-127


@given(
    st.lists(st.floats(-1e5, 1e5, width=32), min_size=1, max_size=200),
    st.lists(st.floats(0, 1), min_size=1, max_size=5),
    st.integers(2, 8),
)
def test_quantiles_within_bound(values: list[float], qs: list[float], m: int) -> None:
    x = np.array(values, dtype=np.float32)
    t = torch.from_numpy(x)
    est = sketch_quantiles(sketch_counts(t, m), torch.tensor(qs), m, t.min(), t.max()).numpy()
    xs = np.sort(x.astype(np.float64))
    for q, e in zip(qs, est, strict=False):
        exact = np.quantile(xs, q)  # numpy's default 'linear' method
        assert abs(e - exact) <= documented_bound(xs, q, m) * (1 + 1e-9), (q, e, exact)


def test_split_and_merge_is_addition() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10_000, generator=g).exp()
    whole = sketch_counts(x)
    parts = sketch_counts(x[:3000]) + sketch_counts(x[3000:7000]) + sketch_counts(x[7000:])
    assert torch.equal(whole, parts)


def test_empty_is_nan_and_infinities_exact() -> None:
    assert torch.isnan(sketch_quantiles(torch.zeros(2**16, dtype=torch.int64), torch.tensor([0.5]), 7)).all()
    x = torch.tensor([-torch.inf, 1.0, 2.0, torch.inf])
    out = sketch_quantiles(sketch_counts(x), torch.tensor([0.0, 1.0]), 7, x.min(), x.max())
    assert out.tolist() == [-np.inf, np.inf]


def test_more_than_2_pow_24_values() -> None:
    n = 2**24 + 5
    x = torch.arange(n, dtype=torch.float32) / 2**20  # values in [0, 16), exact in float32
    with pytest.raises(RuntimeError):
        torch.quantile(x, 0.5)  # torch refuses inputs this large
    counts = sketch_counts(x)
    assert int(counts.sum()) == n
    q = torch.tensor([0.5, 0.95])
    est = sketch_quantiles(counts, q, 7, x.min(), x.max())
    exact = (n - 1) * q.double() / 2**20  # linear interpolation on an arithmetic sequence
    assert torch.all((est - exact).abs() <= 2.0**-8 * exact.abs() + 1e-12)


def test_float64_values_keep_the_bound() -> None:
    # 1 - 2**-26 rounds up to 1.0 in float32; the sketch must bin it below 1
    x = torch.tensor([1 - 2.0**-26] * 4 + [5.0, -(1 - 2.0**-26), -3.0], dtype=torch.float64)
    xs = np.sort(x.numpy())
    qs = [1 / 6, 0.5, 2 / 3]
    for m in (2, 7):
        est = sketch_quantiles(sketch_counts(x, m), torch.tensor(qs), m, x.min(), x.max()).numpy()
        for q, e in zip(qs, est, strict=True):
            assert abs(e - np.quantile(xs, q)) <= documented_bound(xs, q, m) * (1 + 1e-9), (m, q, e)
