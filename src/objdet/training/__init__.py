"""Metrics and Lightning callbacks.

The callbacks are loaded on first access (``from objdet.training import
GradientMonitorCallback``), so that ``import objdet.training.metrics`` never imports Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from objdet.training.callbacks import (
        AnomalyHeatmapCallback as AnomalyHeatmapCallback,
    )
    from objdet.training.callbacks import (
        ConfusionMatrixCallback as ConfusionMatrixCallback,
    )
    from objdet.training.callbacks import (
        DetectionVisualizationCallback as DetectionVisualizationCallback,
    )
    from objdet.training.callbacks import (
        FailOnNoTrainBatches as FailOnNoTrainBatches,
    )
    from objdet.training.callbacks import (
        GradientMonitorCallback as GradientMonitorCallback,
    )
    from objdet.training.callbacks import (
        LearningRateMonitorCallback as LearningRateMonitorCallback,
    )
    from objdet.training.callbacks import (
        PCAVisualizationCallback as PCAVisualizationCallback,
    )
    from objdet.training.callbacks import (
        PRCurveCallback as PRCurveCallback,
    )
    from objdet.training.callbacks import (
        ScoreHistogramCallback as ScoreHistogramCallback,
    )
    from objdet.training.callbacks import (
        TIDECallback as TIDECallback,
    )
    from objdet.training.callbacks import (
        TrainingProgressCallback as TrainingProgressCallback,
    )

#: public name -> module under objdet.training.callbacks that defines it
_CALLBACKS = {
    "AnomalyHeatmapCallback": "anomaly_heatmap",
    "ConfusionMatrixCallback": "confusion_matrix",
    "DetectionVisualizationCallback": "detection_visualization",
    "FailOnNoTrainBatches": "fail_on_no_train_batches",
    "GradientMonitorCallback": "gradient_monitor",
    "LearningRateMonitorCallback": "lr_monitor",
    "PCAVisualizationCallback": "pca_visualization",
    "PRCurveCallback": "pr_curve",
    "ScoreHistogramCallback": "score_histogram",
    "TIDECallback": "tide",
    "TrainingProgressCallback": "progress",
}

__all__ = sorted(_CALLBACKS)


def __getattr__(name: str) -> Any:
    if name in _CALLBACKS:
        module = importlib.import_module(f"objdet.training.callbacks.{_CALLBACKS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_CALLBACKS])
