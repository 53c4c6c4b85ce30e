"""torchmetrics.Metric subclasses: COCO detection, anomaly detection and feature variance."""

from objdet.training.metrics._errors import InputError
from objdet.training.metrics.anomaly import AnomalyDetectionMetrics, ScoreStatisticsMetric
from objdet.training.metrics.classwise_ap import ClasswiseAP
from objdet.training.metrics.confusion_matrix import ConfusionMatrix
from objdet.training.metrics.detection_functional import mean_average_precision
from objdet.training.metrics.lvis import LVISClasswiseAP, LVISMeanAveragePrecision
from objdet.training.metrics.mean_ap import MeanAveragePrecision
from objdet.training.metrics.tide import TIDE
from objdet.training.metrics.variance import ComponentOrthogonalityMetric, ExplainedVarianceMetric

__all__ = [
    "TIDE",
    "AnomalyDetectionMetrics",
    "ClasswiseAP",
    "ComponentOrthogonalityMetric",
    "ConfusionMatrix",
    "ExplainedVarianceMetric",
    "InputError",
    "LVISClasswiseAP",
    "LVISMeanAveragePrecision",
    "MeanAveragePrecision",
    "ScoreStatisticsMetric",
]
__all__ += ["mean_average_precision"]
