"""torchmetrics.Metric subclasses."""

from objdet.training.metrics.anomaly import AnomalyDetectionMetrics, ScoreStatisticsMetric
from objdet.training.metrics.variance import ComponentOrthogonalityMetric, ExplainedVarianceMetric

__all__ = [
    "AnomalyDetectionMetrics",
    "ComponentOrthogonalityMetric",
    "ExplainedVarianceMetric",
    "ScoreStatisticsMetric",
]
