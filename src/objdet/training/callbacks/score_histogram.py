"""Histogram of normal vs anomalous scores of the whole validation epoch, with the metric values."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric

from objdet.training.callbacks._base import ExtractFn, ValidationMetricCallback
from objdet.training.metrics.anomaly import AnomalyDetectionMetrics, ScoreStatisticsMetric

__all__ = ["ScoreHistogramCallback"]


class ScoreHistogramCallback(ValidationMetricCallback):
    """Pool the epoch's anomaly scores over all ranks; log the metrics and draw the score histogram.

    With ``use_targets=True`` (default) it owns an
    :class:`~objdet.training.metrics.AnomalyDetectionMetrics` fed with ``outputs["scores"]``
    and ``outputs["targets"]`` (raw scores, any shape: per-pixel maps or per-image scores;
    binary targets of the same shape; optional ``outputs["ignore_mask"]``) and logs
    ``{prefix}precision``, ``recall``, ``f1``, ``iou``, ``specificity``, ``accuracy``,
    ``auroc``, ``average_precision``, ``best_f1``, ``best_f1_threshold``. With
    ``use_targets=False`` it owns a :class:`~objdet.training.metrics.ScoreStatisticsMetric`
    (only ``scores`` needed) and logs ``mean``, ``std``, ``min``, ``max`` and the quantiles.

    The state is updated and synced on every rank; rank 0 draws the metric's ``plot()`` of
    the global state (normal vs anomalous histograms, threshold, values) under ``tag``. The
    scalars go through ``pl_module.log`` (so ModelCheckpoint / EarlyStopping can monitor
    e.g. ``val/anomaly/auroc``).

    Args:
        threshold: decision threshold on the raw scores (``AnomalyDetectionMetrics``).
        use_targets: see above.
        metric_kwargs: further arguments of the metric (e.g. ``score_range``, ``quantiles``).
        prefix: prefix of the logged scalars.
        compute_every_epoch: compute and log the scalars at every validation epoch (default),
            not only in those that draw (every ``every_n_epochs``; see :class:`ValidationMetricCallback`).
        tag, every_n_epochs, save_dir, dpi, extract: see :class:`ValidationOutputsCallback`.
    """

    optional_keys = ("ignore_mask",)
    outputs_help = (
        "Expected scores (raw anomaly scores, any shape) and, with use_targets=True, binary targets of the "
        "same shape."
    )

    def __init__(
        self,
        threshold: float = 0.5,
        use_targets: bool = True,
        metric_kwargs: Mapping[str, Any] | None = None,
        prefix: str = "val/anomaly/",
        tag: str = "val/anomaly_scores",
        every_n_epochs: int = 1,
        compute_every_epoch: bool = True,
        save_dir: str | Path | None = None,
        dpi: float = 100,
        extract: ExtractFn | None = None,
    ) -> None:
        super().__init__(
            tag,
            compute_every_epoch=compute_every_epoch,
            extract=extract,
            every_n_epochs=every_n_epochs,
            save_dir=save_dir,
            dpi=dpi,
        )
        self.threshold = threshold
        self.use_targets = use_targets
        self.metric_kwargs = dict(metric_kwargs or {})
        self.prefix = prefix
        self.required_keys = ("scores", "targets") if use_targets else ("scores",)

    def make_metric(self) -> Metric:
        if self.use_targets:
            return AnomalyDetectionMetrics(threshold=self.threshold, **self.metric_kwargs)
        return ScoreStatisticsMetric(**self.metric_kwargs)

    def update_metric(self, metric: Metric, data: dict[str, Any]) -> None:
        if self.use_targets:
            metric.update(data["scores"], data["targets"], data.get("ignore_mask"))
        else:
            metric.update(data["scores"], data.get("ignore_mask"))

    def draw(self, trainer: pl.Trainer, metric: Metric, values: Any) -> Figure:
        fig, ax = metric.plot()
        ax.set_title(f"{ax.get_title()} ({self.tag}, epoch {trainer.current_epoch})")
        return fig

    def scalars(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {f"{self.prefix}{k}": v for k, v in values.items()}
