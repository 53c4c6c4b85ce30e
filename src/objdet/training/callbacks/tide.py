"""TIDE's error breakdown of every validated epoch: dAP scalars and the bar chart."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric

from objdet.functional.tide import MAIN_ERRORS, SPECIAL_ERRORS
from objdet.training.callbacks._base import (
    DETECTION_KEYS,
    DETECTION_OUTPUTS_HELP,
    ExtractFn,
    ValidationMetricCallback,
)
from objdet.training.metrics.tide import TIDE

__all__ = ["TIDECallback"]


class TIDECallback(ValidationMetricCallback):
    """Own a :class:`~objdet.training.metrics.TIDE` metric; log the dAP of each error type, draw the bars.

    Reads ``outputs["preds"]`` and ``outputs["targets"]`` of ``validation_step`` (lists with
    one dict per image in the torchmetrics detection format), or what ``extract(outputs,
    batch)`` returns. Each validation epoch but the sanity check:

    * every rank updates the metric and computes it (all ranks' images): ``last_values``;
    * every rank logs (``pl_module.log``), in AP points as tidecv prints them:
      ``{prefix}ap`` (tidecv's AP at the foreground IoU), ``{prefix}cls``, ``{prefix}loc``,
      ``{prefix}both``, ``{prefix}dupe``, ``{prefix}bkg``, ``{prefix}miss`` (main errors) and
      ``{prefix}fp``, ``{prefix}fn`` (special errors): ``val/tide/cls``, ...;
    * every ``every_n_epochs`` epochs rank 0 draws the bar chart
      (:func:`objdet.plotting.tide.plot_tide`) logged under ``{tag}``, files named
      ``<tag>_epoch<EEE>_step<SSSSSS>.png`` (see :func:`~objdet.training.callbacks.log_figure`).

    Args:
        pos_threshold: foreground IoU (0.5). bg_threshold: background IoU (0.1).
        box_format: "xyxy", "xywh" or "cxcywh".
        metric_kwargs: further arguments of :class:`~objdet.training.metrics.TIDE`
            (e.g. ``max_detection_threshold``).
        prefix: prefix of the logged scalars.
        compute_every_epoch: compute and log the scalars at every validation epoch (default),
            not only in the drawing ones.
        tag, every_n_epochs, save_dir, dpi, extract: see
            :class:`~objdet.training.callbacks.ValidationOutputsCallback`.

    Example:
        >>> import torch
        >>> from objdet.training import TIDECallback
        >>> cb = TIDECallback()
        >>> preds = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [52.0, 50, 62, 70]]),
        ...               scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 1]))]
        >>> target = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]),
        ...                labels=torch.tensor([0, 1]))]
        >>> cb.metric.update(preds, target)  # in a fit: from each validation batch's outputs
        >>> for key, value in cb.scalars(cb.metric.compute()).items():
        ...     print(f"{key:16s} {value:6.2f}")
        val/tide/ap       50.00
        val/tide/cls       0.00
        val/tide/loc      50.00
        val/tide/both      0.00
        val/tide/dupe      0.00
        val/tide/bkg       0.00
        val/tide/miss      0.00
        val/tide/fp        0.00
        val/tide/fn        0.00
    """

    required_keys = DETECTION_KEYS
    outputs_help = DETECTION_OUTPUTS_HELP

    def __init__(
        self,
        pos_threshold: float = 0.5,
        bg_threshold: float = 0.1,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        metric_kwargs: Mapping[str, Any] | None = None,
        prefix: str = "val/tide/",
        tag: str = "val/tide",
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
        self.pos_threshold = pos_threshold
        self.bg_threshold = bg_threshold
        self.box_format = box_format
        self.metric_kwargs = dict(metric_kwargs or {})
        self.prefix = prefix
        _ = self.metric  # builds the metric: bad arguments fail here

    def make_metric(self) -> Metric:
        return TIDE(
            pos_threshold=self.pos_threshold,
            bg_threshold=self.bg_threshold,
            box_format=self.box_format,
            **self.metric_kwargs,
        )

    def update_metric(self, metric: Metric, data: dict[str, Any]) -> None:
        metric.update(data["preds"], data["targets"])

    def draw(self, trainer: pl.Trainer, metric: Metric, values: Any) -> dict[str, Figure]:
        assert isinstance(metric, TIDE)
        fig, ax = metric.plot(values)
        ax.set_title(f"{ax.get_title()} — epoch {trainer.current_epoch}", fontsize=11)
        return {self.tag: fig}

    def scalars(self, values: Mapping[str, Tensor]) -> dict[str, float]:
        keys = ["ap", *(f"main_{k}" for k in MAIN_ERRORS), *(f"special_{k}" for k in SPECIAL_ERRORS)]
        keys = [k for k in keys if k in values]
        numbers = (
            torch.stack([values[k].detach().double().reshape(()) for k in keys]).tolist() if keys else []
        )
        names = [k.removeprefix("main_").removeprefix("special_") for k in keys]
        return {f"{self.prefix}{n}": v for n, v in zip(names, numbers, strict=True)}
