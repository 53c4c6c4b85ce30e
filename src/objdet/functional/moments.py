"""Exact streaming mean / variance / covariance in float64, merged with Chan's parallel formulas.

A set of samples is summarised by ``(n, mean, M2)`` where ``M2`` is the sum of squared
deviations from the mean (a vector for per-feature variance, a matrix for covariance).
Two summaries merge exactly (Chan, Golub & LeVeque, 1979)::

    n = n_a + n_b,  delta = mean_b - mean_a
    mean = mean_a + delta * n_b / n
    M2 = M2_a + M2_b + outer(delta, delta) * n_a * n_b / n

This avoids the cancellation of ``sum(x**2) - n * mean**2``. Merging with an empty summary
returns the other one unchanged, and infinite values give numpy's result on the pooled data
(mean ``±inf`` or NaN, ``M2`` NaN) for any split (see :func:`chan_merge`). Only a batch whose
plain sum overflows float64 (values near 1.8e308 / batch size) gets an infinite batch mean,
as numpy's mean does; splitting it differently can then give a finite one. For transport (metric states,
DDP gathers) a summary is packed in one flat float64 tensor ``[n, mean (C), M2 (C or C*C)]``,
so a stack of packed summaries from several ranks is merged by :func:`merge_packed`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["batch_moments", "chan_merge", "merge_packed", "pack", "packed_size", "unpack"]


def batch_moments(x: Tensor, covariance: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """``(n, mean, M2)`` in float64 of the rows of ``x`` (N, C); M2 is (C, C) or (C,).

    Example:
        >>> import torch
        >>> n, mean, m2 = batch_moments(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
        >>> n.item(), mean.tolist(), m2.tolist()
        (2.0, [2.0, 4.0], [[2.0, 4.0], [4.0, 8.0]])
    """
    x = x.to(torch.float64)
    n = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device)
    mean = x.mean(0) if x.shape[0] > 0 else torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    xc = x - mean
    m2 = xc.T @ xc if covariance else (xc * xc).sum(0)
    return n, mean, m2


def chan_merge(
    n_a: Tensor, mean_a: Tensor, m2_a: Tensor, n_b: Tensor, mean_b: Tensor, m2_b: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Merge two ``(n, mean, M2)`` summaries; an empty side (n == 0) returns the other side unchanged.

    Infinite values give what numpy gives on the pooled data, whatever the split: a mean of
    ``±inf`` (NaN if both signs occur) and a NaN ``M2``. Where ``mean_b - mean_a`` is not finite
    (infinite means, or finite means whose difference overflows) the mean is the convex
    combination ``mean_a * n_a / n + mean_b * n_b / n``, which cannot overflow.
    """
    n = n_a + n_b
    safe_n = torch.where(n > 0, n, torch.ones_like(n))
    delta = mean_b - mean_a
    mean = torch.where(
        torch.isfinite(delta),
        mean_a + delta * (n_b / safe_n),
        mean_a * (n_a / safe_n) + mean_b * (n_b / safe_n),
    )
    corr = torch.outer(delta, delta) if m2_a.dim() == 2 else delta * delta
    m2 = m2_a + m2_b + corr * (n_a * n_b / safe_n)
    # an empty side must not touch the other one: delta**2 may overflow (|mean| > 1.3e154) and 0 * inf = NaN
    mean = torch.where(n_b == 0, mean_a, torch.where(n_a == 0, mean_b, mean))
    m2 = torch.where(n_b == 0, m2_a, torch.where(n_a == 0, m2_b, m2))
    return n, mean, m2


def packed_size(num_features: int, covariance: bool) -> int:
    """Length of a packed summary: ``1 + C + (C * C if covariance else C)``."""
    return 1 + num_features + (num_features * num_features if covariance else num_features)


def pack(n: Tensor, mean: Tensor, m2: Tensor) -> Tensor:
    """Flatten a summary into ``[n, mean, M2]`` (float64)."""
    return torch.cat([n.reshape(1), mean.reshape(-1), m2.reshape(-1)]).to(torch.float64)


def unpack(packed: Tensor, num_features: int, covariance: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`pack`."""
    c = num_features
    m2 = packed[1 + c :]
    return packed[0], packed[1 : 1 + c], m2.reshape(c, c) if covariance else m2


def merge_packed(stacked: Tensor, num_features: int, covariance: bool) -> Tensor:
    """Merge packed summaries stacked along dim 0 (R, L) into one packed summary (L,).

    The merge is exact up to float64 rounding and independent of how samples were split.

    Example:
        >>> import torch
        >>> x = torch.randn(10, 3, dtype=torch.float64)
        >>> parts = torch.stack([pack(*batch_moments(x[:4])), pack(*batch_moments(x[4:]))])
        >>> torch.allclose(merge_packed(parts, 3, True), pack(*batch_moments(x)))
        True
    """
    if stacked.dim() == 1:
        return stacked
    n, mean, m2 = unpack(stacked[0], num_features, covariance)
    for row in stacked[1:]:
        n, mean, m2 = chan_merge(n, mean, m2, *unpack(row, num_features, covariance))
    return pack(n, mean, m2)
