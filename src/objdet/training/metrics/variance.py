"""Variance metrics for PCA-style feature learning: explained variance and component orthogonality."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric

from objdet.functional.moments import batch_moments, merge_packed, pack, packed_size, unpack
from objdet.training.metrics._checks import check_real, check_tensor, value_flags

__all__ = ["ComponentOrthogonalityMetric", "ExplainedVarianceMetric"]


def _features_from_packed_size(size: int) -> int:
    c = (math.isqrt(4 * size - 3) - 1) // 2 if size > 0 else 0
    if size > 0 and packed_size(c, True) != size:
        raise ValueError(f"a packed covariance summary of length {size} matches no feature count")
    return c


def merge_packed_covariance(stacked: Tensor) -> Tensor:
    """``dist_reduce_fx`` of the covariance state: Chan merge of packed ``[n, mean, M2]`` rows (R, L)."""
    if stacked.dim() == 1:
        return stacked
    return merge_packed(stacked, _features_from_packed_size(stacked.shape[-1]), True)


class ExplainedVarianceMetric(Metric):
    """Explained variance ratio of the principal components of all features seen in the epoch.

    ``update(features)``: a real tensor with a channel dimension ``channel_dim``: (N, C)
    feature vectors, or cubes such as (B, C, H, W) or (H, W, C) where every position is one
    sample of C channels (any real dtype; integers are converted to float64, never to
    float32). The mean and covariance are accumulated exactly in float64 as
    ``(n, mean, M2)`` and merged with Chan's formulas across batches and, through a custom
    ``dist_reduce_fx`` on the packed state ``moments``, across DDP ranks. NaN or infinite
    features raise a ``ValueError`` (one would make every later result NaN); this check costs
    one host synchronisation per update and is skipped with ``validate_args=False``.

    ``compute()`` returns float64 scalars ``comp_0``, ``comp_1``, ... (``n_components`` of them,
    all C by default) with ``comp_k = lambda_k / trace(cov)`` (eigenvalues in decreasing
    order, scikit-learn's ``explained_variance_ratio_``) and ``cumulative`` = their sum. With
    user components ``components`` (k, C), also ``captured_comp_i = w_i cov w_i^T / (|w_i|^2
    trace(cov))`` for each row and ``captured`` = the fraction of the variance inside the row
    space of W (``trace(P cov) / trace(cov)`` with P the orthogonal projector onto it; equals
    the sum of the ``captured_comp_i`` when the rows are orthogonal). Fewer than two samples or a
    zero trace give NaN.

    ``num_features`` may be given up front; otherwise it is taken from the first batch (and
    agreed across ranks when syncing, so ranks without data are fine). The state holds
    ``1 + C + C*C`` float64 values.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(1000, 3, generator=g) * torch.tensor([3.0, 1.0, 0.1])
        >>> metric = ExplainedVarianceMetric(n_components=2)
        >>> metric.update(x[:600]); metric.update(x[600:])
        >>> {k: round(v.item(), 2) for k, v in metric.compute().items()}
        {'comp_0': 0.9, 'comp_1': 0.1, 'cumulative': 1.0}
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    moments: Tensor

    def __init__(
        self,
        n_components: int | None = None,
        channel_dim: int = 1,
        num_features: int | None = None,
        components: Tensor | None = None,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_features is not None and (not isinstance(num_features, int) or num_features < 1):
            raise ValueError(f"`num_features` must be a positive int or None, got {num_features!r}")
        size = packed_size(num_features, True) if num_features else 0
        self.add_state(
            "moments", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx=merge_packed_covariance
        )
        if n_components is not None and (not isinstance(n_components, int) or n_components < 1):
            raise ValueError(f"`n_components` must be a positive int or None, got {n_components!r}")
        if not isinstance(channel_dim, int):
            raise TypeError(f"`channel_dim` must be an int, got {type(channel_dim).__name__}")
        self.n_components = n_components
        self.channel_dim = channel_dim
        self.num_features = num_features
        self._fixed_features = num_features is not None
        if components is not None:
            components = check_real(check_tensor(components, "components"), "components")
            if components.dim() != 2 or (num_features is not None and components.shape[1] != num_features):
                expected = f"(k, {num_features})" if num_features is not None else "(k, C)"
                raise ValueError(f"`components` must have shape {expected}, got {tuple(components.shape)}")
            components = components.to(torch.float64)
        self.components = components
        self.validate_args = validate_args

    def _as_rows(self, features: Tensor) -> Tensor:
        if features.dim() < 2:
            raise ValueError(
                f"`features` must have at least 2 dimensions ((N, C) or a cube with a channel dimension), "
                f"got shape {tuple(features.shape)}"
            )
        if not -features.dim() <= self.channel_dim < features.dim():
            raise ValueError(
                f"`channel_dim`={self.channel_dim} is out of range for `features` of shape "
                f"{tuple(features.shape)}"
            )
        c = features.shape[self.channel_dim]
        if self.num_features is not None and c != self.num_features:
            raise ValueError(
                f"`features` has {c} channels along channel_dim={self.channel_dim} (shape "
                f"{tuple(features.shape)}), expected {self.num_features}"
            )
        if self.components is not None and c != self.components.shape[1]:
            raise ValueError(
                f"`features` has {c} channels along channel_dim={self.channel_dim}, but `components` has "
                f"shape {tuple(self.components.shape)}; expected {self.components.shape[1]} channels"
            )
        return features.movedim(self.channel_dim, -1).reshape(-1, c)

    def update(self, features: Tensor) -> None:
        """Add a batch of features (see the class docstring)."""
        features = check_real(check_tensor(features, "features"), "features")
        x = self._as_rows(features)
        if self.validate_args and x.numel() > 0 and value_flags(~torch.isfinite(x).all())[0]:
            # one infinite feature would make every later covariance (and so every ratio) NaN
            raise ValueError("`features` contains NaN or infinite values; expected finite real values")
        if self.num_features is None:
            self.num_features = x.shape[1]
        if self.moments.numel() == 0:
            self.moments = torch.zeros(packed_size(x.shape[1], True), dtype=torch.float64, device=x.device)
        batch = pack(*batch_moments(x, covariance=True))
        self.moments = merge_packed_covariance(torch.stack([self.moments, batch]))

    # -- keep lazily sized states mergeable ----------------------------------------------------
    def _reduce_states(self, incoming_state: dict[str, Any]) -> None:
        incoming = dict(incoming_state)
        if incoming["moments"].numel() != self.moments.numel():
            if incoming["moments"].numel() == 0:
                incoming["moments"] = torch.zeros_like(self.moments)
            elif self.moments.numel() == 0:
                self.moments = torch.zeros_like(incoming["moments"])
        super()._reduce_states(incoming)

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        if not self._fixed_features and dist.is_available() and dist.is_initialized():
            # one tiny collective so that ranks that saw no data allocate the same state size
            local = torch.tensor([self.moments.numel()], dtype=torch.int64, device=self.moments.device)
            size = local.clone()
            dist.all_reduce(size, op=dist.ReduceOp.MAX, group=process_group or self.process_group)
            if self.moments.numel() == 0 and int(size) > 0:
                self.moments = torch.zeros(int(size), dtype=torch.float64, device=self.moments.device)
        if dist_sync_fn is None:
            super()._sync_dist(process_group=process_group)
        else:
            super()._sync_dist(dist_sync_fn, process_group=process_group)

    # -- results -------------------------------------------------------------------------------------
    def covariance(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(n, mean (C,), covariance (C, C))`` in float64 of the current state (ddof = 1)."""
        if self.moments.numel() == 0:
            raise RuntimeError(f"{type(self).__name__} has no data yet; call update() first")
        c = _features_from_packed_size(self.moments.numel())
        n, mean, m2 = unpack(self.moments, c, True)
        return n, mean, m2 / (n - 1).clamp_min(1.0)

    def pca(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean (C,), eigenvalues (C,) decreasing, eigenvectors (C, C) as rows)`` of the covariance."""
        _, mean, cov = self.covariance()
        evals, evecs = torch.linalg.eigh(cov)
        return mean, evals.flip(0).clamp_min(0.0), evecs.flip(1).T

    def compute(self) -> dict[str, Tensor]:
        """float64 scalars ``comp_k``, ``cumulative`` (and ``captured*`` with user components)."""
        if self.moments.numel() == 0:
            k = self.n_components or 1
            nan = torch.tensor(torch.nan, dtype=torch.float64, device=self.moments.device)
            out = {f"comp_{i}": nan.clone() for i in range(k)}
            out["cumulative"] = nan.clone()
            return out
        n, _, cov = self.covariance()
        _, evals, _ = self.pca()
        trace = torch.diagonal(cov).sum()
        valid = (n >= 2) & (trace > 0)
        nan = torch.full_like(trace, torch.nan)
        ratios = torch.where(valid, evals / trace.clamp_min(torch.finfo(torch.float64).tiny), nan)
        k = min(self.n_components or ratios.numel(), ratios.numel())
        out = {f"comp_{i}": ratios[i] for i in range(k)}
        out["cumulative"] = ratios[:k].sum()
        if self.components is not None:
            w = self.components.to(cov.device)
            norms = (w * w).sum(1)
            per = torch.einsum("kc,cd,kd->k", w, cov, w) / (norms * trace)
            for i, v in enumerate(per.unbind(0)):
                out[f"captured_comp_{i}"] = torch.where(valid & (norms[i] > 0), v, nan)
            _, s, vh = torch.linalg.svd(w, full_matrices=False)
            basis = vh[s > s.max() * max(w.shape) * torch.finfo(torch.float64).eps]
            out["captured"] = torch.where(valid, torch.einsum("kc,cd,kd->", basis, cov, basis) / trace, nan)
        return out

    def plot(self, val: Any = None, ax: Any = None) -> tuple[Any, Any]:
        """Scree plot of the explained variance ratios (bars) and their cumulative sum; returns (fig, ax)."""
        from objdet.plotting.variance import plot_scree

        _, evals, _ = self.pca()
        ratios = (evals / evals.sum()).cpu().numpy()
        return plot_scree(ratios, n_components=self.n_components, ax=ax)


class ComponentOrthogonalityMetric(Metric):
    """How far the rows of component matrices W (k, C) are from orthonormal: ``||W W^T - I||_F``.

    ``update(W)`` with one (k, C) matrix or a stack (..., k, C) of them; each matrix is one
    observation (an empty stack such as (0, k, C) adds nothing). ``compute()`` returns float64 scalars:

    * ``orthogonality_error``: the worst (largest) error over every matrix seen in the epoch
      on every rank (``max`` reduction), i.e. a guarantee that holds for all of them;
    * ``orthogonality_error_mean``: the mean error over those matrices (``sum`` reductions).

    NaN before any update. :meth:`plot` draws ``W W^T - I`` of the last matrix of this process.

    Example:
        >>> import torch
        >>> metric = ComponentOrthogonalityMetric()
        >>> metric.update(torch.eye(2, 3))
        >>> metric.update(torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]))
        >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}
        {'orthogonality_error': 0.8485, 'orthogonality_error_mean': 0.4243}
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_max: Tensor
    error_sum: Tensor
    num_matrices: Tensor

    def __init__(self, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "error_max", default=torch.tensor(-torch.inf, dtype=torch.float64), dist_reduce_fx="max"
        )
        self.add_state("error_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_matrices", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.validate_args = validate_args
        self.last_deviation: Tensor | None = None

    def update(self, components: Tensor) -> None:
        """Add one component matrix (k, C) or a stack (..., k, C)."""
        w = check_real(check_tensor(components, "components"), "components")
        if w.dim() < 2 or w.shape[-2] == 0 or w.shape[-1] == 0:
            raise ValueError(
                f"`components` must have shape (k, C) or (..., k, C) with k, C >= 1, got {tuple(w.shape)}"
            )
        if w.numel() == 0:  # an empty stack (0, k, C): nothing to add
            return
        if self.validate_args and value_flags(torch.isnan(w).any())[0]:
            raise ValueError("`components` contains NaN; expected real values")
        w = w.to(torch.float64).reshape(-1, *w.shape[-2:])
        eye = torch.eye(w.shape[-2], dtype=torch.float64, device=w.device)
        dev = w @ w.transpose(-1, -2) - eye
        err = torch.linalg.matrix_norm(dev, ord="fro")
        self.error_max = torch.maximum(self.error_max, err.max())
        self.error_sum += err.sum()
        self.num_matrices += err.numel()
        self.last_deviation = dev[-1].detach()

    def reset(self) -> None:
        """Reset the states and forget the last matrix drawn by :meth:`plot`."""
        super().reset()
        self.last_deviation = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """As torchmetrics' ``forward``; its internal ``reset`` must not forget the last matrix."""
        last = self.last_deviation
        out = super().forward(*args, **kwargs)
        if self.last_deviation is None:  # the batch was an empty stack
            self.last_deviation = last
        return out

    def compute(self) -> dict[str, Tensor]:
        """``orthogonality_error`` (worst case) and ``orthogonality_error_mean`` (NaN before any update)."""
        empty = self.num_matrices == 0
        nan = torch.full_like(self.error_sum, torch.nan)
        return {
            "orthogonality_error": torch.where(empty, nan, self.error_max),
            "orthogonality_error_mean": torch.where(
                empty, nan, self.error_sum / self.num_matrices.clamp_min(1).to(torch.float64)
            ),
        }

    def plot(self, val: Any = None, ax: Any = None) -> tuple[Any, Any]:
        """Heatmap of ``W W^T - I`` of the last matrix seen by this process; returns (fig, ax)."""
        from objdet.plotting.variance import plot_orthogonality

        if self.last_deviation is None:
            raise RuntimeError(f"{type(self).__name__} has no data yet; call update() first")
        values = {k: float(v) for k, v in self.compute().items()}
        return plot_orthogonality(self.last_deviation.cpu().numpy(), values, ax=ax)
