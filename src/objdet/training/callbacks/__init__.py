"""Lightning callbacks that own a metric, plot it on rank 0 and route figures to loggers."""

from objdet.training.callbacks._base import (
    FigureCallback,
    ValidationMetricCallback,
    ValidationOutputsCallback,
    batch_images,
    figure_file_name,
    log_figure,
    logger_kind,
    logging_step,
    scalar_names,
)
from objdet.training.callbacks.anomaly_heatmap import AnomalyHeatmapCallback
from objdet.training.callbacks.confusion_matrix import ConfusionMatrixCallback
from objdet.training.callbacks.detection_visualization import DetectionVisualizationCallback
from objdet.training.callbacks.fail_on_no_train_batches import FailOnNoTrainBatches
from objdet.training.callbacks.gradient_monitor import GradientMonitorCallback
from objdet.training.callbacks.lr_monitor import LearningRateMonitorCallback
from objdet.training.callbacks.pca_visualization import PCAVisualizationCallback
from objdet.training.callbacks.pr_curve import PRCurveCallback
from objdet.training.callbacks.progress import TrainingProgressCallback
from objdet.training.callbacks.score_histogram import ScoreHistogramCallback
from objdet.training.callbacks.tide import TIDECallback

__all__ = [
    "AnomalyHeatmapCallback",
    "ConfusionMatrixCallback",
    "DetectionVisualizationCallback",
    "FailOnNoTrainBatches",
    "FigureCallback",
    "GradientMonitorCallback",
    "LearningRateMonitorCallback",
    "PCAVisualizationCallback",
    "PRCurveCallback",
    "ScoreHistogramCallback",
    "TIDECallback",
    "TrainingProgressCallback",
    "ValidationMetricCallback",
    "ValidationOutputsCallback",
    "batch_images",
    "figure_file_name",
    "log_figure",
    "logger_kind",
    "logging_step",
    "scalar_names",
]
