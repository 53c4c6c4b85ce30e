"""Mergeable score histograms and the threshold-free metrics computed from them.

Two binnings are provided. Both are fixed before any data is seen, so every process
uses the same bins and histograms from different batches or ranks merge by addition.

``float`` binning (unbounded scores, the default)
    A float32 score is binned by the top ``9 + m`` bits of its IEEE-754 pattern (sign,
    8 exponent bits and the first ``m`` mantissa bits), after an order-preserving
    transform. Bins are contiguous, ordered, cover every float32 value including
    ``±inf``, and inside one binade each bin spans a relative width of at most ``2**-m``.
    There are ``2**(9 + m)`` bins; ``-0.0`` is treated as ``+0.0``.

``linear`` binning (fixed range)
    ``num_bins`` equal bins on ``[low, high)`` plus one underflow bin ``(-inf, low)`` and
    one overflow bin ``[high, inf]`` (so ``-inf`` and ``+inf`` are counted in the outer bins);
    the edges are rounded to float32. Bins must be at least 4 float32 ulps wide.

Every bin ``b`` is the half-open interval ``[lower_edge[b], lower_edge[b + 1])`` of float32
edges, and every score is counted in the bin that contains its *exact* value, whatever its
dtype: float64 and integer scores are rounded toward ``-inf`` to float32
(:func:`float32_round_down`) before binning, never to nearest, so ``1 - 1e-12`` is not binned
with ``1.0`` (integers are exact up to ``2**53``). float32 has a narrower range than float64:
float64 scores above float32's maximum (3.4e38) all share the top finite bin (upper edge
``+inf``) and those below ``-3.4e38`` the ``-inf`` bin (the underflow bin with linear binning);
the statements below still hold for them, but those bins are as coarse as they look.

Estimators and their error bounds (``p_b``, ``n_b``: positives / negatives in bin ``b``;
``P``, ``N``: totals; ``TP>_b``, ``FP>_b``: positives / negatives in bins above ``b``):

* AUROC counts pairs in different bins exactly and a positive/negative pair inside one
  bin as 1/2 (as the exact Mann-Whitney statistic does for tied scores). Hence
  ``|auroc_hist - auroc_exact| <= sum_b p_b n_b / (2 P N)``.
* Average precision (the step-wise sum of torchmetrics and scikit-learn) gives every
  positive of bin ``b`` the precision at the middle of the bin,
  ``(TP>_b + (p_b+1)/2) / (TP>_b + (p_b+1)/2 + FP>_b + n_b/2)``. The exact precision seen
  by any positive of the bin lies in ``[lo_b, hi_b]`` with
  ``lo_b = (TP>_b + 1) / (TP>_b + 1 + FP>_b + n_b)`` and ``hi_b = (TP>_b + p_b) / (TP>_b + p_b + FP>_b)``,
  and so does the estimate, hence ``|ap_hist - ap_exact| <= sum_b (p_b / P) (hi_b - lo_b)``.
* Best F1 is searched over the lower bin edges. ``best_f1`` is *exactly* the F1 obtained
  with ``score >= best_f1_threshold`` on the scores as given (the bin edges are exact
  thresholds for every dtype, as above), so it is a lower
  bound of the best F1 over all thresholds; a threshold inside bin ``b`` cannot do better than
  ``2 TP>=_b / (TP>=_b + FP>_b + P)``, which bounds the gap.

The bounds are data dependent and are returned by :func:`binned_error_bounds`. With the
default 6 mantissa bits and continuous scores they are typically of order 1e-4 and the
actual error is far smaller (the estimators are unbiased for scores spread evenly inside a bin).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "binned_auroc",
    "binned_average_precision",
    "binned_best_f1",
    "binned_error_bounds",
    "float32_round_down",
    "float_bin_index",
    "float_bin_lower_edges",
    "float_num_bins",
    "linear_bin_index",
    "linear_bin_lower_edges",
]

_MAX_MANTISSA_BITS = 10


def _check_mantissa_bits(mantissa_bits: int) -> None:
    if not isinstance(mantissa_bits, int) or not 0 <= mantissa_bits <= _MAX_MANTISSA_BITS:
        raise ValueError(
            f"`mantissa_bits` must be an int in [0, {_MAX_MANTISSA_BITS}], got {mantissa_bits!r}"
        )


def float32_round_down(scores: Tensor) -> Tensor:
    """Largest float32 ``<=`` each score: ``scores`` itself if float32, a float32 tensor otherwise.

    Rounding toward ``-inf`` (not to nearest) keeps every value in the float32 bin ``[e_b,
    e_{b+1})`` (``e`` float32 edges) that contains its exact value: ``x >= e_b`` if and only if
    ``round_down(x) >= e_b``. float16 / bfloat16 convert exactly; float64 and integers (through
    float64, so integers are exact up to ``2**53``) are rounded down. float64 values above the
    float32 range become the largest float32, those below it ``-inf``.

    Example:
        >>> import torch
        >>> float32_round_down(torch.tensor([1 - 1e-12, 1e39, -1e39], dtype=torch.float64)).tolist()
        [0.9999999403953552, 3.4028234663852886e+38, -inf]
    """
    if scores.dtype == torch.float32:
        return scores
    if scores.is_floating_point() and scores.dtype.itemsize <= 4:
        return scores.to(torch.float32)  # exact
    x = scores.to(torch.float64)
    y = x.to(torch.float32)  # to nearest: one of the two float32 neighbours of x
    above = y.to(torch.float64) > x
    return torch.where(above, torch.nextafter(y, y.new_full((), -torch.inf)), y)


def float_num_bins(mantissa_bits: int) -> int:
    """Number of bins of the float binning with ``mantissa_bits`` mantissa bits: ``2**(9 + m)``."""
    _check_mantissa_bits(mantissa_bits)
    return 1 << (9 + mantissa_bits)


def float_bin_index(scores: Tensor, mantissa_bits: int = 6) -> Tensor:
    """Bin index (int32, same shape as ``scores``) of each score in the float binning.

    Any real dtype; each score lands in the bin that contains its exact value (see
    :func:`float32_round_down`).

    Example:
        >>> import torch
        >>> float_bin_index(torch.tensor([-1.0, 0.0, 1.0, 1.01, 1.02]), mantissa_bits=6).tolist()
        [8255, 16384, 24512, 24512, 24513]
    """
    _check_mantissa_bits(mantissa_bits)
    offset = 1 << (8 + mantissa_bits)
    # top bits of the IEEE pattern (+ 0.0 turns -0.0 into +0.0); as a signed int32 they are
    # ordered for positive floats and reversed for negative ones
    b = (float32_round_down(scores) + 0.0).view(torch.int32) >> (23 - mantissa_bits)
    # positive: b + offset (== b | offset, as 0 <= b < offset); negative: offset - 1 - (b + offset) == ~b
    flip = b >> 31
    flip |= offset
    b ^= flip
    return b


def float_bin_lower_edges(mantissa_bits: int = 6, device: torch.device | None = None) -> Tensor:
    """Lower edge (float64) of every float bin; bins are ``[edge[b], edge[b + 1])``.

    Bins made only of NaN bit patterns get ``-inf`` (below ``-inf``) or ``+inf`` (above).
    """
    nbins = float_num_bins(mantissa_bits)
    shift = 23 - mantissa_bits
    b = torch.arange(nbins, dtype=torch.int64, device=device)
    key = ((b - (1 << (8 + mantissa_bits))) << shift).to(torch.int32)  # smallest key of each bin
    bits = key ^ ((key >> 31) & 0x7FFFFFFF)  # key order -> IEEE pattern (negative: flipped magnitude)
    edges = bits.view(torch.float32).to(torch.float64)
    neg_nan = torch.isnan(edges) & (b < nbins // 2)
    edges = torch.where(neg_nan, torch.full_like(edges, -torch.inf), edges)
    return torch.where(torch.isnan(edges), torch.full_like(edges, torch.inf), edges)


def linear_bin_index(scores: Tensor, low: float, high: float, num_bins: int) -> Tensor:
    """Bin index (int64) in the fixed-range binning: 0 below ``low``, ``num_bins + 1`` at or above ``high``.

    ``-inf`` is in the underflow bin 0 and ``+inf`` in the overflow bin ``num_bins + 1``. NaN
    (which has no bin; metrics only accept it under an ignore mask) gets some valid index.

    Example:
        >>> import torch
        >>> linear_bin_index(torch.tensor([-5.0, 0.0, 0.25, 0.5, 1.0, 7.0]), 0.0, 1.0, 4).tolist()
        [0, 1, 2, 3, 5, 5]
    """
    edges = linear_bin_lower_edges(low, high, num_bins, device=scores.device).to(torch.float32)
    # the overflow bin has no upper edge: NaN compares False, so nothing (not even +inf) leaves it
    upper = torch.cat([edges[1:], edges.new_full((1,), torch.nan)])
    x = float32_round_down(scores)
    est = (x - low) * (num_bins / (high - low))
    idx = est.floor_().clamp_(-1, num_bins).nan_to_num_(nan=-1.0).to(torch.int64)
    idx += 1
    # float rounding can put a value one bin off (never more, as bins are at least 4 float32
    # ulps wide): fix it against the exact (float32) edges
    idx -= (x < edges[idx]).to(torch.int64)
    idx += (x >= upper[idx]).to(torch.int64)
    return idx


def _float32_ulp(value: float) -> float:
    """Spacing of the float32 values at ``|value|`` (a finite float32 value)."""
    return max(math.ldexp(1.0, math.frexp(abs(value))[1] - 24), 2.0**-149)


def _check_linear_range(low: float, high: float, num_bins: int) -> None:
    if not (isinstance(num_bins, int) and num_bins >= 1):
        raise ValueError(f"`num_bins` must be a positive int, got {num_bins!r}")
    seen = f"got ({low!r}, {high!r}) with num_bins={num_bins}"
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"`score_range` must be finite with low < high, {seen}")
    lo32, hi32 = torch.tensor([low, high], dtype=torch.float64).to(torch.float32).tolist()
    f32_max = float(torch.finfo(torch.float32).max)
    if not (abs(lo32) <= f32_max and abs(hi32) <= f32_max and abs(hi32 - lo32) <= f32_max):
        raise ValueError(f"`score_range` and its width high - low must be within the float32 range, {seen}")
    if num_bins / (high - low) > f32_max:
        raise ValueError(
            f"`score_range` is too narrow: num_bins / (high - low) must be finite in float32, {seen}"
        )
    if (high - low) / num_bins < 4 * _float32_ulp(max(abs(lo32), abs(hi32))):
        raise ValueError(
            f"`score_range` bins must be at least 4 float32 ulps wide (scores are binned in float32), "
            f"{seen}; expected a wider range or fewer bins"
        )


def linear_bin_lower_edges(
    low: float, high: float, num_bins: int, device: torch.device | None = None
) -> Tensor:
    """Lower edges (``num_bins + 2``, starting with ``-inf``) of the fixed-range binning.

    The edges are float32 values (returned as float64), as scores are binned in float32.
    Raises ``ValueError`` (naming ``score_range``) unless ``low < high`` are finite, ``high - low``
    is within the float32 range and every bin is at least 4 float32 ulps wide (so that each
    bin is a real float32 interval and the fast arithmetic binning is exact).
    """
    _check_linear_range(float(low), float(high), num_bins)
    inner = torch.linspace(float(low), float(high), num_bins + 1, dtype=torch.float64, device=device)
    inner = inner.to(torch.float32).to(torch.float64)
    return torch.cat([torch.full((1,), -torch.inf, dtype=torch.float64, device=device), inner])


def _cumulative(pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """float64 (pos, neg, TP above bin, FP above bin, P, N)."""
    pos = pos.to(torch.float64)
    neg = neg.to(torch.float64)
    tp_ge = pos.flip(0).cumsum(0).flip(0)
    fp_ge = neg.flip(0).cumsum(0).flip(0)
    return pos, neg, tp_ge - pos, fp_ge - neg, pos.sum(), neg.sum()


def _nan_where(cond: Tensor, value: Tensor) -> Tensor:
    return torch.where(cond, torch.full_like(value, torch.nan), value)


def binned_auroc(pos: Tensor, neg: Tensor) -> Tensor:
    """AUROC from positive / negative histograms over the same bins; NaN if ``P == 0`` or ``N == 0``.

    Example:
        >>> import torch
        >>> binned_auroc(torch.tensor([0, 1, 3]), torch.tensor([2, 1, 0]))
        tensor(0.9583, dtype=torch.float64)
    """
    pos, neg, _, fp_gt, p, n = _cumulative(pos, neg)
    fp_lt = n - fp_gt - neg
    auc = (pos * (fp_lt + 0.5 * neg)).sum() / (p * n).clamp_min(1.0)
    return _nan_where((p == 0) | (n == 0), auc)


def _bin_precision_bounds(pos: Tensor, neg: Tensor, tp_gt: Tensor, fp_gt: Tensor) -> tuple[Tensor, Tensor]:
    lo = (tp_gt + 1) / (tp_gt + 1 + fp_gt + neg)
    hi = (tp_gt + pos) / (tp_gt + pos + fp_gt).clamp_min(1.0)
    return lo, hi


def binned_average_precision(pos: Tensor, neg: Tensor) -> Tensor:
    """Average precision (step-wise, as torchmetrics / scikit-learn) from histograms; NaN if ``P == 0``.

    Example:
        >>> import torch
        >>> binned_average_precision(torch.tensor([0, 1, 3]), torch.tensor([2, 1, 0]))
        tensor(0.9722, dtype=torch.float64)
    """
    pos, neg, tp_gt, fp_gt, p, _ = _cumulative(pos, neg)
    tp_mid = tp_gt + (pos + 1) / 2
    prec = tp_mid / (tp_mid + fp_gt + neg / 2)
    ap = (pos * prec).sum() / p.clamp_min(1.0)
    return _nan_where(p == 0, ap)


def binned_best_f1(pos: Tensor, neg: Tensor, lower_edges: Tensor) -> tuple[Tensor, Tensor]:
    """Best F1 over the thresholds ``lower_edges[b]`` of non-empty bins, and that threshold.

    The returned F1 is exactly the F1 of the rule ``score >= threshold``. Both are NaN if
    ``P == 0``. Among equal F1 values the highest threshold wins.

    Example:
        >>> import torch
        >>> pos, neg, edges = torch.tensor([0, 1, 3]), torch.tensor([2, 1, 0]), torch.tensor([-1.0, 0.0, 1.0])
        >>> f1, thr = binned_best_f1(pos, neg, edges)
        >>> round(f1.item(), 4), thr.item()
        (0.8889, 0.0)
    """
    pos, neg, tp_gt, fp_gt, p, _ = _cumulative(pos, neg)
    tp_ge, fp_ge = tp_gt + pos, fp_gt + neg
    f1 = 2 * tp_ge / (tp_ge + fp_ge + p).clamp_min(1.0)
    f1 = torch.where((pos + neg) > 0, f1, torch.full_like(f1, -1.0))
    # highest threshold among ties: argmax of the reversed array
    best = f1.numel() - 1 - torch.argmax(f1.flip(0))
    f1_best, thr = f1[best], lower_edges.to(torch.float64)[best]
    return _nan_where(p == 0, f1_best), _nan_where(p == 0, thr)


def binned_error_bounds(pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
    """Worst-case absolute errors of :func:`binned_auroc`, :func:`binned_average_precision` and
    :func:`binned_best_f1` (best F1 over all thresholds minus the binned value), from the histograms alone.

    Example:
        >>> import torch
        >>> b = binned_error_bounds(torch.tensor([0, 1, 3]), torch.tensor([2, 1, 0]))
        >>> [round(v.item(), 4) for v in b.values()]
        [0.0417, 0.05, 0.1111]
    """
    pos, neg, tp_gt, fp_gt, p, n = _cumulative(pos, neg)
    auroc = (pos * neg).sum() / (2 * (p * n).clamp_min(1.0))
    lo, hi = _bin_precision_bounds(pos, neg, tp_gt, fp_gt)
    ap = (pos * (hi - lo).clamp_min(0.0)).sum() / p.clamp_min(1.0)
    tp_ge = tp_gt + pos
    f1_edges = 2 * tp_ge / (tp_ge + fp_gt + neg + p).clamp_min(1.0)
    f1_edges = torch.where((pos + neg) > 0, f1_edges, torch.zeros_like(f1_edges))
    f1_upper = 2 * tp_ge / (tp_ge + fp_gt + p).clamp_min(1.0)
    f1_gap = (f1_upper.max() - f1_edges.max()).clamp_min(0.0)
    return {
        "auroc": _nan_where((p == 0) | (n == 0), auroc),
        "average_precision": _nan_where(p == 0, ap),
        "best_f1": _nan_where(p == 0, f1_gap),
    }
