"""Predicted and ground-truth boxes on the first (or the worst) validation images, as a grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist

from objdet.ops.boxes import BOX_FORMATS
from objdet.plotting.images import plot_detections
from objdet.training.callbacks._base import (
    DETECTION_KEYS,
    DETECTION_OUTPUTS_HELP,
    ExtractFn,
    ValidationOutputsCallback,
)
from objdet.training.metrics.tide import TIDE

__all__ = ["DetectionVisualizationCallback"]


class _PackedMasks:
    """(N, H, W) bool masks kept as bits (8x smaller than bool) until they are drawn."""

    def __init__(self, masks: Any, where: str) -> None:
        value = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if value.ndim != 3:
            raise ValueError(f"`{where}['masks']` must have shape (N, H, W), got {tuple(value.shape)}")
        self.shape = tuple(int(n) for n in value.shape)
        self.bits = np.packbits(np.asarray(value > 0.5 if value.dtype != np.bool_ else value).reshape(-1))

    def unpack(self) -> torch.Tensor:
        count = int(np.prod(self.shape))
        return torch.from_numpy(np.unpackbits(self.bits, count=count).astype(bool).reshape(self.shape))


def _unpacked(item: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.unpack() if isinstance(v, _PackedMasks) else v) for k, v in item.items()}


class DetectionVisualizationCallback(ValidationOutputsCallback):
    """Draw predicted boxes (class and score) and ground-truth boxes on the first validation images.

    Reads ``outputs["preds"]`` and ``outputs["targets"]`` of ``validation_step`` (lists with
    one dict per image in the torchmetrics detection format: ``boxes`` (N, 4) in pixels,
    ``scores``, ``labels`` / ``boxes``, ``labels``) and the images from ``batch["images"]`` or
    ``batch[0]`` ((B, C, H, W) tensor or a list of (C, H, W) / (H, W, C) images), or whatever
    ``extract(outputs, batch)`` returns (keys ``preds``, ``targets``, optionally ``images``).
    Predictions below ``score_threshold`` are not drawn; at most ``max_detections`` per image.
    Where the dicts carry ``masks`` ((N, H, W) bool, the image's size) and ``draw_masks`` is on,
    the drawn detections' masks are filled in their class colour and the ground-truth masks are
    outlined; only the masks of what is drawn are kept, as bits (H x W / 8 bytes each).

    With ``choose="first"`` (default) the first ``num_samples`` images that rank 0 validates
    in the epoch are kept (CPU copies of those images and their boxes only) and drawn at the
    end of the epoch as one grid (see :func:`objdet.plotting.images.plot_detections`) logged
    under ``tag``. Other ranks only check their outputs. Nothing is kept between epochs.

    With ``choose="worst"`` the grid shows the ``num_samples`` worst images of the epoch, over
    every rank, worst first, each titled with its image (``image_id``, else its position in
    the epoch: rank 0's images first, then rank 1's, ...), its number of TIDE errors and its
    F1. An image's scores depend on that image alone, so each batch is scored as it passes,
    on the rank that validates it (by a private :class:`~objdet.training.metrics.TIDE` that
    never syncs) with :meth:`~objdet.training.metrics.TIDE.image_scores`; each rank keeps
    only its ``num_samples`` worst so far (CPU copies of at most ``num_samples`` images and
    their boxes). At the end of the epoch the ranks exchange the scores of what they kept
    (one ``all_gather_object`` of a few numbers per image), every rank picks the same
    ``num_samples`` worst, and the ranks that hold them send those images to rank 0 (one
    ``gather_object``): two collectives, at most ``num_samples`` images sent. The grid
    equals ``TIDE.worst_images(num_samples, by=worst_by, conf_threshold=...)`` of a TIDE
    that saw every rank's images, ties broken the same way (by ``image_id``, else by the
    position; an ``image_id`` repeated by the sampler's padding counts once). Scores use
    every detection (TIDE's ``max_detection_threshold`` best per image), not only those
    drawn.

    Args:
        num_samples: images per grid.
        score_threshold: smallest score drawn.
        class_names: names of the labels (sequence indexed by label, or ``{label: name}``).
        box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"`` (pixels).
        max_detections: most predictions drawn per image (highest scores).
        ncols: grid columns.
        draw_targets: draw the ground-truth boxes too.
        draw_masks: draw the ``masks`` of the outputs where they have them (for instance with
            ``tide_kwargs={"iou_type": "segm"}``, which also scores the images by mask IoU).
        choose: ``"first"`` (the first images) or ``"worst"`` (the worst images, see above).
        worst_by: with ``choose="worst"``: ``"errors"`` (most TIDE errors first, ties by lower
            F1) or ``"f1"`` (lowest F1 first, ties by more errors).
        conf_threshold: the confidence of the F1 (default ``score_threshold``).
        tide_kwargs: arguments of the scoring :class:`~objdet.training.metrics.TIDE`
            (``pos_threshold``, ``bg_threshold``, ``max_detection_threshold``).
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
        choose: Literal["first", "worst"] = "first",
        worst_by: Literal["errors", "f1"] = "errors",
        conf_threshold: float | None = None,
        tide_kwargs: Mapping[str, Any] | None = None,
        draw_masks: bool = True,
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
        self.draw_masks = bool(draw_masks)
        if choose not in ("first", "worst"):
            raise ValueError(f"`choose` must be 'first' or 'worst', got {choose!r}")
        if worst_by not in ("errors", "f1"):
            raise ValueError(f"`worst_by` must be 'errors' or 'f1', got {worst_by!r}")
        self.choose = choose
        self.worst_by = worst_by
        self.conf_threshold = self.score_threshold if conf_threshold is None else float(conf_threshold)
        self.tide_kwargs = dict(tide_kwargs or {})
        self._scorer: TIDE | None = None
        if choose == "worst":  # built here so that bad arguments fail at construction
            self._scorer = TIDE(box_format=box_format, sync_on_compute=False, **self.tide_kwargs)  # type: ignore[arg-type]
        self._images: list[Any] = []
        self._preds: list[dict[str, Any]] = []
        self._targets: list[dict[str, Any]] = []
        #: with ``choose="worst"``: per kept image (worst first) its sort key and its scores
        self._worst: list[tuple[tuple[float, float, int], dict[str, Any]]] = []
        self._seen = 0
        self._has_ids = True  # every target of the epoch had an image_id (so far)
        #: rank 0, after each drawn epoch: per drawn image ``{"image", "errors", "f1", ...}`` (worst mode)
        self.last_chosen: list[dict[str, Any]] = []

    def reset_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._images, self._preds, self._targets = [], [], []
        self._worst, self._seen, self._has_ids = [], 0, True

    def _keep_pred(self, pred: Mapping[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(pred, Mapping) or not all(k in pred for k in ("boxes", "scores", "labels")):
            seen = sorted(pred) if isinstance(pred, Mapping) else type(pred).__name__
            raise ValueError(f"`{where}` must be a dict with 'boxes', 'scores' and 'labels', got {seen}")
        scores = torch.as_tensor(pred["scores"]).detach()
        keep = torch.nonzero(scores.reshape(-1) >= self.score_threshold).reshape(-1)
        if keep.numel() > self.max_detections:  # only what can be drawn is copied
            keep = keep[scores.reshape(-1)[keep].topk(self.max_detections).indices]
        kept = {k: self.detach(torch.as_tensor(pred[k])[keep]) for k in ("boxes", "scores", "labels")}
        if self.draw_masks and pred.get("masks") is not None:
            kept["masks"] = _PackedMasks(torch.as_tensor(pred["masks"])[keep], where)
        return kept

    def _keep_target(self, target: Any, where: str) -> dict[str, Any]:
        if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
            seen = sorted(target) if isinstance(target, Mapping) else type(target).__name__
            raise ValueError(f"`{where}` must be a dict with 'boxes' and 'labels', got {seen}")
        kept = {k: self.detach(target[k]) for k in ("boxes", "labels")}
        if self.draw_masks and target.get("masks") is not None:
            kept["masks"] = _PackedMasks(target["masks"], where)
        return kept

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
        if self._scorer is not None:  # every rank scores its own images (see the class docstring)
            self._keep_worst(preds, targets, images)
            return
        if not trainer.is_global_zero:
            return
        for i in range(min(len(preds), self.num_samples - len(self._images))):
            self._preds.append(self._keep_pred(preds[i], f"preds[{i}]"))
            self._targets.append(self._keep_target(targets[i], f"targets[{i}]"))
            self._images.append(self.detach(images[i]))

    def _keep_worst(self, preds: Sequence[Any], targets: Sequence[Any], images: Any) -> None:
        """Score one batch's images (rank 0) and keep the ``num_samples`` worst so far."""
        scorer = self._scorer
        assert scorer is not None
        ids: list[int] | None = None
        if len(targets) and all(isinstance(t, Mapping) and "image_id" in t for t in targets):
            ids = [int(torch.as_tensor(t["image_id"]).reshape(())) for t in targets]
        self._has_ids = self._has_ids and (ids is not None or not len(targets))
        # without image_id the scorer's rows are the batch's images in order
        plain = [
            {k: v for k, v in t.items() if k != "image_id"} if isinstance(t, Mapping) else t for t in targets
        ]
        scorer.reset()
        scorer.update(preds, plain)  # checks the inputs; never syncs (sync_on_compute=False)
        scores = {k: v.numpy() for k, v in scorer.image_scores(self.conf_threshold).items()}
        scorer.reset()
        kept_ids = {entry["image"] for _, entry in self._worst} if ids is not None else set()
        for i in range(len(preds)):
            position = self._seen + i
            image = ids[i] if ids is not None else position
            if ids is not None and image in kept_ids:  # a copy (DistributedSampler padding): once
                continue
            errors, f1 = int(scores["errors"][i]), float(scores["f1"][i])
            primary = (-float(errors), f1) if self.worst_by == "errors" else (f1, -float(errors))
            key = (*primary, image)
            if len(self._worst) >= self.num_samples and key >= self._worst[-1][0]:
                continue
            entry: dict[str, Any] = {n: (float(v[i]) if n == "f1" else int(v[i])) for n, v in scores.items()}
            entry["image"] = image
            entry["_position"] = position
            entry["_data"] = (
                self.detach(images[i]),
                self._keep_pred(preds[i], f"preds[{i}]"),
                self._keep_target(targets[i], f"targets[{i}]"),
            )
            self._worst.append((key, entry))
            self._worst.sort(key=lambda item: item[0])
            del self._worst[self.num_samples :]
            kept_ids = {e["image"] for _, e in self._worst} if ids is not None else set()
        self._seen += len(preds)

    def _gather_worst(self, trainer: pl.Trainer) -> list[tuple[tuple[float, float, int], dict[str, Any]]]:
        """The ``num_samples`` worst over every rank, with their data, on rank 0 ([] on the others)."""
        local, self._worst = self._worst, []
        has_ids = self._has_ids
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return local
        world, rank = dist.get_world_size(), dist.get_rank()
        public = [(key, {k: v for k, v in e.items() if k != "_data"}) for key, e in local]
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, (public, self._seen, has_ids))
        # image ids where every rank that saw images had them, else positions (rank 0's first)
        use_ids = all(ids for kept, _, ids in everyone if kept)
        offsets = np.cumsum([0] + [seen for _, seen, _ in everyone])
        candidates = []
        for r, (kept, _, _) in enumerate(everyone):
            for i, (key, entry) in enumerate(kept):
                entry = dict(entry)
                if not use_ids:
                    entry["image"] = int(offsets[r]) + entry["_position"]
                candidates.append(((*key[:2], entry["image"]), r, i, entry))
        candidates.sort(key=lambda c: (c[0], c[1]))  # ties of one id: rank 0's copy first
        chosen, seen_images = [], set()
        for c in candidates:
            if c[3]["image"] in seen_images:
                continue
            seen_images.add(c[3]["image"])
            chosen.append(c)
            if len(chosen) == self.num_samples:
                break
        mine = [local[i][1]["_data"] for _, r, i, _ in chosen if r == rank]
        received: list[Any] | None = [None] * world if rank == 0 else None
        dist.gather_object(mine, received, dst=0)
        if rank != 0:
            return []
        assert received is not None
        taken = [0] * world
        out = []
        for key, r, _, entry in chosen:
            entry["_data"] = received[r][taken[r]]
            taken[r] += 1
            out.append((key, entry))
        return out

    def finish_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        images, preds, targets = self._images, self._preds, self._targets
        self._images, self._preds, self._targets = [], [], []
        labels: list[str] = []
        what = ""
        if self._scorer is not None:
            worst = self._gather_worst(trainer)
            for _, entry in worst:
                image, pred, target = entry.pop("_data")
                entry.pop("_position")
                images.append(image)
                preds.append(pred)
                targets.append(target)
                labels.append(f"image {entry['image']}: {entry['errors']} err, F1 {entry['f1']:.2f}")
            self.last_chosen = [entry for _, entry in worst] if trainer.is_global_zero else []
            what = f"worst {len(images)} by {'TIDE errors' if self.worst_by == 'errors' else 'F1'}, "
        if not images:
            return

        title = f"Validation detections — {what}epoch {trainer.current_epoch}, step {trainer.global_step}"

        def draw() -> Any:
            fig, axes = plot_detections(
                images,
                [_unpacked(p) for p in preds],
                [_unpacked(t) for t in targets] if self.draw_targets else None,
                class_names=self.class_names,
                score_threshold=self.score_threshold,
                box_format=self.box_format,
                max_detections=self.max_detections,
                ncols=self.ncols,
                title=title,
            )
            for ax, label in zip(np.asarray(axes).flat, labels, strict=False):  # after "#i  n det  m GT"
                ax.set_title(f"{ax.get_title(loc='left')} | {label}", fontsize=8, loc="left")
            return fig

        self.draw_and_log(trainer, draw)
