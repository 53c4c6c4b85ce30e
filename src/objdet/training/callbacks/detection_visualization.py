"""Predicted and ground-truth boxes on the first validation images, as a grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from objdet.ops.boxes import BOX_FORMATS
from objdet.plotting.images import plot_detections
from objdet.training.callbacks._base import (
    DETECTION_KEYS,
    DETECTION_OUTPUTS_HELP,
    ExtractFn,
    ValidationOutputsCallback,
)

__all__ = ["DetectionVisualizationCallback"]


class DetectionVisualizationCallback(ValidationOutputsCallback):
    """Draw predicted boxes (class and score) and ground-truth boxes on the first validation images.

    Reads ``outputs["preds"]`` and ``outputs["targets"]`` of ``validation_step`` (lists with
    one dict per image in the torchmetrics detection format: ``boxes`` (N, 4) in pixels,
    ``scores``, ``labels`` / ``boxes``, ``labels``) and the images from ``batch["images"]`` or
    ``batch[0]`` ((B, C, H, W) tensor or a list of (C, H, W) / (H, W, C) images), or whatever
    ``extract(outputs, batch)`` returns (keys ``preds``, ``targets``, optionally ``images``).
    Predictions below ``score_threshold`` are not drawn; at most ``max_detections`` per image.

    The first ``num_samples`` images that rank 0 validates in the epoch are kept (CPU copies of
    those images and their boxes only) and drawn at the end of the epoch as one grid (see
    :func:`objdet.plotting.images.plot_detections`) logged under ``tag``. Other ranks only
    check their outputs. Nothing is kept between epochs.

    Args:
        num_samples: images per grid.
        score_threshold: smallest score drawn.
        class_names: names of the labels (sequence indexed by label, or ``{label: name}``).
        box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"`` (pixels).
        max_detections: most predictions drawn per image (highest scores).
        ncols: grid columns.
        draw_targets: draw the ground-truth boxes too.
        tag, every_n_epochs, save_dir, dpi, extract: see :class:`ValidationOutputsCallback`.
    """

    required_keys = DETECTION_KEYS
    needs_images = True
    outputs_help = DETECTION_OUTPUTS_HELP

    def __init__(
        self,
        num_samples: int = 8,
        score_threshold: float = 0.5,
        class_names: Sequence[str] | Mapping[int, str] | None = None,
        box_format: str = "xyxy",
        max_detections: int = 50,
        ncols: int = 4,
        draw_targets: bool = True,
        tag: str = "val/detections",
        every_n_epochs: int = 1,
        save_dir: str | Path | None = None,
        dpi: float = 100,
        extract: ExtractFn | None = None,
    ) -> None:
        super().__init__(tag, extract=extract, every_n_epochs=every_n_epochs, save_dir=save_dir, dpi=dpi)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}")
        if box_format not in BOX_FORMATS:
            raise ValueError(f"`box_format` must be 'xyxy', 'xywh' or 'cxcywh', got {box_format!r}")
        self.num_samples = num_samples
        self.score_threshold = float(score_threshold)
        self.class_names = class_names
        self.box_format = box_format
        self.max_detections = max_detections
        self.ncols = ncols
        self.draw_targets = draw_targets
        self._images: list[Any] = []
        self._preds: list[dict[str, Any]] = []
        self._targets: list[dict[str, Any]] = []

    def reset_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._images, self._preds, self._targets = [], [], []

    def _keep_pred(self, pred: Mapping[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(pred, Mapping) or not all(k in pred for k in ("boxes", "scores", "labels")):
            seen = sorted(pred) if isinstance(pred, Mapping) else type(pred).__name__
            raise ValueError(f"`{where}` must be a dict with 'boxes', 'scores' and 'labels', got {seen}")
        scores = torch.as_tensor(pred["scores"]).detach()
        keep = torch.nonzero(scores.reshape(-1) >= self.score_threshold).reshape(-1)
        if keep.numel() > self.max_detections:  # only what can be drawn is copied
            keep = keep[scores.reshape(-1)[keep].topk(self.max_detections).indices]
        return {k: self.detach(torch.as_tensor(pred[k])[keep]) for k in ("boxes", "scores", "labels")}

    def update_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, data: dict[str, Any]) -> None:
        preds, targets, images = data["preds"], data["targets"], data["images"]
        if not isinstance(preds, Sequence) or not isinstance(targets, Sequence):
            raise ValueError(
                f"{type(self).__name__}: preds and targets must be lists with one dict per image, got "
                f"{type(preds).__name__} and {type(targets).__name__}"
            )
        if not len(preds) == len(targets) == len(images):
            raise ValueError(
                f"{type(self).__name__}: got {len(preds)} preds, {len(targets)} targets and {len(images)} "
                "images in one batch; expected one of each per image"
            )
        if not trainer.is_global_zero:
            return
        for i in range(min(len(preds), self.num_samples - len(self._images))):
            self._preds.append(self._keep_pred(preds[i], f"preds[{i}]"))
            target = targets[i]
            if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
                seen = sorted(target) if isinstance(target, Mapping) else type(target).__name__
                raise ValueError(f"`targets[{i}]` must be a dict with 'boxes' and 'labels', got {seen}")
            self._targets.append({k: self.detach(target[k]) for k in ("boxes", "labels")})
            self._images.append(self.detach(images[i]))

    def finish_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        images, preds, targets = self._images, self._preds, self._targets
        self._images, self._preds, self._targets = [], [], []
        if not images:
            return
        self.draw_and_log(
            trainer,
            lambda: plot_detections(
                images,
                preds,
                targets if self.draw_targets else None,
                class_names=self.class_names,
                score_threshold=self.score_threshold,
                box_format=self.box_format,
                max_detections=self.max_detections,
                ncols=self.ncols,
                title=f"Validation detections — epoch {trainer.current_epoch}, step {trainer.global_step}",
            )[0],
        )
