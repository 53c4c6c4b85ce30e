"""TIDE error breakdown (Bolya et al., ECCV 2020) as a ``torchmetrics.Metric``, equal to ``tidecv``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from objdet.functional.image_records import NO_IMAGE_ID, segment_rows
from objdet.functional.tide import (
    MAIN_ERRORS,
    SPECIAL_ERRORS,
    TideResult,
    tide_errors_np,
    tide_image_scores_np,
    tide_label_error_rows_np,
    worst_image_order,
)
from objdet.ops.boxes import BOX_FORMATS
from objdet.ops.masks import mask_batch
from objdet.ops.tide_cpu import CLS, TYPE_MASK, tide_classify_np
from objdet.training.metrics._detection_inputs import flatten_detections
from objdet.training.metrics._errors import InputError
from objdet.training.metrics._images import (
    ID,
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

__all__ = ["TIDE"]

#: columns of the image records after id and fingerprint: kept detections, non-crowd GTs
_DETS, _GTS = 2, 3


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InputError(f"`{name}` must be a finite float, got {value!r}")
    return float(value)


class TIDE(Metric):
    """TIDE's error breakdown: the dAP of each error type, equal to the ``tidecv`` package's.

    Every detection that is not a true positive at IoU ``pos_threshold`` gets one error type
    (classification, localisation, both, duplicate, background) and every GT no detection
    found and no fixable error points at is *missed*; the dAP of a type is the AP after fixing
    every error of that type with the paper's oracle, minus the AP (clipped at 0). The special
    errors: ``fp`` (every false positive scored below every true positive: perfect precision)
    and ``fn`` (every unmatched GT removed: perfect recall). The rules, also where ``tidecv``
    departs from the paper, are in :mod:`objdet.ops.tide_cpu` and
    :doc:`the guide </guide/tide>`.

    The decisions are made in ``update()`` by a compiled kernel (:mod:`objdet.ops.tide_cpu`)
    on the CPU (inputs on another device are copied to the CPU for it, one host sync per
    update, and the state goes back to their device). The state holds no box: per kept
    detection its score (float64), class (int32), code byte, the class of the GT a
    classification error overlaps (int32) and its index in its image's ``preds`` (int32), 21
    bytes; per non-crowd GT its class and status byte, 5 bytes; per image one record of 4
    int64. ``compute()`` runs :func:`objdet.functional.tide.tide_errors_np` on the merged
    state (the same on every rank).

    With ``iou_type="segm"`` the IoU is that of the masks (tidecv's mask mode): ``preds`` and
    ``target`` carry ``masks`` (N, H, W) bool instead of boxes, and the IoU of every (detection,
    GT) pair of an image is computed in ``update()`` from the masks' pixels (on their device,
    as :class:`MeanAveragePrecision` does for ``"segm"``); a crowd GT counts as intersection
    over the detection's area, as pycocotools' ``iou`` with ``iscrowd``. The state is the same.

    The same state gives, per image, the number of errors of each type and the F1 at a
    confidence (:meth:`image_scores`, :meth:`worst_images`), and the label-error candidates
    (:meth:`label_error_candidates`: confident classification and background errors), all
    computed from the merged state. They need no state of their own: the per-image counts
    are O(images), like the image records, and the candidates are rows of the per-detection
    state; only what they return is cut to ``k`` / ``max_candidates``.

    ``image_id`` in the targets (given for every image or for none) counts each id once, its
    first copy (rank 0's first under DDP), and orders images by id; score ties across images
    are broken by that order (``tidecv``: by the order of the GT file's images).

    Args:
        pos_threshold: foreground IoU (0.5, the paper's): a detection is a true positive at
            IoU >= this value.
        bg_threshold: background IoU (0.1, the paper's), in [0, pos_threshold].
        max_detection_threshold: detections per image that take part, best scores first,
            over all classes (100, as tidecv on COCO).
        box_format: "xyxy", "xywh" or "cxcywh" (boxes only).
        iou_type: "bbox" (box IoU, tidecv's default) or "segm" (mask IoU).
        class_metrics: also return the per-class values (``classes``, ``ap_per_class``,
            ``main_<type>_per_class``, ``special_<type>_per_class``).
        class_names: optional names of the classes (for :meth:`plot` titles only).

    ``compute()`` returns float32 0-d tensors, in AP points (0-100) as tidecv prints them:
    ``ap`` (tidecv's AP at ``pos_threshold``), ``main_cls``, ``main_loc``, ``main_both``,
    ``main_dupe``, ``main_bkg``, ``main_miss``, ``special_fp``, ``special_fn``. :meth:`result`
    gives the float64 numbers and the error counts.

    Example:
        >>> import torch
        >>> from objdet.training.metrics import TIDE
        >>> metric = TIDE()
        >>> preds = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [52.0, 50, 62, 70], [200.0, 200, 210, 210]]),
        ...               scores=torch.tensor([0.9, 0.8, 0.7]), labels=torch.tensor([0, 1, 0]))]
        >>> target = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]),
        ...                labels=torch.tensor([0, 1]))]
        >>> metric.update(preds, target)
        >>> {k: round(v.item(), 2) for k, v in metric.compute().items()}  # doctest: +NORMALIZE_WHITESPACE
        {'ap': 50.0, 'main_cls': 0.0, 'main_loc': 50.0, 'main_both': 0.0, 'main_dupe': 0.0,
         'main_bkg': 0.0, 'main_miss': 0.0, 'special_fp': 0.0, 'special_fn': 0.0}
        >>> metric.result().counts["loc"], metric.result().counts["bkg"]
        (1, 1)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    if TYPE_CHECKING:  # for mypy only: TorchScript cannot read postponed (string) class annotations
        image_records: list[Tensor]
        det_scores: list[Tensor]
        det_labels: list[Tensor]
        det_codes: list[Tensor]
        det_fix_labels: list[Tensor]
        det_index: list[Tensor]
        gt_labels: list[Tensor]
        gt_status: list[Tensor]

    def __init__(
        self,
        pos_threshold: float = 0.5,
        bg_threshold: float = 0.1,
        max_detection_threshold: int = 100,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        iou_type: Literal["bbox", "segm"] = "bbox",
        class_metrics: bool = False,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(pos_threshold, bool) or not isinstance(pos_threshold, int | float):
            raise InputError(f"`pos_threshold` must be a float in (0, 1], got {pos_threshold!r}")
        if not 0.0 < float(pos_threshold) <= 1.0:
            raise InputError(f"`pos_threshold` must be a float in (0, 1], got {pos_threshold!r}")
        if isinstance(bg_threshold, bool) or not isinstance(bg_threshold, int | float):
            raise InputError(f"`bg_threshold` must be a float in [0, pos_threshold], got {bg_threshold!r}")
        if not 0.0 <= float(bg_threshold) <= float(pos_threshold):
            raise InputError(
                f"`bg_threshold` must be a float in [0, pos_threshold={pos_threshold}], got {bg_threshold!r}"
            )
        if (
            isinstance(max_detection_threshold, bool)
            or not isinstance(max_detection_threshold, int)
            or max_detection_threshold < 1
        ):
            raise InputError(
                f"`max_detection_threshold` must be a positive int, got {max_detection_threshold!r}"
            )
        if box_format not in BOX_FORMATS:
            raise InputError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")
        if iou_type not in ("bbox", "segm"):
            raise InputError(f"`iou_type` must be 'bbox' or 'segm', got {iou_type!r}")
        if not isinstance(class_metrics, bool):
            raise InputError(f"`class_metrics` must be a bool, got {class_metrics!r}")
        if class_names is not None:
            class_names = list(class_names)
            if not all(isinstance(n, str) for n in class_names):
                raise InputError("`class_names` must be a sequence of strings")
        self.pos_threshold = float(pos_threshold)
        self.bg_threshold = float(bg_threshold)
        self.max_detection_threshold = max_detection_threshold
        self.box_format = box_format
        self.iou_type = iou_type
        self.class_metrics = class_metrics
        self.class_names = class_names
        # per image, in the order seen: id, fingerprint, kept detections, non-crowd GTs (see _images);
        # then the rows of those, grouped by image
        self._list_states: ListStates = {
            "image_records": (torch.int64, (4,)),
            "det_scores": (torch.float64, ()),
            "det_labels": (torch.int32, ()),
            "det_codes": (torch.uint8, ()),
            "det_fix_labels": (torch.int32, ()),
            "det_index": (torch.int32, ()),
            "gt_labels": (torch.int32, ()),
            "gt_status": (torch.uint8, ()),
        }
        for name in self._list_states:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, preds: Sequence[dict[str, Tensor]], target: Sequence[dict[str, Tensor]]) -> None:
        """Classify the detections of one batch of images and keep their codes.

        Args:
            preds: one dict per image with ``boxes`` (N, 4) (``masks`` (N, H, W) bool with
                ``iou_type="segm"``), ``scores`` (N,), ``labels`` (N,).
            target: one dict per image with ``boxes`` (M, 4) (or ``masks`` (M, H, W)), ``labels``
                (M,), optional ``iscrowd`` (M,) and ``image_id`` (an int; see the class docstring).
        """
        segm = self.iou_type == "segm"
        flat = flatten_detections(preds, target, self.box_format, boxes=not segm, masks=segm)
        ids = batch_image_ids(flat, self.image_records)
        device = flat.det_score.device

        def cpu(t: Tensor) -> np.ndarray:
            return t.detach().cpu().numpy()

        def cpu_boxes(t: Tensor | None) -> np.ndarray | None:
            return None if t is None else cpu(t)

        pair_iou = None
        if segm:
            assert flat.det_masks is not None and flat.gt_masks is not None
            masks = mask_batch(flat.det_masks, flat.gt_masks)  # every pair of an image (any classes)
            crowd = flat.gt_crowd

            def pair_iou(pair_det: np.ndarray, pair_gt: np.ndarray) -> np.ndarray:
                index = (torch.from_numpy(pair_det).to(device), torch.from_numpy(pair_gt).to(device))
                return masks.pair_iou(*index, crowd).cpu().numpy()

        out = tide_classify_np(
            cpu(flat.det_img), cpu(flat.det_label), cpu(flat.det_score), cpu_boxes(flat.det_xywh),
            cpu(flat.gt_img), cpu(flat.gt_label), cpu_boxes(flat.gt_xywh), cpu(flat.gt_crowd), flat.n_images,
            self.pos_threshold, self.bg_threshold, self.max_detection_threshold, pair_iou=pair_iou,
        )  # fmt: skip

        def back(a: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.from_numpy(a).to(device=device, dtype=dtype)

        keep = back(out["keep"], torch.int64)
        det_img = cpu(flat.det_img)
        first_row = np.cumsum(np.bincount(det_img, minlength=flat.n_images)) - np.bincount(
            det_img, minlength=flat.n_images
        )
        index_in_image = out["keep"] - first_row[det_img[out["keep"]]]
        self.det_scores.append(flat.det_score[keep].to(torch.float64))
        self.det_labels.append(flat.det_label[keep].to(torch.int32))
        self.det_codes.append(back(out["code"], torch.uint8))
        self.det_fix_labels.append(back(out["fix_label"], torch.int32))
        self.det_index.append(back(index_in_image, torch.int32))
        self.gt_labels.append(flat.gt_label[back(out["gt_keep"], torch.int64)].to(torch.int32))
        self.gt_status.append(back(out["gt_status"], torch.uint8))
        counts = [back(out["det_count"], torch.int64), back(out["gt_count"], torch.int64)]
        self.image_records.append(image_records(ids, batch_fingerprints(flat), counts))

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        fill_empty_list_states(self, self._list_states)
        super()._sync_dist(dist_sync_fn, process_group)  # type: ignore[arg-type]

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> torch.nn.Module:
        """``.to()`` / ``set_dtype()`` move the state and never recast it (it stays exact)."""
        this = super()._apply(fn, exclude_state=tuple(self._defaults))
        assert isinstance(this, Metric)
        apply_keeping_dtypes(this, fn, exclude_state)
        return this

    def _table(self, name: str) -> Tensor:
        return cat_state(self, name, self._list_states)

    def result(self) -> TideResult:
        """The float64 numbers: AP, dAP of every type, per class, and the error counts.

        See :class:`objdet.functional.tide.TideResult`; reads the synced state, as ``compute()``.
        """
        from objdet.training.metrics._torchmetrics_compat import synced

        with synced(self):
            return self._result()

    def _evaluated(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The tables of the images that count, in evaluation order, and those images' records."""
        records = self._table("image_records")
        order = images_to_evaluate(records)
        tables = {name: self._table(name) for name in self._list_states if name != "image_records"}
        if order is not None:
            det_rows = segment_rows(records[:, _DETS], order)
            gt_rows = segment_rows(records[:, _GTS], order)
            for name in tables:
                tables[name] = tables[name][det_rows if name.startswith("det_") else gt_rows]
            records = records[order.to(records.device)]
        return {name: v.cpu().numpy() for name, v in tables.items()}, records.cpu().numpy()

    @staticmethod
    def _image_keys(records: np.ndarray) -> np.ndarray:
        """Each evaluated image's ``image_id``, or its position in the order seen when there are none."""
        if records.shape[0] and records[0, ID] == NO_IMAGE_ID:
            return np.arange(records.shape[0], dtype=np.int64)
        return records[:, ID].astype(np.int64)

    def _result(self) -> TideResult:
        t, _ = self._evaluated()
        return tide_errors_np(
            t["det_scores"],
            t["det_labels"],
            t["det_codes"],
            t["det_fix_labels"],
            t["gt_labels"],
            t["gt_status"],
        )

    def image_scores(self, conf_threshold: float = 0.5) -> dict[str, Tensor]:
        """Per image that counts (evaluation order): its TIDE errors and its F1 at ``conf_threshold``.

        Reads the synced state, as ``compute()`` (under DDP call it on every rank; copies of an
        ``image_id`` count once). Returns (N,) CPU tensors: ``image`` (the ``image_id``, or
        without ids the position in the order seen, under DDP rank 0's images first); int64
        ``cls``, ``loc``, ``both``, ``dupe``, ``bkg`` (detections of that type, every kept
        detection whatever its score), ``miss`` (missed GTs), ``errors`` (their sum); ``tp``,
        ``fp``, ``fn`` at ``conf_threshold`` and IoU ``pos_threshold`` and float64 ``f1``
        (rules: :func:`objdet.functional.tide.tide_image_scores_np`).

        Example:
            >>> import torch
            >>> from objdet.training.metrics import TIDE
            >>> metric = TIDE()
            >>> gt = dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))
            >>> good = dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), scores=torch.tensor([0.9]),
            ...             labels=torch.tensor([0]))
            >>> bad = dict(boxes=torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]),
            ...            scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([1, 0]))
            >>> metric.update([good, bad], [dict(gt, image_id=7), dict(gt, image_id=3)])
            >>> s = metric.image_scores()
            >>> s["image"].tolist(), s["cls"].tolist(), s["bkg"].tolist(), s["f1"].tolist()
            ([3, 7], [1, 0], [1, 0], [0.0, 1.0])
        """
        conf_threshold = _check_float("conf_threshold", conf_threshold)
        from objdet.training.metrics._torchmetrics_compat import synced

        with synced(self):
            t, records = self._evaluated()
        scores = tide_image_scores_np(
            t["det_scores"], t["det_codes"], records[:, _DETS], t["gt_status"], records[:, _GTS],
            conf_threshold,
        )  # fmt: skip
        out = {"image": torch.from_numpy(self._image_keys(records))}
        out.update({name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in scores.items()})
        return out

    def worst_images(
        self, k: int = 8, by: Literal["errors", "f1"] = "errors", conf_threshold: float = 0.5
    ) -> dict[str, Tensor]:
        """The ``k`` worst images, worst first: :meth:`image_scores`' rows for them.

        ``by="errors"``: most TIDE errors first, ties by lower F1; ``by="f1"``: lowest F1 at
        ``conf_threshold`` first, ties by more errors. Remaining ties go by evaluation order
        (ascending ``image_id``, or the order seen without ids). Fewer than ``k`` rows when
        fewer images were seen. Reads the synced state (under DDP call it on every rank).

        Example:
            >>> import torch
            >>> from objdet.training.metrics import TIDE
            >>> metric = TIDE()
            >>> gt = dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))
            >>> empty = dict(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0))
            >>> good = dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), scores=torch.tensor([0.9]),
            ...             labels=torch.tensor([0]))
            >>> metric.update([good, empty, good], [gt, gt, gt])
            >>> w = metric.worst_images(k=2)
            >>> w["image"].tolist(), w["errors"].tolist(), w["f1"].tolist()
            ([1, 0], [1, 0], [0.0, 1.0])
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"`k` must be a positive int, got {k!r}")
        if by not in ("errors", "f1"):
            raise InputError(f"`by` must be 'errors' or 'f1', got {by!r}")
        scores = self.image_scores(conf_threshold)
        rows = worst_image_order(scores["errors"].numpy(), scores["f1"].numpy(), by)[:k]
        index = torch.from_numpy(rows)
        return {name: v[index] for name, v in scores.items()}

    def label_error_candidates(self, min_score: float = 0.5, max_candidates: int = 1000) -> dict[str, Tensor]:
        """Confident detections that may point at a wrong or missing label, most confident first.

        Kept detections scored ``>= min_score`` that TIDE calls classification errors (IoU >=
        ``pos_threshold`` with a GT of another class, and not a localisation error of their own
        class, which TIDE tests first: a wrong GT label, or a wrong prediction) or background
        errors (no GT in the image, or IoU <= ``bg_threshold`` with every GT: perhaps an
        unlabelled object), crowd-covered ones left out; the ``max_candidates`` most confident
        (ties by evaluation order: images, then score order inside an image). Reads the
        synced state (under DDP call it on every rank; copies of an ``image_id`` count once).

        Returns (C,) CPU tensors: ``image`` (``image_id``, or the position in the order seen),
        ``det_index`` (the detection's index in that image's ``preds`` as given to
        ``update``), ``label``, ``score`` (float64), ``gt_label`` (the class of the GT it
        overlaps; -1 for a background error).

        Example:
            >>> import torch
            >>> from objdet.training.metrics import TIDE
            >>> metric = TIDE()
            >>> boxes = torch.tensor([[0.0, 0, 10, 10], [100.0, 100, 120, 120], [0.0, 0, 10, 10]])
            >>> preds = [dict(boxes=boxes, scores=torch.tensor([0.3, 0.6, 0.9]),
            ...               labels=torch.tensor([0, 2, 1]))]
            >>> metric.update(preds, [dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))])
            >>> c = metric.label_error_candidates(min_score=0.5)
            >>> c["det_index"].tolist(), c["label"].tolist(), c["gt_label"].tolist()
            ([2, 1], [1, 2], [0, -1])
        """
        min_score = _check_float("min_score", min_score)
        if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 0:
            raise InputError(f"`max_candidates` must be a non-negative int, got {max_candidates!r}")
        from objdet.training.metrics._torchmetrics_compat import synced

        with synced(self):
            t, records = self._evaluated()
        rows = tide_label_error_rows_np(t["det_scores"], t["det_codes"], min_score, max_candidates)
        det_image = np.repeat(self._image_keys(records), records[:, _DETS])
        is_cls = (t["det_codes"][rows] & TYPE_MASK) == CLS

        def i64(a: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, np.int64))

        return {
            "image": i64(det_image[rows]),
            "det_index": i64(t["det_index"][rows]),
            "label": i64(t["det_labels"][rows]),
            "score": torch.from_numpy(np.ascontiguousarray(t["det_scores"][rows], np.float64)),
            "gt_label": i64(np.where(is_cls, t["det_fix_labels"][rows], -1)),
        }

    def compute(self) -> dict[str, Tensor]:
        """``ap``, ``main_<type>``, ``special_<type>`` (float32 AP points), per class on request."""
        r = self._result()

        def f32(v: Any) -> Tensor:
            return torch.as_tensor(np.asarray(v, np.float64), device=self.device).to(torch.float32)

        out = {"ap": f32(r.ap)}
        out.update({f"main_{k}": f32(r.main[k]) for k in MAIN_ERRORS})
        out.update({f"special_{k}": f32(r.special[k]) for k in SPECIAL_ERRORS})
        if self.class_metrics:
            out["classes"] = torch.as_tensor(r.classes, device=self.device).to(torch.int32)
            out["ap_per_class"] = f32(r.ap_per_class)
            out.update({f"main_{k}_per_class": f32(r.main_per_class[k]) for k in MAIN_ERRORS})
            out.update({f"special_{k}_per_class": f32(r.special_per_class[k]) for k in SPECIAL_ERRORS})
        return out

    def plot(self, val: dict[str, Tensor] | None = None, ax: Any = None) -> tuple[Any, Any]:
        """TIDE's bar chart of ``val`` (default: ``compute()``); returns ``(fig, ax)`` like torchmetrics.

        Uses :func:`objdet.plotting.tide.plot_tide`.
        """
        from objdet.plotting.tide import plot_tide

        values = self.compute() if val is None else val
        kind = "mask" if self.iou_type == "segm" else "box"
        details = f"{kind} IoU fg {self.pos_threshold:g}, bg {self.bg_threshold:g}"
        if "ap" in values:
            details = f"AP{self.pos_threshold * 100:g} = {float(values['ap']):.2f}; " + details
        errors = {k: v for k, v in values.items() if k.startswith(("main_", "special_")) and v.ndim == 0}
        return plot_tide(errors, ax=ax, details=details)
