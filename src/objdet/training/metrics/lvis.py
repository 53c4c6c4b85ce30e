"""LVIS federated mean average precision, equal to the LVIS API (``lvis`` 0.5.3, ``LVISEval``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from objdet.functional.coco import CocoTables
from objdet.functional.lvis import frequency_index, lvis_result_keys, lvis_stat_names, lvis_summarize_np
from objdet.ops.lvis import pairs_in, top_per_image
from objdet.training.metrics._detection_inputs import FlatDetections
from objdet.training.metrics._errors import InputError
from objdet.training.metrics.classwise_ap import ClasswiseAP
from objdet.training.metrics.mean_ap import MeanAveragePrecision, _iou_types

_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def _category_list(value: Any, i: int, key: str, device: torch.device) -> Tensor:
    """A target's category list as (n,) int64: a 1-D integer (or integral float) tensor, or a list of ints."""
    where = f"target[{i}]['{key}']"
    if isinstance(value, Tensor):
        t = value
    elif isinstance(value, list | tuple) and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value
    ):
        t = torch.tensor([int(v) for v in value], dtype=torch.int64)
    else:
        raise InputError(
            f"{where} must be a 1-D integer tensor or a list of ints, got {type(value).__name__}"
        )
    if t.dim() > 1 or (t.dim() == 0 and isinstance(value, Tensor)):
        raise InputError(f"{where} must be 1-D (category ids), got shape {tuple(t.shape)}")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise InputError(f"{where} must hold integer category ids, got {t.tolist()[:5]}")
    elif t.dtype == torch.bool or t.is_complex():
        raise InputError(f"{where} must hold integer category ids, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.int64)
    if t.numel() and (bool((t < -(2**31)).any()) or bool((t >= 2**31).any())):
        raise InputError(f"{where}: category ids must fit in int32, got {t.tolist()[:5]}")
    return t


class LVISMeanAveragePrecision(MeanAveragePrecision):
    """LVIS federated mAP (bbox, segm) with the LVIS API's rules, a few bytes of state per detection.

    The same ``update(preds, target)`` inputs as :class:`MeanAveragePrecision`, and every
    target also carries the image's federated lists, ``neg_category_ids`` and
    ``not_exhaustive_category_ids`` (1-D integer tensors or lists of ints, in the labels'
    ids; an empty tensor for none; both are required). ``update()`` applies the rules of
    ``lvis`` 0.5.3 (``LVISResults`` and ``LVISEval``), then matches as COCO does and keeps the
    same compact state as :class:`MeanAveragePrecision` (no boxes, no masks, nothing per
    image but its record):

    * an image keeps its ``max_detections`` (300) best scored detections, across categories
      (equal scores: the earlier detection first), before anything else;
    * detections and GTs whose area is not in (0, inf) are left out (the LVIS API loads only
      annotations with ``0 < area < inf``); a GT's area is its given ``area`` when positive,
      else its box's (bbox) or its mask's (segm); a detection's area is its preds ``area``
      when given (:func:`objdet.io.load_lvis_dt` gives the LVIS API's: the box's where the
      result has a box), else its box's, else its mask's;
    * a detection whose category has no GT on the image and is not in the image's
      ``neg_category_ids`` is not evaluated on that image;
    * a detection of a category in ``not_exhaustive_category_ids`` that matches no GT (at an
      IoU threshold, in an area range) is ignored there: set in the packed ignored flags
      after matching;
    * matching is COCO's (greedy by score, IoU >= t, ignored GTs last, area ranges inclusive)
      with no crowd rule: LVIS has no crowd annotations, so ``iscrowd`` = 1 is an error;
      there is no per-(image, category) cap, only the per-image one.

    The summary is ``LVISEval.summarize``'s: AP over IoU 0.50:0.95, AP50, AP75, AP small /
    medium / large (COCO's area ranges), AP per frequency group and AR@300 (over all and per
    area range), under torchmetrics-style keys: ``map``, ``map_50``, ``map_75``,
    ``map_small``, ``map_medium``, ``map_large``, ``map_rare``, ``map_common``,
    ``map_frequent``, ``mar_300``, ``mar_small``, ``mar_medium``, ``mar_large``, then
    ``map_per_class`` / ``mar_300_per_class`` (with ``class_metrics``) and ``classes``.
    :meth:`lvis_results` gives the same numbers in float64 under the LVIS API's keys (``AP``,
    ``APr``, ``AR@300``, ...). The frequency groups come from ``frequencies`` (class id ->
    "r" / "c" / "f", as the ``frequency`` of LVIS' categories; :func:`objdet.io.load_lvis_gt`
    reads them); without it the three group APs are -1, and a class with GT missing from it
    is an error at compute time. Classes without GT give -1 and stay out of every mean.

    As in the LVIS API the images are all those updated (with or without GT or detections),
    score ties between images are broken by image id (give ``image_id``, see
    :class:`MeanAveragePrecision`), and the numbers are the LVIS API's to 1e-9 (tested).
    Everything else is inherited: both engines, DDP, ``image_id`` de-duplication,
    ``compute_slices()``, ``curves()``, ``calibration()``, ``plot()``. ``coco_eval()``
    returns the 13 LVIS numbers (in :meth:`lvis_results`' order) with the tables.

    State: with the 10 IoU thresholds and 4 area ranges, 23 bytes per kept detection (float64
    score, int32 class, a uint8 rank, clipped at 255: every kept detection counts at 300, and 5 +
    5 bytes of packed TP / ignored flags) plus 20 bytes per (image, category with GT) and 40
    per image; it does not grow with the number of categories (1203 for LVIS v1).

    Args:
        box_format: "xyxy", "xywh" or "cxcywh".
        iou_type: "bbox", "segm" or ("bbox", "segm") (keys then prefixed ``bbox_`` / ``segm_``).
        frequencies: class id -> "r", "c", "f" (or "rare", "common", "frequent"), a mapping or a
            sequence indexed by class id.
        max_detections: detections kept per image (the LVIS API's 300).
        class_metrics: also return ``map_per_class`` and ``mar_300_per_class``.
        extended_summary: also return the ``precision`` / ``recall`` / ``scores`` tables
            (M = 1, at ``max_detections``) and the ``ious``.
        engine: "auto", "compiled" or "torch", as :class:`MeanAveragePrecision`.
        slices: as :class:`MeanAveragePrecision`.

    Example:
        >>> import torch
        >>> from objdet.training.metrics import LVISMeanAveragePrecision
        >>> metric = LVISMeanAveragePrecision(box_format="xywh", frequencies={1: "r", 2: "f"})
        >>> box = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
        >>> preds = [dict(boxes=torch.cat([box, box + 40, box]), scores=torch.tensor([0.9, 0.8, 0.7]),
        ...               labels=torch.tensor([1, 1, 3]))]
        >>> target = [dict(boxes=box, labels=torch.tensor([1]), neg_category_ids=[2],
        ...                not_exhaustive_category_ids=[1])]
        >>> metric.update(preds, target)
        >>> out = metric.compute()
        >>> out["map"].item(), out["map_rare"].item(), out["map_frequent"].item()  # 2nd box ignored
        (1.0, 1.0, -1.0)
    """

    def __init__(
        self,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        iou_type: Literal["bbox", "segm"] | tuple[str, ...] = "bbox",
        frequencies: Mapping[int, str] | Sequence[str] | None = None,
        max_detections: int = 300,
        class_metrics: bool = False,
        extended_summary: bool = False,
        engine: Literal["auto", "compiled", "torch"] | None = None,
        slices: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if "keypoints" in _iou_types(iou_type):
            raise InputError(f"LVIS evaluates 'bbox' and 'segm', got iou_type={iou_type!r}")
        if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
            raise InputError(f"`max_detections` must be a positive int, got {max_detections!r}")
        super().__init__(
            box_format=box_format,
            iou_type=iou_type,
            class_metrics=class_metrics,
            extended_summary=extended_summary,
            engine=engine,
            slices=slices,
            **kwargs,
        )
        try:
            self.frequencies = None if frequencies is None else frequency_index(frequencies)
        except ValueError as err:
            raise InputError(str(err)) from None
        self.max_detections = max_detections
        # one max-detection value; every kept detection counts (the per-image cap bounds each
        # (image, class) group), so the uint8 rank state is clipped at 255 (see _adjust_flags)
        self.max_detection_thresholds = [max_detections]
        self._max_dets = {t: [max_detections] for t in self.iou_type}
        n_lanes = len(self.iou_thresholds) * 4
        lanes = np.packbits(np.ones(n_lanes, np.uint8), bitorder="little")
        self._all_lanes = torch.from_numpy(lanes)  # (B,) every lane's bit set
        self._not_exhaustive: Tensor | None = None  # per evaluated detection of the batch in update()

    # ------------------------------------------------------------------ update: federated rules
    def update(self, preds: Sequence[dict[str, Tensor]], target: Sequence[dict[str, Tensor]]) -> None:
        """Apply the LVIS rules to one batch, match, and keep the compact per-detection result.

        Args:
            preds: as :meth:`MeanAveragePrecision.update`.
            target: as :meth:`MeanAveragePrecision.update`, plus ``neg_category_ids`` and
                ``not_exhaustive_category_ids`` in every dict.
        """
        try:
            super().update(preds, target)
        finally:
            self._not_exhaustive = None

    def _select_batch(self, flat: FlatDetections, target: Sequence[dict[str, Any]]) -> FlatDetections:
        device = flat.det_score.device
        lists: dict[str, list[Tensor]] = {key: [] for key in _LISTS}
        for i, t in enumerate(target):
            for key in _LISTS:
                if key not in t:
                    raise InputError(
                        f"target[{i}] has no key '{key}' (LVIS needs 'neg_category_ids' and "
                        "'not_exhaustive_category_ids' in every target; an empty tensor for none)"
                    )
                lists[key].append(_category_list(t[key], i, key, device))
        if bool(flat.gt_crowd.any()):
            i = int(flat.gt_img[flat.gt_crowd][0])
            raise InputError(
                f"target[{i}]['iscrowd'] has crowd GTs: LVIS has no crowd annotations (expected 0)"
            )
        img_of = {
            key: torch.repeat_interleave(
                torch.arange(len(v), device=device),
                torch.tensor([x.numel() for x in v], dtype=torch.int64, device=device),
            )
            for key, v in lists.items()
        }
        cat_of = {
            key: torch.cat(v) if v else torch.zeros(0, dtype=torch.int64, device=device)
            for key, v in lists.items()
        }
        gt_area = self._lvis_gt_area(flat)
        gt_keep = (gt_area > 0) & (gt_area < float("inf"))
        det_area = self._lvis_det_area(flat)
        keep = top_per_image(flat.det_img, flat.det_score, self.max_detections)
        keep &= (det_area > 0) & (det_area < float("inf"))
        det_img, det_label = flat.det_img[keep], flat.det_label[keep]
        known = pairs_in(det_img, det_label, flat.gt_img[gt_keep], flat.gt_label[gt_keep])
        known |= pairs_in(det_img, det_label, img_of["neg_category_ids"], cat_of["neg_category_ids"])
        keep[keep.clone()] = known
        self._not_exhaustive = pairs_in(
            flat.det_img[keep],
            flat.det_label[keep],
            img_of["not_exhaustive_category_ids"],
            cat_of["not_exhaustive_category_ids"],
        )
        return _subset(flat, keep, gt_keep)

    @staticmethod
    def _lvis_det_area(flat: FlatDetections) -> Tensor:
        """The detection area the LVIS API filters on: preds' ``area``, else the box's, else the mask's."""
        if flat.det_xywh is not None:
            area = flat.det_xywh[:, 2] * flat.det_xywh[:, 3]
        elif flat.det_masks is not None:
            area = _mask_areas(flat.det_masks, flat.det_score.device)
        else:  # pragma: no cover - flatten_detections needs boxes or masks
            area = torch.ones_like(flat.det_score)
        if flat.det_area_given is not None:
            area = torch.where(torch.isnan(flat.det_area_given), area, flat.det_area_given)
        return area

    @staticmethod
    def _lvis_gt_area(flat: FlatDetections) -> Tensor:
        """The GT area the metric uses (given when positive, else the mask's with masks, else the box's)."""
        if flat.gt_masks is None:
            return flat.gt_area
        given = flat.gt_area_given if flat.gt_area_given is not None else flat.gt_area
        return torch.where(given > 0, given, _mask_areas(flat.gt_masks, given.device))

    def _adjust_flags(
        self, flat: FlatDetections, iou_type: str, rank: Tensor, tp: Tensor, ignored: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Unmatched detections of not-exhaustive categories: ignored at every lane where unmatched."""
        ne = self._not_exhaustive
        if ne is None or ne.shape[0] != tp.shape[0]:  # the per-image cap keeps every group within max_det
            raise RuntimeError("LVIS: the matcher dropped detections that the per-image cap kept")
        lanes = self._all_lanes.to(tp.device)
        ignored = ignored | ((~tp & lanes) * ne[:, None].to(torch.uint8))
        return rank.clamp(max=255), tp, ignored

    # ------------------------------------------------------------------ compute: LVIS summary
    def _groups_of(self, tables: CocoTables) -> np.ndarray | None:
        """(K,) frequency group of each class of the tables, -1 for classes without GT."""
        if self.frequencies is None:
            return None
        classes = tables.classes.cpu().tolist()
        has_gt = (tables.precision[0, 0, :, 0, -1] > -1).cpu().tolist() if len(classes) else []
        missing = [c for c, g in zip(classes, has_gt, strict=True) if g and c not in self.frequencies]
        if missing:
            raise InputError(
                f"`frequencies` has no frequency for class(es) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}, "
                "which have ground truth: give every class its 'r', 'c' or 'f'"
            )
        return np.array([self.frequencies.get(c, -1) for c in classes], np.int64)

    def _evaluate(self, full: bool, iou_type: str, order: Tensor | None) -> tuple[Tensor, CocoTables]:
        """The 13 LVIS numbers (float64, :meth:`lvis_results`' order) and the tables, on the synced state."""
        tables = self._tables("macro", full=full, prefix=self._prefixes[iou_type], order=order)
        if self._n_evaluated(order) == 0:
            return torch.full((13,), -1.0, dtype=torch.float64, device=self.device), tables
        stats = lvis_summarize_np(
            tables.precision.cpu().numpy(),
            tables.recall.cpu().numpy(),
            np.asarray(self.iou_thresholds, np.float64),
            self._groups_of(tables),
        )
        return torch.from_numpy(stats).to(self.device), tables

    def _stat_names(self, iou_type: str) -> tuple[str, ...]:
        return lvis_stat_names(self.max_detections)

    def _ap_max_det(self, iou_type: str) -> int:
        return self.max_detections

    def lvis_results(self, iou_type: str | None = None) -> dict[str, float]:
        """The LVIS API's ``LVISEval.results``: its 13 keys (``AP``, ..., ``APr``, ``AR@300``, ...), float64.

        On the state of every rank, as ``compute()`` sees it (under DDP call it on every rank).
        ``iou_type``: which evaluation (default: the first of ``iou_type``).
        """
        stats, _ = self.coco_eval(full=False, iou_type=iou_type)
        return dict(zip(lvis_result_keys(self.max_detections), stats.cpu().tolist(), strict=True))

    def bootstrap(self, *args: Any, **kwargs: Any) -> Any:
        """Not available for LVIS yet (the bootstrap resamples COCO's summary)."""
        raise NotImplementedError("LVISMeanAveragePrecision.bootstrap() is not available")


def _mask_areas(masks: list[Tensor], device: torch.device) -> Tensor:
    """Pixel count of every mask of a batch, images in order, float64."""
    if not masks:
        return torch.zeros(0, dtype=torch.float64, device=device)
    return torch.cat([m.flatten(1).sum(1) for m in masks]).to(device=device, dtype=torch.float64)


def _subset(flat: FlatDetections, det_keep: Tensor, gt_keep: Tensor) -> FlatDetections:
    """``flat`` with only the detections ``det_keep`` and the GTs ``gt_keep`` (images unchanged)."""
    if bool(det_keep.all()) and bool(gt_keep.all()):
        return flat

    def rows(x: Tensor | None, keep: Tensor) -> Tensor | None:
        return None if x is None else x[keep]

    def per_image(masks: list[Tensor] | None, img: Tensor, keep: Tensor) -> list[Tensor] | None:
        if masks is None:
            return None
        counts = torch.bincount(img, minlength=flat.n_images).tolist()
        return [m[k.to(m.device)] for m, k in zip(masks, keep.split(counts), strict=True)]

    return dataclasses.replace(
        flat,
        det_img=flat.det_img[det_keep],
        det_xywh=rows(flat.det_xywh, det_keep),
        det_score=flat.det_score[det_keep],
        det_label=flat.det_label[det_keep],
        det_area_given=rows(flat.det_area_given, det_keep),
        det_masks=per_image(flat.det_masks, flat.det_img, det_keep),
        gt_img=flat.gt_img[gt_keep],
        gt_xywh=rows(flat.gt_xywh, gt_keep),
        gt_label=flat.gt_label[gt_keep],
        gt_crowd=flat.gt_crowd[gt_keep],
        gt_area=flat.gt_area[gt_keep],
        gt_area_given=rows(flat.gt_area_given, gt_keep),
        gt_masks=per_image(flat.gt_masks, flat.gt_img, gt_keep),
    )


class LVISClasswiseAP(ClasswiseAP, LVISMeanAveragePrecision):
    """:class:`~objdet.training.metrics.ClasswiseAP` with the LVIS API's federated rules.

    ``compute()`` gives ``{"<name>_AP": value}`` per class (labels 0..num_classes-1, AP at
    ``iou_threshold``, or 0.50:0.95 with None), as the LVIS API's precision table gives it for
    that category (its 300 detections per image); targets carry ``neg_category_ids`` and
    ``not_exhaustive_category_ids`` as for :class:`LVISMeanAveragePrecision`, whose other
    arguments (``frequencies``, ``max_detections``, ...) it takes as keywords.

    Example:
        >>> import torch
        >>> from objdet.training.metrics import LVISClasswiseAP
        >>> metric = LVISClasswiseAP(num_classes=2, class_names=["cat", "dog"], box_format="xywh")
        >>> box = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
        >>> metric.update([dict(boxes=torch.cat([box, box + 30]), scores=torch.tensor([0.9, 0.8]),
        ...                     labels=torch.tensor([0, 1]))],
        ...               [dict(boxes=box, labels=torch.tensor([0]), neg_category_ids=torch.tensor([1]),
        ...                     not_exhaustive_category_ids=torch.tensor([], dtype=torch.long))])
        >>> {k: round(v.item(), 3) for k, v in metric.compute().items()}
        {'cat_AP': 1.0, 'dog_AP': -1.0}
    """
