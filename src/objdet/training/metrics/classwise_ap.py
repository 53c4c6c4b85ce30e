"""Per-class COCO average precision at one IoU threshold (or averaged over 0.50:0.95)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from objdet.functional.coco import per_class_ap_ar
from objdet.training.metrics._errors import InputError
from objdet.training.metrics.mean_ap import MeanAveragePrecision


class ClasswiseAP(MeanAveragePrecision):
    """AP of every class, equal to pycocotools' per-category value (area all, maxDets 100).

    Shares the COCO engine of :class:`MeanAveragePrecision` (one matching pass for all
    classes, never one evaluation per class) and keeps only the lanes it needs: with one IoU
    threshold the state is one byte of flags per detection.

    Args:
        num_classes: labels must lie in 0..num_classes-1 (others raise ValueError).
        class_names: optional names (length num_classes); default ``class_<i>``.
        iou_threshold: IoU threshold of the AP; ``None`` averages 0.50:0.05:0.95 (COCO AP).
        box_format: "xyxy", "xywh" or "cxcywh".
        iou_type: keyword argument, "bbox" (default), "segm" (masks, see :class:`MeanAveragePrecision`),
            "keypoints" (OKS, maxDets 20 as pycocotools) or a tuple of them.

    ``compute()`` returns ``{"<name>_AP": value}`` for every class; a class without ground
    truth gets -1, as in pycocotools. With ``iou_type=("bbox", "segm")`` the keys get
    torchmetrics' prefixes: ``bbox_<name>_AP`` and ``segm_<name>_AP``.

    Example:
        >>> import torch
        >>> from objdet.training.metrics import ClasswiseAP
        >>> metric = ClasswiseAP(num_classes=2, class_names=["cat", "dog"])
        >>> preds = [dict(boxes=torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 90.0, 90.0]]),
        ...               scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 1]))]
        >>> target = [dict(boxes=torch.tensor([[12.0, 10.0, 50.0, 52.0]]), labels=torch.tensor([0]))]
        >>> metric.update(preds, target)
        >>> {k: round(v.item(), 3) for k, v in metric.compute().items()}
        {'cat_AP': 1.0, 'dog_AP': -1.0}
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        iou_threshold: float | None = 0.5,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        **kwargs: Any,
    ) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise InputError(f"`num_classes` must be a positive int, got {num_classes!r}")
        if class_names is not None:
            class_names = list(class_names)
            if len(class_names) != num_classes or not all(isinstance(n, str) for n in class_names):
                raise InputError(
                    f"`class_names` must be {num_classes} strings (one per class), got {len(class_names)}: "
                    f"{class_names[:5]}{'...' if len(class_names) > 5 else ''}"
                )
            if len(set(class_names)) != num_classes:
                raise InputError("`class_names` must be unique, they become the output keys")
        if iou_threshold is not None and not (
            isinstance(iou_threshold, int | float) and 0.0 <= float(iou_threshold) <= 1.0
        ):
            raise InputError(f"`iou_threshold` must be None or a float in [0, 1], got {iou_threshold!r}")
        super().__init__(
            box_format=box_format,
            iou_thresholds=None if iou_threshold is None else [float(iou_threshold)],
            **kwargs,
        )
        self.num_classes = num_classes
        self.class_names = class_names or [f"class_{i}" for i in range(num_classes)]
        self.iou_threshold = iou_threshold

    def _label_range(self) -> int | None:
        return self.num_classes

    def compute(self) -> dict[str, Tensor]:
        """``{"<name>_AP": AP}`` for every class, -1 for classes without ground truth."""
        out = {}
        for iou_type, prefix in self._prefixes.items():
            _, tables = self.coco_eval(full=False, iou_type=iou_type)
            max_dets = self._max_dets[iou_type]
            ap, _ = per_class_ap_ar(tables, max_dets, ap_max_det=self._ap_max_det(iou_type))
            values = torch.full((self.num_classes,), -1.0, dtype=torch.float64, device=self.device)
            values[tables.classes.long()] = ap
            out.update(
                {f"{prefix}{name}_AP": values[i].to(torch.float32) for i, name in enumerate(self.class_names)}
            )
        return out

    def plot(
        self,
        val: Any = None,
        ax: Any = None,
        kind: Literal["pr", "f1", "precision", "recall", "ap"] = "ap",
        iou_threshold: float | None = None,
        class_names: Sequence[str] | None = None,
    ) -> tuple[Any, Any]:
        """Per-class AP bars, sorted (``kind="ap"``, from ``val`` = a ``compute()`` result or the state).

        Other kinds draw the curves of :meth:`MeanAveragePrecision.plot` at ``iou_threshold``
        (default: this metric's threshold, 0.5 when it averages 0.50:0.95), with the class names.
        Returns ``(fig, ax)``.
        """
        from objdet.functional.curves import DetectionCurves
        from objdet.plotting.detection import plot_ap_bars

        names = list(class_names) if class_names is not None else self.class_names
        if kind == "ap" and not isinstance(val, list | DetectionCurves):
            values = val if isinstance(val, dict) else self.compute()
            prefix = next(iter(self._prefixes.values()))
            ap = [float(values[f"{prefix}{name}_AP"]) for name in self.class_names]
            at = "0.50:0.95" if self.iou_threshold is None else f"{self.iou_threshold:g}"
            sim = self._similarity()
            iou = f"{sim} 0.50:0.95" if self.iou_threshold is None else f"{sim} ≥ {at}"
            return plot_ap_bars(ap, names, ax=ax, xlabel=f"AP@{at}", title=f"AP per class ({iou})")
        return super().plot(val, ax, kind=kind, iou_threshold=iou_threshold, class_names=names)
