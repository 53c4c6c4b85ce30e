"""Detection confusion matrix of every validated epoch: counts on every rank, heatmap and P/R/F1 logged."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric

from objdet.functional.confusion import confusion_precision_recall_f1
from objdet.plotting.detection import plot_confusion_matrix
from objdet.training.callbacks._base import (
    DETECTION_KEYS,
    DETECTION_OUTPUTS_HELP,
    ExtractFn,
    ValidationMetricCallback,
    scalar_names,
)
from objdet.training.metrics.confusion_matrix import ConfusionMatrix

__all__ = ["ConfusionMatrixCallback"]


class ConfusionMatrixCallback(ValidationMetricCallback):
    """Own a detection :class:`~objdet.training.metrics.ConfusionMatrix`, fed from validation outputs.

    Reads ``outputs["preds"]`` and ``outputs["targets"]`` of ``validation_step`` (lists with
    one dict per image in the torchmetrics detection format; targets may carry ``iscrowd``),
    or what ``extract(outputs, batch)`` returns. Each validation epoch but the sanity check:

    * every rank updates the matrix and computes it (summed over ranks): ``last_values`` is the
      int64 (C + 1, C + 1) matrix, rows ground truth, columns predictions, index C background;
    * every ``every_n_epochs`` epochs rank 0 draws it
      (:func:`objdet.plotting.detection.plot_confusion_matrix`, counts or ``normalize``-d,
      thresholds and epoch in the title) and logs the figure under ``tag`` like every other
      figure callback (:func:`~objdet.training.callbacks.log_figure`): to each logger that
      takes figures (TensorBoard, W&B, MLflow), as a PNG
      ``<tag>_epoch<EEE>_step<SSSSSS>.png`` (``val_confusion_matrix_epoch003_step000119.png``)
      under the log directory of a logger that takes none (CSVLogger: ``<log_dir>/figures``),
      or under ``<default_root_dir>/figures`` without a logger; with ``save_dir`` the PNG is
      also (always) written there;
    * every rank logs (``pl_module.log``, so ModelCheckpoint / EarlyStopping can monitor them)
      the detector's precision, recall and F1 at ``conf_threshold`` over all classes
      (``{prefix}precision``, ``{prefix}recall``, ``{prefix}f1``: correct-class matches over
      counted detections, over GTs, and their harmonic mean) and, with ``log_per_class``,
      those of each class (``{prefix}precision_per_class/<name>``,
      ``{prefix}recall_per_class/<name>``, ``{prefix}f1_per_class/<name>``, see
      :meth:`~objdet.training.metrics.ConfusionMatrix.per_class_metrics`), where ``<name>`` is
      ``class_names[i]`` or ``class_<i>`` made safe by
      :func:`~objdet.training.callbacks.scalar_names`. No logged name is the folder of another
      (MLflow's file store cannot hold a metric ``a/b`` next to ``a/b/c``). An undefined value
      (precision of a class never predicted, recall of a class without GT) is not logged.

    Args:
        num_classes: C; labels must lie in 0..C-1.
        class_names: C names (figure and scalar names).
        save_dir: a directory that also gets every figure as PNG (None: see above).
        iou_threshold: minimum IoU of a match, in (0, 1].
        conf_threshold: minimum score of a counted detection.
        normalize: None (counts), "true" (rows sum to 1), "pred" (columns) or "all".
        matching: "agnostic" (default) or "class_first", passed to the metric (see
            :class:`~objdet.training.metrics.ConfusionMatrix`).
        every_n_epochs: draw every n validated epochs (always under ``trainer.validate``).
        compute_every_epoch: compute and log the scalars at every validation epoch (default),
            not only in the drawing ones (see
            :class:`~objdet.training.callbacks.ValidationMetricCallback`).
        box_format: "xyxy", "xywh" or "cxcywh".
        log_per_class: also log the per-class scalars.
        prefix: prefix of the logged scalars.
        tag, dpi, extract: see :class:`~objdet.training.callbacks.ValidationOutputsCallback`.

    Example:
        >>> import torch
        >>> from objdet.training import ConfusionMatrixCallback
        >>> cb = ConfusionMatrixCallback(num_classes=2, class_names=["cat", "dog"])
        >>> matrix = torch.tensor([[3, 1, 0], [0, 2, 1], [1, 0, 0]])  # what compute() returns
        >>> for key, value in cb.scalars(matrix).items():
        ...     print(f"{key:32s} {value:.3f}")
        val/cm/precision                 0.714
        val/cm/recall                    0.714
        val/cm/f1                        0.714
        val/cm/precision_per_class/cat   0.750
        val/cm/recall_per_class/cat      0.750
        val/cm/f1_per_class/cat          0.750
        val/cm/precision_per_class/dog   0.667
        val/cm/recall_per_class/dog      0.667
        val/cm/f1_per_class/dog          0.667
    """

    required_keys = DETECTION_KEYS
    optional_keys = ()
    outputs_help = DETECTION_OUTPUTS_HELP

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        save_dir: str | Path | None = None,
        iou_threshold: float = 0.5,
        conf_threshold: float = 0.25,
        normalize: Literal["true", "pred", "all"] | None = None,
        matching: Literal["agnostic", "class_first"] = "agnostic",
        every_n_epochs: int = 1,
        compute_every_epoch: bool = True,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        log_per_class: bool = True,
        prefix: str = "val/cm/",
        tag: str = "val/confusion_matrix",
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
        if normalize not in (None, "true", "pred", "all"):
            raise ValueError(f"`normalize` must be None, 'true', 'pred' or 'all', got {normalize!r}")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.iou_threshold = iou_threshold
        self.conf_threshold = conf_threshold
        self.normalize = normalize
        self.matching = matching
        self.box_format = box_format
        self.log_per_class = log_per_class
        self.prefix = prefix
        self._scalar_names: list[str] | None = None
        self.metric  # noqa: B018 - builds the metric now, so bad arguments fail here, not mid-run

    def make_metric(self) -> Metric:
        return ConfusionMatrix(
            num_classes=self.num_classes,
            iou_threshold=self.iou_threshold,
            conf_threshold=self.conf_threshold,
            class_names=self.class_names,
            box_format=self.box_format,
            matching=self.matching,
        )

    def update_metric(self, metric: Metric, data: dict[str, Any]) -> None:
        metric.update(data["preds"], data["targets"])

    def class_name(self, index: int) -> str:
        """``class_names[index]`` or ``class_<index>``."""
        return self.class_names[index] if self.class_names is not None else f"class_{index}"

    def scalar_name(self, index: int) -> str:
        """The ``<name>`` of class ``index`` in the per-class scalar names (see the class docstring)."""
        if self._scalar_names is None:
            self._scalar_names = scalar_names([self.class_name(i) for i in range(self.num_classes)])
        return self._scalar_names[index]

    def draw(self, trainer: pl.Trainer, metric: Metric, values: Tensor) -> Figure:
        same_first = ", same class matched first" if self.matching == "class_first" else ""
        details = (
            f"IoU ≥ {self.iou_threshold:g}, score ≥ {self.conf_threshold:g}{same_first}"
            f" — epoch {trainer.current_epoch}"
        )
        fig, _ = plot_confusion_matrix(
            values.cpu(), class_names=self.class_names, normalize=self.normalize, details=details
        )
        return fig

    def scalars(self, values: Tensor) -> dict[str, float]:
        m = values.cpu().double()
        c = m.shape[0] - 1
        tp = float(m.diagonal()[:c].sum())
        n_det, n_gt = float(m[:, :c].sum()), float(m[:c, :].sum())
        out: dict[str, float] = {}
        if n_det > 0:
            out[f"{self.prefix}precision"] = tp / n_det
        if n_gt > 0:
            out[f"{self.prefix}recall"] = tp / n_gt
        if n_det + n_gt > 0:
            out[f"{self.prefix}f1"] = 2 * tp / (n_det + n_gt)
        if self.log_per_class:
            per_class = {k: v.tolist() for k, v in confusion_precision_recall_f1(m).items()}
            for i in range(c):
                for stat in ("precision", "recall", "f1"):
                    value = per_class[stat][i]
                    if value == value:  # not NaN
                        out[f"{self.prefix}{stat}_per_class/{self.scalar_name(i)}"] = value
        return out
