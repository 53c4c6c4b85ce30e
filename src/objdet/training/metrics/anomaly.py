"""Anomaly detection metrics on raw, unbounded scores (pixel maps or per-image scores).

Nothing here applies a sigmoid: ``threshold`` and the histogram work on the scores as given.
All values are pooled over every update of the epoch and summed over DDP ranks.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

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
from objdet.functional.moments import merge_packed
from objdet.functional.sketch import sketch_counts, sketch_quantiles
from objdet.training.metrics._checks import check_real, check_tensor, match_shapes, value_flags

__all__ = ["AnomalyDetectionMetrics", "ScoreStatisticsMetric"]

#: Upper limit on the bytes held by the state of :class:`AnomalyDetectionMetrics` and
#: :class:`ScoreStatisticsMetric`.
MAX_STATE_BYTES = 1_000_000


def _check_ignore_mask(ignore_mask: Tensor | None, scores: Tensor) -> Tensor | None:
    if ignore_mask is None:
        return None
    check_tensor(ignore_mask, "ignore_mask")
    if ignore_mask.dtype != torch.bool:
        raise TypeError(
            f"`ignore_mask` must be a bool tensor (True = not evaluated), got {ignore_mask.dtype}"
        )
    return match_shapes(scores, ignore_mask, ("scores", "ignore_mask"))


def _value_checks(scores: Tensor, target: Tensor, ignore_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """0-d bool tensors: any NaN score, any non-binary target (outside the ignore mask)."""
    if ignore_mask is None:
        has_nan = torch.isnan(scores).any()
        if target.dtype == torch.bool:
            bad = torch.zeros((), dtype=torch.bool, device=target.device)
        elif not target.is_floating_point():
            lo, hi = torch.aminmax(target)
            bad = (lo < 0) | (hi > 1)
        else:
            bad = ((target != 0) & (target != 1)).any()
        return has_nan, bad
    keep = ~ignore_mask
    return (torch.isnan(scores) & keep).any(), ((target != 0) & (target != 1) & keep).any()


class AnomalyDetectionMetrics(Metric):
    """Pixel- or image-level anomaly detection metrics from raw scores, pooled over the epoch.

    ``update(scores, target, ignore_mask=None)``: ``scores`` any real tensor of raw, unbounded
    anomaly scores (higher = more anomalous; per-pixel maps (B, H, W) or (B, 1, H, W), or
    per-image scores (B,)); ``target`` the same shape (a singleton channel may be missing on
    one side) with values in {0, 1} (bool, int or float); ``ignore_mask`` optional bool, True
    where an element must not be evaluated.

    ``compute()`` returns float64 scalars:

    * ``precision``, ``recall``, ``f1``, ``iou``, ``specificity``, ``accuracy`` of the rule
      ``score >= threshold``, from exact int64 TP/FP/FN/TN counts; the comparison is exact for
      every dtype of ``scores`` (the threshold, an int or a float, is never rounded to the
      scores' dtype: a float32 score ``0.7`` is 0.699999988 and is not ``>= 0.7``);
    * ``auroc``, ``average_precision``, ``best_f1`` and ``best_f1_threshold`` from a mergeable
      histogram of the scores (see :mod:`objdet.functional.histogram` for the estimators and
      their error bounds; ``best_f1`` is exactly the F1 of ``score >= best_f1_threshold``, for
      scores of any float dtype and integers up to ``2**53``: every score is binned by its
      exact value, float64 scores being rounded toward ``-inf`` to float32);
    * with ``return_error_bounds=True`` also ``auroc_error_bound``,
      ``average_precision_error_bound`` and ``best_f1_error_bound`` (worst-case absolute errors
      against an exact, sort-based computation, derived from the histogram itself).

    Empty classes: every value whose denominator is zero is NaN, never a silent 0 or 0.5.
    Without anomalous elements recall, auroc, average_precision, best_f1 and
    best_f1_threshold are NaN; precision, f1 and iou are 0 if something was flagged (all
    flags are false alarms) and NaN otherwise. Without normal elements auroc and specificity
    are NaN (average_precision is then 1). A ``UserWarning`` says which class was missing.

    Binning: by default (``score_range=None``) a float-exponent binning with ``2**(9 +
    mantissa_bits)`` bins that covers every float32 value, so no range needs to be known
    (relative bin width ``2**-mantissa_bits``); float64 scores beyond float32's range
    (3.4e38) saturate into the top finite bin or the ``-inf`` bin. With
    ``score_range=(low, high)``, ``num_bins`` equal bins on that range plus an underflow bin
    (``-inf`` included) and an overflow bin (``+inf`` included); the range must be finite
    and each bin at least 4 float32 ulps wide (``ValueError`` otherwise), as the bin edges
    are float32 values. The state is two int64 histograms (512 KiB by default) plus four
    counts; it must stay under 1 MB.

    Validation (``validate_args=True``) costs one host synchronisation per update (NaN
    scores, non-binary targets); everything else in ``update`` is synchronisation-free.

    Example:
        >>> import torch
        >>> metric = AnomalyDetectionMetrics(threshold=0.0)
        >>> scores = torch.tensor([[-2.0, -1.0, 0.5], [3.0, -0.5, 1.5]])
        >>> target = torch.tensor([[0, 0, 1], [1, 0, 0]])
        >>> metric.update(scores, target)
        >>> out = metric.compute()
        >>> {k: round(out[k].item(), 3) for k in ("precision", "recall", "f1", "auroc", "average_precision")}
        {'precision': 0.667, 'recall': 1.0, 'f1': 0.8, 'auroc': 0.875, 'average_precision': 0.833}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    counts: Tensor
    histogram: Tensor

    def __init__(
        self,
        threshold: float = 0.5,
        score_range: tuple[float, float] | None = None,
        num_bins: int = 16384,
        mantissa_bits: int = 6,
        return_error_bounds: bool = False,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if score_range is None:
            nbins = float_num_bins(mantissa_bits)
        else:
            if not (isinstance(score_range, (tuple, list)) and len(score_range) == 2):
                raise ValueError(f"`score_range` must be a (low, high) pair or None, got {score_range!r}")
            linear_bin_lower_edges(float(score_range[0]), float(score_range[1]), num_bins)  # validates
            nbins = num_bins + 2
        state_bytes = 2 * nbins * 8 + 4 * 8
        if state_bytes > MAX_STATE_BYTES:
            raise ValueError(
                f"the histogram state would take {state_bytes} bytes (> {MAX_STATE_BYTES}); "
                f"got mantissa_bits={mantissa_bits}, num_bins={num_bins}, expected a smaller value"
            )
        self.add_state("counts", default=torch.zeros(4, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("histogram", default=torch.zeros(2, nbins, dtype=torch.int64), dist_reduce_fx="sum")
        if not isinstance(threshold, (int, float)) or threshold != threshold:
            raise ValueError(f"`threshold` must be a real number, got {threshold!r}")
        # an int stays an int: it is compared exactly even beyond 2**53
        self.threshold = (
            threshold if isinstance(threshold, int) and not isinstance(threshold, bool) else float(threshold)
        )
        self.score_range = None if score_range is None else (float(score_range[0]), float(score_range[1]))
        self.num_bins = num_bins
        self.mantissa_bits = mantissa_bits
        self.return_error_bounds = return_error_bounds
        self.validate_args = validate_args

    def _bin_index(self, scores: Tensor) -> Tensor:
        if self.score_range is None:
            return float_bin_index(scores, self.mantissa_bits)
        return linear_bin_index(scores, self.score_range[0], self.score_range[1], self.num_bins)

    def bin_lower_edges(self) -> Tensor:
        """Lower edge (float64) of every histogram bin, on the metric's device."""
        if self.score_range is None:
            return float_bin_lower_edges(self.mantissa_bits, device=self.histogram.device)
        return linear_bin_lower_edges(*self.score_range, self.num_bins, device=self.histogram.device)

    def update(self, scores: Tensor, target: Tensor, ignore_mask: Tensor | None = None) -> None:
        """Add a batch of raw scores and binary targets (see the class docstring)."""
        scores = check_real(check_tensor(scores, "scores"), "scores")
        target = match_shapes(scores, check_tensor(target, "target"))
        if target.is_complex():
            raise TypeError(
                f"`target` must be bool, integer or float with values in {{0, 1}}, got {target.dtype}"
            )
        ignore_mask = _check_ignore_mask(ignore_mask, scores)
        if self.validate_args and scores.numel() > 0:
            has_nan, bad_target = value_flags(*_value_checks(scores, target, ignore_mask))
            if has_nan:
                raise ValueError(
                    "`scores` contains NaN; expected finite or infinite real scores (NaN has no rank)"
                )
            if bad_target:
                bad = (target != 0) & (target != 1)
                if ignore_mask is not None:
                    bad &= ~ignore_mask
                seen = torch.unique(target[bad])[:5].tolist()
                raise ValueError(
                    f"`target` must be binary with values in {{0, 1}}, got values such as {seen}"
                )
        target_bin = target if target.dtype == torch.bool else target != 0
        self.counts += binary_counts(scores, target_bin, self.threshold, ignore_mask)
        nbins = self.histogram.shape[1]
        # one pass per elementwise op, in place where possible: index = 2 * bin + target
        idx = self._bin_index(scores)
        idx <<= 1
        idx |= target_bin
        if ignore_mask is not None:
            idx.masked_fill_(ignore_mask, 2 * nbins)
        hist = torch.bincount(idx.reshape(-1), minlength=2 * nbins + 1)[: 2 * nbins]
        self.histogram += hist.view(nbins, 2).T

    def compute(self) -> dict[str, Tensor]:
        """All values as float64 scalars (see the class docstring)."""
        out = counts_to_metrics(self.counts)
        neg, pos = self.histogram[0], self.histogram[1]
        out["auroc"] = binned_auroc(pos, neg)
        out["average_precision"] = binned_average_precision(pos, neg)
        out["best_f1"], out["best_f1_threshold"] = binned_best_f1(pos, neg, self.bin_lower_edges())
        if self.return_error_bounds:
            for key, value in binned_error_bounds(pos, neg).items():
                out[f"{key}_error_bound"] = value
        n_pos, n_neg = value_flags(pos.sum() == 0, neg.sum() == 0)
        if n_pos or n_neg:
            missing = "anomalous (target 1)" if n_pos else "normal (target 0)"
            warnings.warn(
                f"{type(self).__name__}: no {missing} elements were seen; values that need them are NaN",
                UserWarning,
                stacklevel=2,
            )
        return out

    def plot(self, val: Any = None, ax: Any = None) -> tuple[Any, Any]:
        """Histogram of normal vs anomalous scores with the threshold and summary values; returns (fig, ax).

        ``val`` is ignored (kept for torchmetrics' signature); the metric's own state is drawn.
        """
        from objdet.plotting.anomaly import plot_score_histogram

        neg, pos = self.histogram[0].cpu(), self.histogram[1].cpu()
        lower = self.bin_lower_edges().cpu()
        upper = torch.cat([lower[1:], torch.tensor([torch.inf], dtype=torch.float64)])
        finite = torch.isfinite(lower) & torch.isfinite(upper)
        centers = torch.where(finite, (lower + upper) / 2, torch.where(torch.isfinite(lower), lower, upper))
        # spread each histogram bin over 4 points so re-binning for display does not alias
        frac = torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64)
        spread = lower[:, None] + (upper - lower)[:, None] * frac
        centers = torch.where(finite[:, None], spread, centers[:, None]).reshape(-1)
        neg = (neg.to(torch.float64)[:, None] / 4).expand(-1, 4).reshape(-1)
        pos = (pos.to(torch.float64)[:, None] / 4).expand(-1, 4).reshape(-1)
        keep_n, keep_p = neg > 0, pos > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            values = self.compute()
        stats = {
            k: float(values[k])
            for k in ("auroc", "average_precision", "best_f1", "f1", "precision", "recall")
        }
        return plot_score_histogram(
            normal=centers[keep_n].numpy(),
            anomalous=centers[keep_p].numpy(),
            normal_weights=neg[keep_n].numpy(),
            anomalous_weights=pos[keep_p].numpy(),
            threshold=self.threshold,
            stats=stats,
            ax=ax,
        )


def _quantile_key(q: float) -> str:
    return f"q{round(100 * q, 6):g}"


class ScoreStatisticsMetric(Metric):
    """Mean, std, min, max and quantiles of all scores seen in the epoch (all ranks).

    ``update(scores, ignore_mask=None)`` with any real tensor of scores (NaN is an error;
    integers are converted to float64, exact up to ``2**53``);
    ``compute()`` returns float64 scalars ``{"mean", "std", "min", "max", "q50", "q95"}`` (one
    ``q<100 q>`` key per entry of ``quantiles``, e.g. 0.999 -> ``q99.9``).

    * mean and std are exact in float64: each batch is summarised by ``(n, mean, M2)`` and
      merged with Chan's parallel formulas, across batches and, through a custom
      ``dist_reduce_fx``, across DDP ranks (state ``moments`` = packed ``[n, mean, M2]``).
      ``std`` uses ``correction`` (default 1, like ``torch.std``); NaN when ``n <= correction``.
    * min / max are exact (``min`` / ``max`` reductions).
    * ``±inf`` scores are accepted and give what numpy gives on all the scores, for any split
      into batches or ranks: ``mean`` is ``±inf`` (NaN if both signs occur), ``std`` is NaN,
      ``min`` / ``max`` and the quantiles are exact where they fall on an infinite value.
    * quantiles come from the mergeable sketch of :mod:`objdet.functional.sketch`
      (``2**(9 + mantissa_bits)`` int64 counters, 512 KiB by default; the state must stay
      under 1 MB, so ``mantissa_bits <= 7``) with numpy's ``linear``
      definition and error ``|q - q_exact| <= 2**-(mantissa_bits + 1) * max(|x_(j)|, |x_(j+1)|)``
      (0.39 % relative by default), for any number of values (also beyond ``2**24``) and any
      dtype (float64 values are binned by their exact value), while ``|x_(j)|`` and ``|x_(j+1)|``
      are within the float32 range (3.4e38); float64 values beyond it saturate and their
      quantiles are only clamped into ``[min, max]``.

    Empty epoch: everything is NaN.

    Example:
        >>> import torch
        >>> metric = ScoreStatisticsMetric(quantiles=(0.5,))
        >>> metric.update(torch.tensor([1.0, 2.0, 3.0]))
        >>> metric.update(torch.tensor([[4.0, 5.0]]))
        >>> {k: round(v.item(), 3) for k, v in metric.compute().items()}
        {'mean': 3.0, 'std': 1.581, 'min': 1.0, 'max': 5.0, 'q50': 3.008}

    (The exact median is 3; the sketch is within 2**-8 relative.)
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    moments: Tensor
    min_value: Tensor
    max_value: Tensor
    sketch: Tensor

    def __init__(
        self,
        quantiles: tuple[float, ...] | list[float] = (0.5, 0.95),
        mantissa_bits: int = 7,
        correction: int = 1,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        nbins = float_num_bins(mantissa_bits)
        state_bytes = nbins * 8 + 5 * 8
        if state_bytes > MAX_STATE_BYTES:
            raise ValueError(
                f"the sketch state would take {state_bytes} bytes (> {MAX_STATE_BYTES}); "
                f"got mantissa_bits={mantissa_bits}, expected at most 7"
            )
        self.add_state(
            "moments",
            default=torch.zeros(3, dtype=torch.float64),
            dist_reduce_fx=partial(merge_packed, num_features=1, covariance=False),
        )
        self.add_state(
            "min_value", default=torch.tensor(torch.inf, dtype=torch.float64), dist_reduce_fx="min"
        )
        self.add_state(
            "max_value", default=torch.tensor(-torch.inf, dtype=torch.float64), dist_reduce_fx="max"
        )
        self.add_state("sketch", default=torch.zeros(nbins, dtype=torch.int64), dist_reduce_fx="sum")
        qs = list(quantiles)
        if not all(isinstance(q, (int, float)) and 0.0 <= q <= 1.0 for q in qs):
            raise ValueError(f"`quantiles` must be numbers in [0, 1], got {quantiles!r}")
        self.quantiles = [float(q) for q in qs]
        self.mantissa_bits = mantissa_bits
        if not isinstance(correction, int) or correction < 0:
            raise ValueError(f"`correction` must be a non-negative int, got {correction!r}")
        self.correction = correction
        self.validate_args = validate_args

    def update(self, scores: Tensor, ignore_mask: Tensor | None = None) -> None:
        """Add a batch of scores (any shape); True in ``ignore_mask`` drops an element."""
        scores = check_real(check_tensor(scores, "scores"), "scores")
        ignore_mask = _check_ignore_mask(ignore_mask, scores)
        if scores.numel() == 0:
            return
        keep = ~ignore_mask if ignore_mask is not None else None
        if self.validate_args:
            nan = torch.isnan(scores) if keep is None else torch.isnan(scores) & keep
            if value_flags(nan.any())[0]:
                raise ValueError("`scores` contains NaN; expected real scores without NaN")
        x = scores.reshape(-1).to(torch.float64)
        if keep is None:
            n = torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device)
            mean = x.mean()
            m2 = ((x - mean) ** 2).sum()
            lo, hi = x.min(), x.max()
        else:
            k = keep.reshape(-1)
            n = k.sum().to(torch.float64)
            mean = torch.where(k, x, 0.0).sum() / n.clamp_min(1.0)
            m2 = torch.where(k, (x - mean) ** 2, 0.0).sum()
            lo = torch.where(k, x, torch.inf).min()
            hi = torch.where(k, x, -torch.inf).max()
        batch = torch.stack([n, mean, m2])
        self.moments = merge_packed(torch.stack([self.moments, batch]), 1, False)
        self.min_value = torch.minimum(self.min_value, lo)
        self.max_value = torch.maximum(self.max_value, hi)
        self.sketch += sketch_counts(scores, self.mantissa_bits, ignore_mask)

    def compute(self) -> dict[str, Tensor]:
        """float64 scalars: mean, std, min, max and one ``q..`` entry per quantile (NaN when empty)."""
        n, mean, m2 = self.moments.unbind(0)
        empty = n == 0
        nan = torch.full_like(mean, torch.nan)
        dof = n - self.correction
        std = torch.where(dof > 0, (m2 / dof.clamp_min(1.0)).clamp_min(0.0).sqrt(), nan)
        out = {
            "mean": torch.where(empty, nan, mean),
            "std": std,
            "min": torch.where(empty, nan, self.min_value),
            "max": torch.where(empty, nan, self.max_value),
        }
        q = torch.tensor(self.quantiles, dtype=torch.float64, device=self.sketch.device)
        values = sketch_quantiles(self.sketch, q, self.mantissa_bits, self.min_value, self.max_value)
        for qi, v in zip(self.quantiles, values.unbind(0), strict=False):
            out[_quantile_key(qi)] = v
        return out

    def plot(self, val: Any = None, ax: Any = None) -> tuple[Any, Any]:
        """Histogram of the scores (from the sketch) with the statistics; returns (fig, ax)."""
        from objdet.plotting.anomaly import plot_score_histogram

        counts = self.sketch.cpu()
        lower = float_bin_lower_edges(self.mantissa_bits)
        upper = torch.cat([lower[1:], torch.tensor([torch.inf], dtype=torch.float64)])
        centers = torch.where(torch.isfinite(lower) & torch.isfinite(upper), (lower + upper) / 2, lower)
        keep = counts > 0
        stats = {k: float(v) for k, v in self.compute().items()}
        return plot_score_histogram(
            normal=centers[keep].numpy(),
            normal_weights=counts[keep].numpy(),
            stats=stats,
            ax=ax,
            normal_label="scores",
            title="Score statistics",
        )
