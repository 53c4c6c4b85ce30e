"""Detection confusion matrix with a background class, as a ``torchmetrics.Metric``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric

from objdet.functional.confusion import (
    Normalize,
    confusion_precision_recall_f1,
    detection_confusion_cells,
    normalize_confusion_matrix,
)
from objdet.functional.image_records import segment_rows
from objdet.ops.boxes import BOX_FORMATS
from objdet.ops.confusion import MATCHING_MODES
from objdet.training.metrics._detection_inputs import flatten_detections
from objdet.training.metrics._errors import InputError
from objdet.training.metrics._images import (
    batch_fingerprints,
    batch_image_ids,
    image_records,
    images_to_evaluate,
)
from objdet.training.metrics._torchmetrics_compat import (
    ListStates,
    apply_keeping_dtypes,
    cat_state,
    fill_empty_list_states,
)


class ConfusionMatrix(Metric):
    """Detection confusion matrix (C + 1, C + 1): rows ground truth, columns predictions, C = background.

    In every image the detections with score >= ``conf_threshold`` are matched to the non-crowd
    GTs one-to-one, greedily by descending IoU over pairs with IoU >= ``iou_threshold`` (ties:
    higher score, then lower detection index, then lower GT index). With ``matching="agnostic"``
    (default) labels play no part in the matching; with ``"class_first"`` the same-class pairs
    are matched first, then the leftover detections to leftover GTs of other classes (same
    rule): a detection overlapping a GT of its class and, more, a GT of another class then
    counts as correct instead of confused (see :doc:`the guide </guide/confusion_matrix>`).
    A matched pair adds one at (GT class, detection class); an unmatched detection one at
    (C, detection class), a false positive; an unmatched GT one at (GT class, C), a false
    negative; [C, C] is 0. Crowd GTs (``iscrowd=1``) are neither counted nor matched, and an
    unmatched detection whose intersection with a crowd GT covers >= ``iou_threshold`` of its
    own area is dropped (COCO's crowd rule). So row i sums to the non-crowd GTs of class i and
    column j to the counted detections of class j.

    The state is the matrix itself (sum-reduced under DDP); matching runs in ``update()`` on
    the inputs' device, vectorised over the batch. With ``image_id`` in the targets (given for
    every image or for none) the state keeps each image's nonzero cells instead, and an id
    counts once, its first copy (rank 0's first under DDP), as in
    :class:`~objdet.training.metrics.MeanAveragePrecision`: the copies a
    ``DistributedSampler`` pads its shards with are not counted twice.

    Args:
        num_classes: C; labels must lie in 0..C-1.
        iou_threshold: minimum IoU of a match, in (0, 1].
        conf_threshold: minimum score of a counted detection (scores are used raw: any real value).
        class_names: optional C names, used by :meth:`plot`.
        box_format: "xyxy", "xywh" or "cxcywh".
        matching: "agnostic" or "class_first" (see above).

    Example:
        >>> import torch
        >>> from objdet.training.metrics import ConfusionMatrix
        >>> metric = ConfusionMatrix(num_classes=2)
        >>> preds = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30], [50.0, 50, 60, 60]]),
        ...               scores=torch.tensor([0.9, 0.8, 0.7]), labels=torch.tensor([0, 0, 1]))]
        >>> target = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [21.0, 20, 30, 30], [80.0, 80, 90, 90]]),
        ...                labels=torch.tensor([0, 1, 1]))]
        >>> metric.update(preds, target)
        >>> metric.compute()
        tensor([[1, 0, 0],
                [1, 0, 1],
                [0, 1, 0]])
        >>> {k: v.tolist() for k, v in metric.per_class_metrics().items()}
        {'precision': [0.5, 0.0], 'recall': [1.0, 0.0], 'f1': [0.6666666666666666, 0.0]}
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    if TYPE_CHECKING:  # for mypy only: TorchScript cannot read postponed (string) class annotations
        matrix: Tensor
        image_records: list[Tensor]
        cells: list[Tensor]

    def __init__(
        self,
        num_classes: int = 80,
        iou_threshold: float = 0.5,
        conf_threshold: float = 0.25,
        class_names: Sequence[str] | None = None,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        matching: Literal["agnostic", "class_first"] = "agnostic",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise InputError(f"`num_classes` must be a positive int, got {num_classes!r}")
        if not isinstance(iou_threshold, int | float) or not 0.0 < float(iou_threshold) <= 1.0:
            raise InputError(f"`iou_threshold` must be a float in (0, 1], got {iou_threshold!r}")
        if (
            not isinstance(conf_threshold, int | float)
            or isinstance(conf_threshold, bool)
            or math.isnan(conf_threshold)
        ):
            raise InputError(f"`conf_threshold` must be a real number (not NaN), got {conf_threshold!r}")
        if box_format not in BOX_FORMATS:
            raise InputError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")
        if matching not in MATCHING_MODES:
            raise InputError(f"`matching` must be one of {MATCHING_MODES}, got {matching!r}")
        if class_names is not None:
            class_names = list(class_names)
            if len(class_names) != num_classes or not all(isinstance(n, str) for n in class_names):
                raise InputError(
                    f"`class_names` must be {num_classes} strings (one per class), got {len(class_names)}"
                )
        self.num_classes = num_classes
        self.iou_threshold = float(iou_threshold)
        self.conf_threshold = float(conf_threshold)
        self.class_names = class_names
        self.box_format = box_format
        self.matching = matching
        size = num_classes + 1
        self.add_state("matrix", default=torch.zeros(size, size, dtype=torch.int64), dist_reduce_fx="sum")
        # per image, in the order seen (see _images): its id, a fingerprint of its inputs and its
        # number of nonzero cells; with ids, those cells (flat index, count), grouped by image
        self._list_states: ListStates = {"image_records": (torch.int64, (3,)), "cells": (torch.int64, (2,))}
        for name in self._list_states:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, preds: Sequence[dict[str, Tensor]], target: Sequence[dict[str, Tensor]]) -> None:
        """Match one batch of images and add its counts.

        Args:
            preds: one dict per image with ``boxes`` (N, 4), ``scores`` (N,), ``labels`` (N,).
            target: one dict per image with ``boxes`` (M, 4), ``labels`` (M,), optional ``iscrowd`` (M,)
                and ``image_id`` (an int; see the class docstring).
        """
        flat = flatten_detections(preds, target, self.box_format, num_classes=self.num_classes)
        assert flat.det_xywh is not None and flat.gt_xywh is not None  # boxes are required by default
        ids = batch_image_ids(flat, self.image_records)
        cells, images = detection_confusion_cells(
            flat.det_img,
            flat.det_label,
            flat.det_score,
            flat.det_xywh,
            flat.gt_img,
            flat.gt_label,
            flat.gt_xywh,
            flat.gt_crowd,
            self.num_classes,
            iou_threshold=self.iou_threshold,
            conf_threshold=self.conf_threshold,
            matching=self.matching,
        )
        n_cells = (self.num_classes + 1) ** 2
        per_image = torch.zeros(flat.n_images, dtype=torch.int64, device=ids.device)
        if flat.image_ids is None:
            self.matrix += torch.bincount(cells, minlength=n_cells).reshape(self.matrix.shape).to(self.matrix)
        else:  # nonzero cells per image, grouped by image
            image_cell, counts = torch.unique(images * n_cells + cells, return_counts=True)
            self.cells.append(torch.stack([image_cell % n_cells, counts], 1))
            per_image = torch.bincount(image_cell // n_cells, minlength=flat.n_images)
        self.image_records.append(image_records(ids, batch_fingerprints(flat), [per_image]))

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        fill_empty_list_states(self, self._list_states)
        super()._sync_dist(dist_sync_fn, process_group)  # type: ignore[arg-type]

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> torch.nn.Module:
        """``.to()`` / ``set_dtype()`` move the int64 counts and never recast them (they stay exact)."""
        this = super()._apply(fn, exclude_state=tuple(self._defaults))
        assert isinstance(this, Metric)
        apply_keeping_dtypes(this, fn, exclude_state)
        return this

    def compute(self) -> Tensor:
        """The int64 (C + 1, C + 1) matrix: rows ground truth, columns predictions, index C background."""
        records = cat_state(self, "image_records", self._list_states)
        order = images_to_evaluate(records)
        if order is None:
            return self.matrix.clone()
        cells = cat_state(self, "cells", self._list_states)[segment_rows(records[:, 2], order)]
        flat = torch.zeros(self.matrix.numel(), dtype=torch.int64, device=cells.device)
        flat.index_add_(0, cells[:, 0], cells[:, 1])
        return self.matrix + flat.reshape(self.matrix.shape).to(self.matrix.device)

    def normalized(self, normalize: Normalize = "true") -> Tensor:
        """The matrix in float64 normalised by true class (rows), predicted class (columns) or total.

        See :func:`objdet.functional.confusion.normalize_confusion_matrix`.
        """
        return normalize_confusion_matrix(self.compute(), normalize)

    def per_class_metrics(self) -> dict[str, Tensor]:
        """``{"precision", "recall", "f1"}``: float64 (C,) each at ``conf_threshold``, NaN where undefined.

        See :func:`objdet.functional.confusion.confusion_precision_recall_f1`.
        """
        return confusion_precision_recall_f1(self.compute())

    def plot(
        self,
        val: Tensor | None = None,
        ax: Any = None,
        normalize: Normalize | None = None,
        class_names: Sequence[str] | None = None,
    ) -> tuple[Any, Any]:
        """Draw the matrix (``val`` or the computed one); returns ``(fig, ax)`` like torchmetrics.

        Uses :func:`objdet.plotting.detection.plot_confusion_matrix` (``normalize``: None for
        counts, "true", "pred" or "all"); ``class_names`` defaults to the constructor's.
        """
        from objdet.plotting.detection import plot_confusion_matrix

        matrix = self.compute() if val is None else val
        names = class_names if class_names is not None else self.class_names
        details = f"IoU ≥ {self.iou_threshold:g}, score ≥ {self.conf_threshold:g}"
        if self.matching == "class_first":
            details += ", same class matched first"
        return plot_confusion_matrix(matrix, class_names=names, normalize=normalize, ax=ax, details=details)
