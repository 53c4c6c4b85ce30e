"""torchmetrics.Metric subclasses."""

from objdet.training.metrics.classwise_ap import ClasswiseAP
from objdet.training.metrics.mean_ap import MeanAveragePrecision

__all__ = ["ClasswiseAP", "MeanAveragePrecision"]
