"""torchmetrics.Metric subclasses."""

from objdet.training.metrics.mean_ap import MeanAveragePrecision

__all__ = ["MeanAveragePrecision"]
