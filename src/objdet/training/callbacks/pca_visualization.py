"""PCA of the validation features: explained variance (all ranks) and a projection scatter (rank 0)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric

from objdet.plotting.variance import plot_pca_scatter
from objdet.training.callbacks._base import ExtractFn, ValidationMetricCallback
from objdet.training.metrics.variance import ExplainedVarianceMetric

__all__ = ["PCAVisualizationCallback"]


class PCAVisualizationCallback(ValidationMetricCallback):
    """Principal components of the validation features: logged ratios, scree plot and 2-D/3-D projection.

    Reads ``outputs["features"]`` ((N, C) vectors, or cubes such as (B, C, H, W) where each
    position along ``channel_dim`` is one sample) and optionally ``outputs["labels"]``
    (categorical colours) or ``outputs["feature_scores"]`` (continuous colours), one per
    feature row or one per batch item of a cube.

    An :class:`~objdet.training.metrics.ExplainedVarianceMetric` accumulates the exact mean and
    covariance of all features of the epoch on every rank (merged across ranks); its ratios
    are logged as ``{prefix}comp_0`` .. ``comp_{n_components-1}`` and ``{prefix}cumulative``.
    Rank 0 also keeps a uniform random sample of at most ``max_points`` of its own feature
    rows (a fixed-seed reservoir, so the same samples are drawn every epoch for a fixed data
    order), projected on the global principal components in ``{tag}/projection``, next to
    the scree plot ``{tag}/scree``.

    Args:
        n_components: ratios logged and marked on the scree plot.
        n_dims: 2 or 3, dimensions of the projection.
        max_points: most points in the scatter.
        class_names: names of the labels (sequence indexed by label or ``{label: name}``).
        channel_dim: channel dimension of ``features``.
        prefix: prefix of the logged scalars.
        compute_every_epoch: compute and log the ratios at every validation epoch (default),
            not only in those that draw (every ``every_n_epochs``; see :class:`ValidationMetricCallback`).
        tag, every_n_epochs, save_dir, dpi, extract: see :class:`ValidationOutputsCallback`.
    """

    required_keys = ("features",)
    optional_keys = ("labels", "feature_scores")
    outputs_help = (
        "Expected features as (N, C) vectors or (B, C, ...) cubes, optionally labels or feature_scores "
        "per row."
    )

    def __init__(
        self,
        n_components: int = 2,
        n_dims: int = 2,
        max_points: int = 2000,
        class_names: Sequence[str] | Mapping[int, str] | None = None,
        channel_dim: int = 1,
        prefix: str = "val/pca/",
        tag: str = "val/pca",
        every_n_epochs: int = 1,
        compute_every_epoch: bool = True,
        save_dir: str | Path | None = None,
        dpi: float = 100,
        extract: ExtractFn | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            tag,
            compute_every_epoch=compute_every_epoch,
            extract=extract,
            every_n_epochs=every_n_epochs,
            save_dir=save_dir,
            dpi=dpi,
        )
        if n_dims not in (2, 3):
            raise ValueError(f"`n_dims` must be 2 or 3, got {n_dims!r}")
        if not isinstance(max_points, int) or max_points < 1:
            raise ValueError(f"`max_points` must be a positive int, got {max_points!r}")
        self.n_components = n_components
        self.n_dims = n_dims
        self.max_points = max_points
        self.class_names = class_names
        self.channel_dim = channel_dim
        self.prefix = prefix
        self.seed = seed
        self._buffer: dict[str, Tensor] = {}
        self._generator = torch.Generator().manual_seed(seed)

    def make_metric(self) -> Metric:
        return ExplainedVarianceMetric(n_components=self.n_components, channel_dim=self.channel_dim)

    def reset_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().reset_epoch(trainer, pl_module)
        self._buffer = {}
        self._generator = torch.Generator().manual_seed(self.seed)

    def _rows(self, data: dict[str, Any]) -> dict[str, Tensor]:
        feats = torch.as_tensor(data["features"]).detach()
        c = feats.shape[self.channel_dim]
        rows = feats.movedim(self.channel_dim, -1).reshape(-1, c)
        out = {"features": rows.to("cpu", torch.float32)}
        per_item = rows.shape[0] // max(feats.shape[0], 1) if feats.dim() > 2 else 1
        for key in ("labels", "feature_scores"):
            if key not in data:
                continue
            value = torch.as_tensor(data[key]).detach().reshape(-1).cpu()
            if value.numel() == feats.shape[0] and per_item > 1:
                value = value.repeat_interleave(per_item)
            if value.numel() != rows.shape[0]:
                raise ValueError(
                    f"{type(self).__name__}: `{key}` has {value.numel()} values for {rows.shape[0]} "
                    f"feature rows (features of shape {tuple(feats.shape)}); expected one per row or one "
                    "per batch item"
                )
            out[key] = value
        return out

    def update_metric(self, metric: Metric, data: dict[str, Any]) -> None:
        metric.update(data["features"])

    def update_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, data: dict[str, Any]) -> None:
        super().update_batch(trainer, pl_module, data)
        if not (trainer.is_global_zero and self.drawing_epoch):  # points are kept only to be drawn
            return
        rows = self._rows(data)
        # uniform sample without replacement: keep the rows with the smallest i.i.d. random keys
        rows["key"] = torch.rand(rows["features"].shape[0], generator=self._generator)
        if self._buffer and self._buffer.keys() == rows.keys():
            rows = {k: torch.cat([self._buffer[k], v]) for k, v in rows.items()}
        if rows["key"].numel() > self.max_points:
            keep = rows["key"].topk(self.max_points, largest=False).indices.sort().values
            rows = {k: v[keep] for k, v in rows.items()}
        self._buffer = rows

    def draw(self, trainer: pl.Trainer, metric: Metric, values: Any) -> dict[str, Figure]:
        assert isinstance(metric, ExplainedVarianceMetric)
        figures: dict[str, Figure] = {}
        if metric.moments.numel() == 0:  # no features anywhere this epoch
            return figures
        mean, evals, evecs = metric.pca()
        ratios = evals / evals.sum().clamp_min(torch.finfo(torch.float64).tiny)
        buffer = self._buffer
        if buffer and evecs.shape[0] >= self.n_dims:
            names = self.class_names
            if names is not None and not isinstance(names, Mapping):
                names = dict(enumerate(names))
            figures[f"{self.tag}/projection"] = plot_pca_scatter(
                buffer["features"].to(torch.float64),
                mean.cpu(),
                evecs.cpu(),
                ratios.cpu(),
                labels=buffer.get("labels"),
                scores=buffer.get("feature_scores") if "labels" not in buffer else None,
                n_dims=self.n_dims,
                max_points=self.max_points,
                class_names=names,
                title=f"PCA projection — epoch {trainer.current_epoch} ({len(buffer['features'])} points)",
            )[0]
        fig, ax = metric.plot()
        ax.set_title(f"Scree plot — epoch {trainer.current_epoch}")
        figures[f"{self.tag}/scree"] = fig
        return figures

    def finish_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().finish_epoch(trainer, pl_module)
        self._buffer = {}

    def scalars(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {f"{self.prefix}{k}": v for k, v in values.items()}
