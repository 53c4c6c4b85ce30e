"""Anomaly score maps of validation samples: image, score overlay and thresholded mask per row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from objdet.plotting.anomaly import plot_anomaly_heatmap_grid
from objdet.training.callbacks._base import ExtractFn, ValidationOutputsCallback

__all__ = ["AnomalyHeatmapCallback"]


def _maps(value: Any, name: str, owner: str) -> Tensor:
    t = torch.as_tensor(value).detach()
    if t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 3:
        raise ValueError(
            f"{owner}: `{name}` must be (B, H, W) or (B, 1, H, W) maps, got shape {tuple(t.shape)}"
        )
    return t


class AnomalyHeatmapCallback(ValidationOutputsCallback):
    """Draw per-pixel anomaly scores of a few validation samples, one row per sample.

    Reads ``outputs["scores"]`` ((B, H, W) or (B, 1, H, W) raw score maps) and, if present,
    ``outputs["targets"]`` (binary ground-truth masks of the same size) of ``validation_step``
    (or what ``extract(outputs, batch)`` returns); the images, when available, from
    ``batch["images"]`` / ``batch[0]`` or an ``images`` key. Each row shows the image with the
    ground truth in cyan, the scores over it on a colour scale shared by all rows, and the
    mask ``score >= threshold`` with TP / FP / FN (see
    :func:`objdet.plotting.anomaly.plot_anomaly_heatmap_grid`).

    Rank 0 keeps CPU copies of ``num_samples`` samples of the epoch: with ``balance=True`` and
    targets, up to half of them (rounded up) with an anomaly and the rest without (filled from
    the other kind when one is short), else the first ones. Logged under ``tag``.

    Args:
        threshold: score threshold of the mask panel (raw scores, no sigmoid).
        num_samples: rows per figure.
        balance: mix anomalous and normal samples (needs targets).
        tag, every_n_epochs, save_dir, dpi, extract: see :class:`ValidationOutputsCallback`.
    """

    required_keys = ("scores",)
    optional_keys = ("targets",)
    needs_images = None
    outputs_help = (
        "Expected scores as (B, H, W) or (B, 1, H, W) raw anomaly maps and optionally targets as binary "
        "masks of the same shape."
    )

    def __init__(
        self,
        threshold: float = 0.5,
        num_samples: int = 4,
        balance: bool = True,
        tag: str = "val/anomaly_heatmaps",
        every_n_epochs: int = 1,
        save_dir: str | Path | None = None,
        dpi: float = 100,
        extract: ExtractFn | None = None,
    ) -> None:
        super().__init__(tag, extract=extract, every_n_epochs=every_n_epochs, save_dir=save_dir, dpi=dpi)
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}")
        self.threshold = float(threshold)
        self.num_samples = num_samples
        self.balance = balance
        self._samples: dict[bool, list[tuple[Tensor, Tensor | None, Any]]] = {False: [], True: []}

    def reset_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._samples = {False: [], True: []}

    def update_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, data: dict[str, Any]) -> None:
        owner = type(self).__name__
        scores = _maps(data["scores"], "scores", owner)
        targets = _maps(data["targets"], "targets", owner) if "targets" in data else None
        if targets is not None and targets.shape != scores.shape:
            raise ValueError(
                f"{owner}: `targets` has shape {tuple(targets.shape)}, expected the shape of `scores` "
                f"{tuple(scores.shape)}"
            )
        images = data.get("images")
        if images is not None and len(images) != scores.shape[0]:
            raise ValueError(
                f"{owner}: {len(images)} images for {scores.shape[0]} score maps; expected equal"
            )
        if not trainer.is_global_zero:
            return
        split = self.balance and targets is not None
        anomalous = targets.flatten(1).ne(0).any(1).tolist() if split and targets is not None else None
        for i in range(scores.shape[0]):
            kind = bool(anomalous[i]) if anomalous is not None else False
            bucket = self._samples[kind]
            if len(bucket) >= self.num_samples:
                continue
            bucket.append(
                (
                    self.detach(scores[i]),
                    None if targets is None else self.detach(targets[i]),
                    None if images is None else self.detach(images[i]),
                )
            )

    def _chosen(self) -> list[tuple[Tensor, Tensor | None, Any]]:
        anomalous, normal = self._samples[True], self._samples[False]
        if not anomalous:
            return normal[: self.num_samples]
        want = min(len(anomalous), max(self.num_samples - len(normal), (self.num_samples + 1) // 2))
        return anomalous[:want] + normal[: self.num_samples - want]

    def finish_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        chosen = self._chosen()
        self._samples = {False: [], True: []}
        if not chosen:
            return
        has_targets = all(t is not None for _, t, _ in chosen)
        has_images = all(im is not None for _, _, im in chosen)
        titles = []
        for k, (s, t, _) in enumerate(chosen):
            kind = "" if t is None else (" anomalous" if bool(t.ne(0).any()) else " normal")
            titles.append(f"#{k}{kind}\nmax {float(s.max()):.3g}")
        self.draw_and_log(
            trainer,
            lambda: plot_anomaly_heatmap_grid(
                [s for s, _, _ in chosen],
                images=[im for _, _, im in chosen] if has_images else None,
                targets=[t for _, t, _ in chosen] if has_targets else None,
                threshold=self.threshold,
                row_titles=titles,
                title=f"Anomaly heatmaps — epoch {trainer.current_epoch}",
            )[0],
        )
