"""COCO mean average precision: a drop-in for ``torchmetrics.detection.MeanAveragePrecision``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from objdet.functional.bootstrap import BootstrapResult, ImageWeightedState, bootstrap_intervals
from objdet.functional.calibration import DetectionCalibration, coco_state_calibration
from objdet.functional.coco import (
    CocoTables,
    coco_accumulate,
    coco_accumulate_torch,
    coco_summarize,
    contiguous_tables,
    default_iou_thresholds,
    default_rec_thresholds,
    per_class_ap_ar,
)
from objdet.functional.coco_params import (
    KEYPOINT_MAX_DETS,
    ap_max_det_for,
    area_ranges_for,
    similarity_for,
    stat_names_for,
)
from objdet.functional.compile_helper import start_if_cold
from objdet.functional.curves import DetectionCurves, coco_state_curves
from objdet.functional.image_records import segment_rows
from objdet.ops.boxes import BOX_FORMATS
from objdet.ops.coco import coco_gt_ignored, coco_match
from objdet.ops.coco_cpu import coco_match_cpu, gt_image_class_counts
from objdet.ops.keypoints import COCO_PERSON_SIGMAS, KeypointBatch, keypoint_extent_area
from objdet.ops.masks import MaskBatch, mask_batch
from objdet.training.metrics._detection_inputs import FlatDetections, flatten_detections
from objdet.training.metrics._errors import InputError
from objdet.training.metrics._images import (
    ID,
    batch_fingerprints,
    batch_image_ids,
    image_records,
    images_to_evaluate,
    pose_summary,
    read_slice_masks,
    slice_names,
)
from objdet.training.metrics._torchmetrics_compat import (
    ListStates,
    apply_keeping_dtypes,
    cat_state,
    fill_empty_list_states,
    last_max_det_ap,
    last_max_det_class_ap,
    resolve_grid,
    synced,
    warn_on_detection_counts,
)

_IOU_TYPES = ("bbox", "segm", "keypoints")

#: the engine of metrics created with ``engine=None`` (tests switch it to run both engines)
DEFAULT_ENGINE = "auto"


def _iou_types(value: Any) -> tuple[str, ...]:
    """``iou_type`` as torchmetrics reads it: "bbox", "segm" (or "keypoints"), or a tuple of them."""
    types = (value,) if isinstance(value, str) else value
    if (
        not isinstance(types, tuple | list)
        or not types
        or any(t not in _IOU_TYPES for t in types)
        or len(set(types)) != len(types)
    ):
        raise InputError(
            "Expected argument `iou_type` to be one of ('segm', 'bbox') or a tuple of, but got "
            f"{value!r} (objdet also takes 'keypoints'; no repeats)"
        )
    return tuple(types)


def _keypoint_sigmas(value: Any) -> Tensor:
    """``keypoint_sigmas`` as a float64 tensor: COCO's 17 person sigmas by default, else K values > 0."""
    if value is None:
        return torch.from_numpy(COCO_PERSON_SIGMAS.copy())
    try:
        sigmas = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"`keypoint_sigmas` must be a sequence of positive floats, got {value!r}") from None
    if sigmas.numel() == 0 or not bool(torch.isfinite(sigmas).all()) or bool((sigmas <= 0).any()):
        raise InputError(f"`keypoint_sigmas` must be a non-empty sequence of floats > 0, got {value!r}")
    return sigmas


def _slices_by_ids(slices: Any, declared: tuple[str, ...]) -> dict[str, Tensor]:
    """``compute_slices``' argument checked: {name: int64 ids}."""
    if slices is None:
        return {}
    if not isinstance(slices, Mapping):
        raise InputError(f"`slices` must map slice names to lists of image ids, got {type(slices).__name__}")
    out = {}
    for name, ids in slices.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"`slices` names must be non-empty strings, got {name!r}")
        if name in declared:
            raise InputError(f"slice {name!r} is already a slice of the metric (`slices=` at construction)")
        values = ids.tolist() if isinstance(ids, Tensor) else ids
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise InputError(f"`slices[{name!r}]` must be a list of image ids, got {type(ids).__name__}")
        values = list(values)
        if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in values):
            raise InputError(f"`slices[{name!r}]` must hold int image ids, got {values[:5]}")
        out[name] = torch.tensor(values, dtype=torch.int64)
    return out


def _float_list(value: Any, name: str) -> list[float] | None:
    if value is None:
        return None
    message = (
        f"Expected argument `{name}` to either be `None` or a non-empty list of floats but got {value!r}"
    )
    if not isinstance(value, list | tuple) or not value:
        raise InputError(message)
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise InputError(message) from None
    if any(not 0.0 <= v <= 1.0 for v in out):
        raise InputError(f"`{name}` values must lie in [0, 1], got {out}")
    return out


class MeanAveragePrecision(Metric):
    """COCO mAP/mAR for boxes and masks, equal to pycocotools COCOeval, a few bytes of state per detection.

    Same constructor, inputs and output keys as ``torchmetrics.detection.MeanAveragePrecision``:
    a user changes only the import. Matching runs in ``update()`` with the rules of pycocotools;
    the state keeps per detection only its score, class, rank in its (image, class) group and
    packed TP/ignored flags per (IoU threshold, area range), about 24 bytes with the default
    thresholds, never boxes and never masks: the state of a ``"segm"`` metric has the same size
    whatever the masks' resolution. Per image it keeps a 32-byte record and, per class of its
    GTs, 20 bytes of counts.

    Image ids: a target may carry ``image_id`` (an int or a one-element integer tensor), in
    every target dict or in none. With ids the images are evaluated in sorted id order, as
    pycocotools sorts ``imgIds`` (score ties between images are broken in that order), so the
    result does not depend on the update order or on how the data was sharded; and an id
    counts once, its first copy (rank 0's first under DDP): the copies a ``DistributedSampler``
    pads its shards with are not counted twice. A copy whose inputs differ from the first gives
    a warning at compute time. Without ids images are numbered in update order (under DDP:
    rank 0's, then rank 1's, ...), which only matters for ties in score between images, and
    every image counts, copies included.

    Masks (``iou_type="segm"``): ``masks`` (N, H, W) in preds and target, bool (or 0/1 values),
    the detections' and GTs' masks of one image of the same size; ``boxes`` are then not needed.
    Mask IoUs are exact pixel counts (see :func:`objdet.ops.mask_iou`), equal to pycocotools'
    RLE IoUs; a crowd GT uses intersection / detection mask area. A GT's area is its positive
    ``area`` if given, else its mask's pixel count; a detection's area is its mask's pixel count
    (pycocotools' ``loadRes``). With ``iou_type=("bbox", "segm")`` both evaluations run on the
    same inputs with independent states and the output keys get torchmetrics' prefixes
    (``bbox_map``, ``segm_map``, ..., ``bbox_map_per_class``, ``segm_ious``, ...; ``classes``
    stays unprefixed); as in torchmetrics, the default GT area is then the mask area for both
    (as in COCO annotation files, whose ``area`` is the segmentation's). Unlike torchmetrics'
    ``segm``, images without GT masks still count (their detections are false positives), as in
    pycocotools.

    Detection areas only decide which unmatched detections an area range ignores. pycocotools
    takes them from its ``loadRes``: the box area when the results carry boxes (also for
    ``segm``), else the mask area. An optional ``area`` (N,) in preds (an extension; torchmetrics
    ignores that key) sets them, so that :func:`objdet.io.load_coco_dt` reproduces pycocotools on
    result files; without it a detection's area is its box's (bbox) or its mask's (segm).

    Boxes are converted to xywh in the input's precision, as torchmetrics does, then matched in
    float64 with pycocotools' formula: float64 inputs give pycocotools' numbers, float32 inputs
    torchmetrics' numbers.

    As torchmetrics: the states are not in ``state_dict()`` unless ``metric.persistent(True)``;
    ``torch.jit.script(metric)`` works; ``set_dtype(...)`` / ``.to(dtype)`` keep the state
    exact (it moves, it is never recast; results stay float32); ``coco_eval()``, ``curves()``
    and ``plot()`` see the state of every rank, as ``compute()`` does (call them on every rank);
    bad arguments raise an error that is a ``ValueError`` (and a ``TypeError``);
    ``warn_on_many_detections`` (an attribute, default True) warns when an image has more than
    ``max_detection_thresholds[-1]`` detections; ``coco_to_tm`` reads COCO files into inputs
    (see :func:`objdet.io.coco_to_tm`). ``backend`` chooses the summary rule only: with
    "pycocotools" (the default) ``map`` and ``map_per_class`` are read at maxDets = 100, as
    pycocotools does, so they are -1 when 100 is not in ``max_detection_thresholds``; with
    "faster_coco_eval" they are read at the last max-detection threshold, as faster-coco-eval
    (and torchmetrics with that backend) does. The evaluation itself is objdet's either way.

    Documented departures from torchmetrics, each where pycocotools says otherwise or the
    bounded state forbids it:

    * The default IoU and recall grids are pycocotools' float64 grids; torchmetrics' float32
      grids (``torch.linspace(0.5, 0.95, 10)``, also their float32 rounding) passed as
      ``iou_thresholds`` / ``rec_thresholds`` count as the defaults (an IoU of exactly 0.55
      then matches at 0.55, as in pycocotools).
    * Images without GT still count (their detections are false positives), as in pycocotools.
    * ``segm``: an image with GT masks and no predicted mask gives 0, not -1 (pycocotools).
    * ``tm_to_coco(name)`` raises: the state keeps no boxes or masks;
      :func:`objdet.io.tm_to_coco` writes the same files from the inputs.
    * Under DDP, without ``image_id``, images are numbered rank after rank (torchmetrics
      interleaves them and needs equal counts per rank; it has no image ids); labels must fit
      in int32; a negative ``area`` is an error
      (torchmetrics silently uses the box area).

    torchmetrics' own test module (v1.9.0 ``tests/unittests/detection/test_map.py``, see
    ``tests/peer/torchmetrics_map.py``), its imports of ``MeanAveragePrecision`` and of the
    functional ``mean_average_precision`` switched to objdet's: 112 passed, 10 skipped (need
    CUDA), 6 failed: 4 call ``tm_to_coco`` (no boxes in the state to write); 2 expect -1 for a
    ``segm`` image without predicted masks (pycocotools gives 0). (With only the class import
    switched, the 18 tests of torchmetrics' functional form fail too: it needs torchvision.)

    Args:
        box_format: "xyxy", "xywh" or "cxcywh".
        iou_type: "bbox", "segm" or ("bbox", "segm").
        iou_thresholds: IoU thresholds (default 0.50:0.05:0.95).
        rec_thresholds: recall points (default 0:0.01:1).
        max_detection_thresholds: three increasing ints (default [1, 10, 100]).
        class_metrics: also return ``map_per_class`` and ``mar_{maxdet}_per_class``.
        extended_summary: also return the ``precision`` (T, R, K, A, M), ``recall`` (T, K, A, M)
            and ``scores`` tables.
        average: "macro" (mean over classes) or "micro" (all classes pooled as one).
        backend: "pycocotools" or "faster_coco_eval" (torchmetrics' argument; accepted, the
            numbers are pycocotools' either way).
        engine: "auto" (default): the compiled engine (:mod:`objdet.ops.coco_cpu`) for CPU
            inputs, torch kernels on other devices; "compiled": CPU inputs only; "torch": the
            torch kernels everywhere. All give the same numbers (tested against each other and
            against pycocotools).
        slices: names of subsets of the images (at most 63) that ``compute_slices()``
            evaluates; a target's optional ``slices`` (a set of these names, or a bool mask over
            them) says which the image belongs to. An image's tags cost no extra bytes per
            detection (one int64 per image).

    Example:
        >>> import torch
        >>> from objdet.training.metrics import MeanAveragePrecision
        >>> preds = [dict(boxes=torch.tensor([[258.0, 41.0, 606.0, 285.0]]),
        ...               scores=torch.tensor([0.536]), labels=torch.tensor([0]))]
        >>> target = [dict(boxes=torch.tensor([[214.0, 41.0, 562.0, 285.0]]), labels=torch.tensor([0]))]
        >>> metric = MeanAveragePrecision()
        >>> metric.update(preds, target)
        >>> result = metric.compute()
        >>> round(result["map"].item(), 4), round(result["map_50"].item(), 4)
        (0.6, 1.0)

        With masks:

        >>> gt_mask = torch.zeros(1, 10, 10, dtype=torch.bool); gt_mask[0, 2:8, 2:8] = True
        >>> det_mask = torch.zeros(1, 10, 10, dtype=torch.bool); det_mask[0, 2:8, 3:8] = True
        >>> segm = MeanAveragePrecision(iou_type=("bbox", "segm"), box_format="xywh")
        >>> segm.update([dict(masks=det_mask, boxes=torch.tensor([[3.0, 2.0, 5.0, 6.0]]),
        ...                   scores=torch.tensor([0.9]), labels=torch.tensor([0]))],
        ...             [dict(masks=gt_mask, boxes=torch.tensor([[2.0, 2.0, 6.0, 6.0]]),
        ...                   labels=torch.tensor([0]))])
        >>> out = segm.compute()  # mask IoU 30 / 36
        >>> round(out["segm_map"].item(), 4), round(out["bbox_map_75"].item(), 4)
        (0.7, 1.0)
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0
    # torchmetrics' switch (an attribute, set after construction): warn in update() when an image
    # has more than max_detection_thresholds[-1] detections
    warn_on_many_detections = True
    if TYPE_CHECKING:  # for mypy only: TorchScript cannot read postponed (string) class annotations
        n_images: Tensor
        image_records: list[Tensor]
        seen_labels: list[Tensor]
        ious_index: list[Tensor]
        ious_values: list[Tensor]
        ious_updates: list[Tensor]

    def __init__(
        self,
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        iou_type: Literal["bbox", "segm", "keypoints"] | tuple[str, ...] = "bbox",
        iou_thresholds: list[float] | None = None,
        rec_thresholds: list[float] | None = None,
        max_detection_thresholds: list[int] | None = None,
        class_metrics: bool = False,
        extended_summary: bool = False,
        average: Literal["macro", "micro"] = "macro",
        backend: str = "pycocotools",
        engine: Literal["auto", "compiled", "torch"] | None = None,
        slices: Sequence[str] | None = None,
        keypoint_sigmas: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slices = slice_names(slices)
        chosen = DEFAULT_ENGINE if engine is None else engine
        if chosen not in ("auto", "compiled", "torch"):
            raise InputError(f"`engine` must be 'auto', 'compiled' or 'torch', got {chosen!r}")
        self.engine = chosen
        if box_format not in BOX_FORMATS:
            raise InputError(
                f"Expected argument `box_format` to be one of {BOX_FORMATS} but got {box_format!r}"
            )
        iou_types = _iou_types(iou_type)
        if max_detection_thresholds is not None:
            if isinstance(max_detection_thresholds, list | tuple) and len(max_detection_thresholds) != 3:
                raise InputError(
                    "When providing a list of max detection thresholds it should have length 3. "
                    f"Got value {len(max_detection_thresholds)} "
                    f"(`max_detection_thresholds`={list(max_detection_thresholds)!r})"
                )
            if not isinstance(max_detection_thresholds, list | tuple) or not all(
                isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in max_detection_thresholds
            ):
                raise InputError(
                    "Expected argument `max_detection_thresholds` to either be `None` or a list of 3 "
                    f"positive ints but got {max_detection_thresholds!r}"
                )
        for name, flag in (("class_metrics", class_metrics), ("extended_summary", extended_summary)):
            if not isinstance(flag, bool):
                raise InputError(f"Expected argument `{name}` to be a boolean, got {flag!r}")
        if average not in ("macro", "micro"):
            raise InputError(
                f"Expected argument `average` to be one of ('macro', 'micro') but got {average!r}"
            )
        if backend not in ("pycocotools", "faster_coco_eval"):
            raise InputError(
                "Expected argument `backend` to be one of ('pycocotools', 'faster_coco_eval') "
                f"but got {backend!r}"
            )

        self.box_format = box_format
        self.iou_type = iou_types  # a tuple, as torchmetrics stores it
        # state and output key prefix per IoU type: none for one type, torchmetrics' "bbox_" / "segm_" for two
        self._prefixes = {t: "" if len(iou_types) == 1 else f"{t}_" for t in iou_types}
        # torchmetrics' float32 default grids (torch.linspace) mean pycocotools' float64 ones
        self.iou_thresholds = resolve_grid(
            _float_list(iou_thresholds, "iou_thresholds"), default_iou_thresholds(), 0.5, 0.95
        )
        self.rec_thresholds = resolve_grid(
            _float_list(rec_thresholds, "rec_thresholds"), default_rec_thresholds(), 0.0, 1.0
        )
        if any(b < a for a, b in zip(self.rec_thresholds[:-1], self.rec_thresholds[1:], strict=True)):
            raise InputError(f"`rec_thresholds` must be in increasing order, got {self.rec_thresholds}")
        self.max_detection_thresholds = sorted(max_detection_thresholds or [1, 10, 100])
        self.class_metrics = class_metrics
        self.extended_summary = extended_summary
        self.average = average
        self.backend = backend
        self._iou_thr_np = np.asarray(self.iou_thresholds, dtype=np.float64)
        self.keypoint_sigmas = _keypoint_sigmas(keypoint_sigmas)
        # per IoU type, pycocotools' parameters: area ranges and max detections (keypoints: their own)
        self._area_ranges = {t: area_ranges_for(t) for t in iou_types}
        self._max_dets = {
            t: list(KEYPOINT_MAX_DETS) if t == "keypoints" else self.max_detection_thresholds
            for t in iou_types
        }
        self._type_of = {p: t for t, p in self._prefixes.items()}  # state prefix -> IoU type
        self._modes = (
            ["macro"] if average == "macro" else (["micro", "macro"] if class_metrics else ["micro"])
        )
        # state name -> (dtype, trailing shape), used to give ranks without updates empty tensors.
        self._list_states: ListStates = {}
        # the evaluations (state name prefixes), in the order of their columns in the image records
        self._groups = [f"{p}{mode}" for p in self._prefixes.values() for mode in self._modes]
        # per image, in the order seen (see _images): its `image_id`, a fingerprint of its inputs,
        # then per evaluation its rows in the detection table and in the GT table, then (with
        # `slices`) the bit mask of the slices it belongs to
        self._slice_column = 2 + 2 * len(self._groups)
        n_columns = self._slice_column + (1 if self.slices else 0)
        self._list_states["image_records"] = (torch.int64, (n_columns,))
        if average == "micro":  # classes are pooled in the state; remember which were seen
            self._list_states["seen_labels"] = (torch.int64, ())
        for t, p, mode in ((t, p, mode) for t, p in self._prefixes.items() for mode in self._modes):
            n_areas = len(self._area_ranges[t])
            n_bytes = (len(self.iou_thresholds) * n_areas + 7) // 8
            # rank in its (image, class) group < maxDets[-1]; gloo gathers uint8 and int32, not int16
            rank_dtype = torch.uint8 if self._max_dets[t][-1] <= 256 else torch.int32
            self._list_states.update(
                {
                    f"{p}{mode}_scores": (torch.float64, ()),
                    f"{p}{mode}_labels": (torch.int32, ()),
                    f"{p}{mode}_rank": (rank_dtype, ()),
                    f"{p}{mode}_tp": (torch.uint8, (n_bytes,)),
                    f"{p}{mode}_ignored": (torch.uint8, (n_bytes,)),
                    # one row per (image, class) of the GTs
                    f"{p}{mode}_gt_labels": (torch.int32, ()),
                    f"{p}{mode}_gt_counts": (torch.int32, (n_areas,)),
                }
            )
        for p in self._prefixes.values() if extended_summary else ():
            # the IoU blocks of pycocotools' `ious` (opt-in: this state grows with D x G)
            self._list_states.update(
                {
                    f"{p}ious_values": (torch.float32, ()),
                    f"{p}ious_index": (torch.int64, (4,)),  # image in its update, class, n_det, n_gt
                    f"{p}ious_updates": (torch.int64, (2,)),  # per update: images, rows of ious_index
                }
            )
        for name in self._list_states:
            self.add_state(name, default=[], dist_reduce_fx="cat", persistent=False)
        self.add_state(
            "n_images", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum", persistent=False
        )

    # ------------------------------------------------------------------ torchmetrics compatibility
    def _check_detection_counts(self, flat: FlatDetections) -> None:
        """torchmetrics' warning for images with more detections than the last max-detection threshold."""
        if self.warn_on_many_detections and flat.det_count is not None:
            warn_on_detection_counts(flat.det_count, self.iou_type, self.max_detection_thresholds[-1])

    @staticmethod
    def coco_to_tm(
        coco_preds: str,
        coco_target: str,
        iou_type: Literal["bbox", "segm"] | tuple[str, ...] | list[str] = ("bbox",),
        backend: Literal["pycocotools", "faster_coco_eval"] = "pycocotools",
    ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """torchmetrics' ``coco_to_tm``: COCO results and annotation files as ``(preds, target)``.

        See :func:`objdet.io.coco_to_tm` (same function; callable on the class or an instance, as
        ``MeanAveragePrecision().coco_to_tm(preds_file, target_file, iou_type="bbox")``).
        """
        from objdet.io.torchmetrics_compat import coco_to_tm

        return coco_to_tm(coco_preds, coco_target, tuple(_iou_types(iou_type)), backend)

    def tm_to_coco(self, name: str = "tm_map_input") -> None:
        """Not available: the state keeps no boxes or masks; use :func:`objdet.io.tm_to_coco` on the inputs.

        torchmetrics' ``tm_to_coco(name)`` writes the boxes and masks its state holds. This
        metric's state is a few bytes per detection (scores, classes, match flags), so the
        inputs cannot be rebuilt from it; ``objdet.io.tm_to_coco(preds, target, name,
        iou_type=..., box_format=...)`` writes the same two files from the inputs themselves.

        Raises:
            RuntimeError: always, with that advice.
        """
        raise RuntimeError(
            f"{type(self).__name__}.tm_to_coco({name!r}) cannot write the inputs: the metric's state "
            "keeps no boxes or masks (a few bytes per detection). Write the inputs as you pass them to "
            "update() with "
            f"objdet.io.tm_to_coco(preds, target, {name!r}, iou_type={self.iou_type!r}, "
            f"box_format={self.box_format!r}), which writes torchmetrics' files."
        )

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> torch.nn.Module:
        """``.to()`` / ``.cuda()`` / ``set_dtype()``: the states follow the device and keep their dtypes.

        The state is an exact typed record (float64 scores, uint8 flag bytes, int32/int64 labels
        and counts); ``set_dtype(torch.float64)`` or ``.to(torch.float16)`` would otherwise recast
        it (torchmetrics' ``Metric._apply`` casts every state) and break ``compute()``.
        ``metric.dtype`` still reports the dtype set; results stay float32, as torchmetrics'.
        """
        this = super()._apply(fn, exclude_state=tuple(self._defaults))
        assert isinstance(this, Metric)
        apply_keeping_dtypes(this, fn, exclude_state)
        return this

    # ------------------------------------------------------------------ update
    def _label_range(self) -> int | None:
        return None

    def update(self, preds: Sequence[dict[str, Tensor]], target: Sequence[dict[str, Tensor]]) -> None:
        """Match one batch of images and keep the compact per-detection result.

        Args:
            preds: one dict per image with ``boxes`` (N, 4) (for "bbox"), ``masks`` (N, H, W)
                (for "segm"), ``scores`` (N,), ``labels`` (N,), optional ``area`` (N,) (see the
                class docstring).
            target: one dict per image with ``boxes`` (M, 4) (for "bbox"), ``masks`` (M, H, W)
                (for "segm"), ``labels`` (M,), optional ``iscrowd`` (M,) and ``area`` (M,) (a
                positive area is used, otherwise the mask's pixel count with masks, else the box's)
                and optional ``image_id`` (see the class docstring) and ``slices`` (see ``slices``).
        """
        use_masks = "segm" in self.iou_type
        use_kpts = "keypoints" in self.iou_type
        flat = flatten_detections(
            preds,
            target,
            self.box_format,
            num_classes=self._label_range(),
            boxes="bbox" in self.iou_type,
            masks=use_masks,
            keypoints=use_kpts,
        )
        self._check_detection_counts(flat)
        flat = self._select_batch(flat, target)
        ids = batch_image_ids(flat, self.image_records)
        in_slices = read_slice_masks(target, self.slices)
        self.n_images.add_(flat.n_images)  # in place: no Module.__setattr__ per update
        if self.average == "micro":
            self.seen_labels.append(torch.unique(torch.cat([flat.det_label, flat.gt_label])))
        masks = None
        if use_masks:
            assert flat.det_masks is not None and flat.gt_masks is not None and flat.gt_area_given is not None
            # COCO matches per class: same-label pairs are enough, unless a class-agnostic (micro) pass runs
            same_label = "micro" not in self._modes
            masks = mask_batch(
                flat.det_masks,
                flat.gt_masks,
                flat.det_label if same_label else None,
                flat.gt_label if same_label else None,
            )
            given = flat.gt_area_given
            # the mask area is the default GT area for every IoU type once masks are given (torchmetrics)
            flat.gt_area = torch.where(given > 0, given, masks.gt_area.to(given))
        poses = self._keypoint_batch(flat) if use_kpts else None
        det_geometry = [masks.det_area[:, None].to(torch.float64)] if masks is not None else []
        gt_geometry = [flat.gt_area[:, None]]
        if poses is not None:
            det_geometry.append(pose_summary(poses.det_kpts))
            gt_geometry.append(pose_summary(poses.gt_kpts))
        prints = batch_fingerprints(flat, det_geometry, gt_geometry)
        rows_per_image: list[Tensor] = []
        for iou_type in self.iou_type:
            # detection areas (for the area ranges): the mask's, the keypoints' extent or the box's,
            # unless preds give `area`
            det_area = None
            if iou_type == "segm" and masks is not None:
                det_area = masks.det_area.to(torch.float64)
            elif iou_type == "keypoints" and poses is not None:
                det_area = keypoint_extent_area(poses.det_kpts)
            if flat.det_area_given is not None:
                if det_area is None:
                    assert flat.det_xywh is not None
                    det_area = flat.det_xywh[:, 2] * flat.det_xywh[:, 3]
                det_area = torch.where(torch.isnan(flat.det_area_given), det_area, flat.det_area_given)
            pairs: MaskBatch | KeypointBatch | None = None
            gt_area = flat.gt_area
            if iou_type == "segm":
                pairs = masks
            elif iou_type == "keypoints":
                assert flat.gt_num_kpts is not None
                pairs = poses
                # pycocotools ignores a GT without labelled keypoints in every area range
                gt_area = torch.where(flat.gt_num_kpts > 0, flat.gt_area, -1.0)
            for mode in self._modes:
                rows_per_image += self._update_mode(mode, flat, iou_type, pairs, det_area, gt_area)
        if in_slices is not None:
            rows_per_image.append(in_slices.to(ids.device))
        self.image_records.append(image_records(ids, prints, rows_per_image))

    # hooks for protocols built on this one (LVIS: objdet.training.metrics.lvis)
    def _select_batch(self, flat: FlatDetections, target: Sequence[dict[str, Any]]) -> FlatDetections:
        """The detections and GTs of a validated batch that the protocol evaluates (COCO: all)."""
        return flat

    def _adjust_flags(
        self, flat: FlatDetections, iou_type: str, rank: Tensor, tp: Tensor, ignored: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The kept detections' rank and packed flags after matching, per the protocol (COCO: as is)."""
        return rank, tp, ignored

    def _keypoint_batch(self, flat: FlatDetections) -> KeypointBatch:
        """The batch's poses for OKS; checks that K matches the sigmas."""
        assert flat.det_kpts is not None and flat.gt_kpts is not None and flat.gt_has_box is not None
        k = max(flat.det_kpts.shape[1], flat.gt_kpts.shape[1])
        n_sigmas = self.keypoint_sigmas.numel()
        if (flat.det_kpts.shape[0] or flat.gt_kpts.shape[0]) and k != n_sigmas:
            side = "preds" if flat.det_kpts.shape[0] and flat.det_kpts.shape[1] == k else "target"
            raise InputError(
                f"{side} 'keypoints' have {k} keypoints per pose but `keypoint_sigmas` has {n_sigmas} "
                "values (the default is COCO's 17 person sigmas: pass one sigma per keypoint)"
            )
        return KeypointBatch(
            flat.det_kpts,
            flat.gt_kpts,
            flat.gt_area,
            self.keypoint_sigmas.to(flat.det_kpts.device),
            flat.gt_xywh,
            flat.gt_has_box,
        )

    def _update_mode(
        self,
        mode: str,
        flat: FlatDetections,
        iou_type: str,
        pairs: MaskBatch | KeypointBatch | None,
        det_area: Tensor | None,
        gt_area: Tensor,
    ) -> list[Tensor]:
        """Match for one evaluation and append its rows; returns its rows per image (detections, GTs).

        ``pairs`` gives the IoU of candidate pairs (masks, poses; None: boxes); ``gt_area`` is
        the GT area the area ranges read (-1: ignored in every range).
        """
        det_label, gt_label = flat.det_label, flat.gt_label
        if mode == "micro":
            det_label, gt_label = torch.zeros_like(det_label), torch.zeros_like(gt_label)
        device = flat.det_score.device
        match = self._match_cpu if self._compiled(device) else self._match_torch
        scores, labels, rank, tp, ignored, classes, counts, image_dets, image_gts, iou_groups, iou_values = (
            match(mode, flat, det_label, gt_label, pairs, det_area, gt_area, iou_type)
        )
        assert rank is not None and tp is not None and ignored is not None
        rank, tp, ignored = self._adjust_flags(flat, iou_type, rank, tp, ignored)
        prefix = self._prefixes[iou_type]
        name = f"{prefix}{mode}"
        rank_dtype = self._list_states[f"{name}_rank"][0]
        getattr(self, f"{name}_scores").append(scores)
        getattr(self, f"{name}_labels").append(labels)
        assert rank is not None
        getattr(self, f"{name}_rank").append(rank.to(rank_dtype))
        getattr(self, f"{name}_tp").append(tp)
        getattr(self, f"{name}_ignored").append(ignored)
        getattr(self, f"{name}_gt_labels").append(classes)
        getattr(self, f"{name}_gt_counts").append(counts)
        if iou_groups is not None and iou_values is not None:
            # Images are numbered at compute time by walking the updates in state order (which is
            # update order, rank after rank under DDP), so forward() and DDP merges stay right.
            getattr(self, f"{prefix}ious_index").append(iou_groups)
            getattr(self, f"{prefix}ious_values").append(iou_values.to(torch.float32))
            n_rows = iou_groups.shape[0]
            getattr(self, f"{prefix}ious_updates").append(
                torch.tensor([[flat.n_images, n_rows]], dtype=torch.int64, device=device)
            )
        assert image_dets is not None and image_gts is not None
        return [image_dets, image_gts]

    def _match_cpu(
        self,
        mode: str,
        flat: FlatDetections,
        det_label: Tensor,
        gt_label: Tensor,
        pairs: MaskBatch | KeypointBatch | None,
        det_area: Tensor | None,
        gt_area_t: Tensor,
        iou_type: str,
    ) -> tuple[Tensor | None, ...]:
        """Match with the compiled CPU engine (:mod:`objdet.ops.coco_cpu`); numpy views, no copies."""
        start_if_cold()  # the first update after an install: compute()'s kernels compile meanwhile
        if det_area is None:
            assert flat.det_xywh is not None
            xywh = flat.det_xywh.numpy()
            det_area_np = xywh[:, 2] * xywh[:, 3]
        else:
            det_area_np = det_area.numpy()
        pair_iou: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        if isinstance(pairs, KeypointBatch):
            pair_iou = pairs.pair_iou_np
        elif pairs is not None:
            crowd, masks = flat.gt_crowd, pairs

            def pair_iou(pair_det: np.ndarray, pair_gt: np.ndarray) -> np.ndarray:
                return masks.pair_iou(torch.from_numpy(pair_det), torch.from_numpy(pair_gt), crowd).numpy()

        area_ranges = np.asarray(self._area_ranges[iou_type], np.float64)
        gt_crowd, gt_area, gt_label_np = flat.gt_crowd.numpy(), gt_area_t.numpy(), gt_label.numpy()
        out = coco_match_cpu(
            flat.det_img.numpy(),
            det_label.numpy(),
            flat.det_score.numpy(),
            flat.gt_img.numpy(),
            gt_label_np,
            gt_crowd,
            gt_area,
            det_area_np,
            self._iou_thr_np,
            area_ranges,
            self._max_dets[iou_type][-1],
            det_xywh=flat.det_xywh.numpy() if pairs is None and flat.det_xywh is not None else None,
            gt_xywh=flat.gt_xywh.numpy() if pairs is None and flat.gt_xywh is not None else None,
            pair_iou=pair_iou,
            return_ious=self.extended_summary and mode == self._modes[0],
            n_images=flat.n_images,
        )
        gt_img = flat.gt_img.numpy()
        classes, counts, image_gts = gt_image_class_counts(
            gt_img, gt_label_np, gt_crowd, gt_area, area_ranges, flat.n_images
        )
        t = torch.from_numpy
        return (
            t(out["scores"]),
            t(out["labels"].astype(np.int32)),
            t(out["rank"]),
            t(out["tp"]),
            t(out["ignored"]),
            t(classes.astype(np.int32)),
            t(counts),
            t(out["image_dets"]),
            t(image_gts),
            t(out["iou_groups"]) if "iou_groups" in out else None,
            t(out["iou_values"]) if "iou_values" in out else None,
        )

    def _match_torch(
        self,
        mode: str,
        flat: FlatDetections,
        det_label: Tensor,
        gt_label: Tensor,
        pairs: MaskBatch | KeypointBatch | None,
        det_area: Tensor | None,
        gt_area: Tensor,
        iou_type: str,
    ) -> tuple[Tensor | None, ...]:
        """Match with the torch kernel (:func:`objdet.ops.coco.coco_match`) on the inputs' device."""
        device = flat.det_score.device
        area_ranges = torch.tensor(self._area_ranges[iou_type], dtype=torch.float64, device=device)
        result = coco_match(
            flat.det_img,
            det_label,
            flat.det_score,
            flat.det_xywh,
            flat.gt_img,
            gt_label,
            flat.gt_xywh,
            flat.gt_crowd,
            gt_area,
            torch.tensor(self.iou_thresholds, dtype=torch.float64, device=device),
            area_ranges,
            self._max_dets[iou_type][-1],
            return_ious=self.extended_summary and mode == self._modes[0],
            det_area=det_area,
            pair_iou=pairs.pair_iou if pairs is not None else None,
        )
        # Non-ignored GT per (class, area range), one row per (image, class), rows grouped by image.
        groups, inverse = torch.unique(torch.stack([flat.gt_img, gt_label], 1), dim=0, return_inverse=True)
        counted = ~coco_gt_ignored(flat.gt_crowd, gt_area, area_ranges)  # (A, G)
        counts = torch.zeros(groups.shape[0], area_ranges.shape[0], dtype=torch.int32, device=device)
        counts.index_add_(0, inverse.reshape(-1), counted.T.to(torch.int32))
        n = flat.n_images
        return (
            flat.det_score[result.keep],
            det_label[result.keep].to(torch.int32),
            result.rank,
            result.tp,
            result.ignored,
            groups[:, 1].to(torch.int32),
            counts,
            torch.bincount(flat.det_img[result.keep], minlength=n).to(torch.int32),
            torch.bincount(groups[:, 0], minlength=n).to(torch.int32),
            result.iou_groups,
            result.iou_values,
        )

    def _compiled(self, device: torch.device) -> bool:
        """Whether the compiled CPU engine serves tensors on ``device``."""
        if self.engine == "torch":
            return False
        if device.type != "cpu":
            if self.engine == "compiled":
                raise InputError(f"engine='compiled' needs CPU tensors, got tensors on {device}")
            return False
        return True

    # ------------------------------------------------------------------ sync
    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        fill_empty_list_states(self, self._list_states)
        super()._sync_dist(dist_sync_fn, process_group)  # type: ignore[arg-type]

    def _state(self, name: str) -> Tensor:
        return cat_state(self, name, self._list_states)

    # ------------------------------------------------------------------ compute
    def _image_order(self) -> Tensor | None:
        """Positions of the images that count, in evaluation order (None: all, as seen); see ``_images``."""
        return images_to_evaluate(self._state("image_records"))

    def _n_evaluated(self, order: Tensor | None) -> int:
        return int(self.n_images) if order is None else order.numel()

    def _rows(self, name: str, order: Tensor | None) -> dict[str, Tensor]:
        """The state of one evaluation (``prefix + mode``), only the images that count, in their order."""
        dets = ("scores", "labels", "rank", "tp", "ignored")
        out = {k: self._state(f"{name}_{k}") for k in (*dets, "gt_labels", "gt_counts")}
        if order is not None:
            column = 2 + 2 * self._groups.index(name)  # see __init__: the image records' columns
            records = self._state("image_records")
            det_rows = segment_rows(records[:, column], order)
            gt_rows = segment_rows(records[:, column + 1], order)
            out.update({k: out[k][det_rows] for k in dets})
            out.update({k: out[k][gt_rows] for k in ("gt_labels", "gt_counts")})
        return out

    def _tables(self, mode: str, full: bool, prefix: str = "", order: Tensor | None = None) -> CocoTables:
        rows = self._rows(f"{prefix}{mode}", order)
        max_dets = self._max_dets[self._type_of[prefix]]
        if self._compiled(self.device):  # the state as it is: the numpy side makes its int64 copies
            accumulate, as_index = coco_accumulate, (lambda x: x)
        else:
            accumulate, as_index = coco_accumulate_torch, (lambda x: x.long())
        return accumulate(
            rows["scores"],
            as_index(rows["labels"]),
            as_index(rows["rank"]),
            rows["tp"],
            rows["ignored"],
            as_index(rows["gt_labels"]),
            as_index(rows["gt_counts"]),
            len(self.iou_thresholds),
            torch.tensor(self.rec_thresholds, dtype=torch.float64, device=self.device),
            max_dets,
            full=full,
        )

    def _ious(
        self, classes: Tensor, prefix: str = "", order: Tensor | None = None
    ) -> dict[tuple[int, int], Tensor | list]:
        """pycocotools' ``ious``: {(image, class): (n_det, n_gt) IoU tensor, or [] if either is empty}.

        Images are their position in update order, or their ``image_id`` when ids are given.
        """
        index, values = self._state(f"{prefix}ious_index").tolist(), self._state(f"{prefix}ious_values")
        blocks, row, start, first_image = {}, 0, 0, 0
        for n_images, n_rows in self._state(f"{prefix}ious_updates").tolist():
            for image, label, n_det, n_gt in index[row : row + n_rows]:
                block = values[start : start + n_det * n_gt].reshape(n_det, n_gt)
                blocks[(first_image + image, label)] = block
                start += n_det * n_gt
            row += n_rows
            first_image += n_images
        labels = classes.tolist()
        if order is None:
            return {(image, c): blocks.get((image, c), []) for image in range(first_image) for c in labels}
        ids = self._state("image_records")[order, ID].tolist()
        pairs = zip(order.tolist(), ids, strict=True)
        return {(i, c): blocks.get((pos, c), []) for pos, i in pairs for c in labels}

    def _classes(self, tables: CocoTables) -> Tensor:
        if self.average == "micro":
            return torch.unique(self._state("seen_labels")).to(torch.int32)
        return tables.classes.to(torch.int32)

    def coco_eval(self, full: bool = True, iou_type: str | None = None) -> tuple[Tensor, CocoTables]:
        """pycocotools' ``stats`` (12,) and ``eval`` tables in float64, on the state so far.

        ``full=False`` fills only what the summary reads (precision at the last maxDet).
        ``iou_type``: which evaluation ("bbox" or "segm"; default: the first of ``iou_type``).
        With no image seen, the stats are all -1 and the tables have no class. With ``image_id``
        in the targets, each id counts once and the images are taken in sorted id order.
        """
        iou_type = self.iou_type[0] if iou_type is None else iou_type
        if iou_type not in self._prefixes:
            raise InputError(f"`iou_type` must be one of {self.iou_type}, got {iou_type!r}")
        with synced(self):  # the state of every rank, as compute() sees it
            stats, tables = self._evaluate(full, iou_type, self._image_order())
        return stats, contiguous_tables(tables)

    def _evaluate(self, full: bool, iou_type: str, order: Tensor | None) -> tuple[Tensor, CocoTables]:
        """:meth:`coco_eval` on the (synced) state, for the images ``order`` chooses."""
        tables = self._tables(self._modes[0], full=full, prefix=self._prefixes[iou_type], order=order)
        max_dets = self._max_dets[iou_type]
        if self._n_evaluated(order) == 0:
            n_stats = len(stat_names_for(iou_type, max_dets))
            return torch.full((n_stats,), -1.0, dtype=torch.float64, device=self.device), tables
        iou_thr = torch.tensor(self.iou_thresholds, dtype=torch.float64, device=self.device)
        stats = coco_summarize(tables, iou_thr, max_dets, iou_type)
        if self.backend == "faster_coco_eval":  # its summary reads mAP at the last maxDet, not at 100
            stats = torch.cat([last_max_det_ap(tables.precision).reshape(1).to(stats), stats[1:]])
        return stats, tables

    def compute(self) -> dict[str, Tensor]:
        """The 12 COCO numbers under torchmetrics' keys, plus per-class values and tables on request.

        With ``iou_type=("bbox", "segm")`` every key but ``classes`` comes once per type, prefixed
        ``bbox_`` / ``segm_``, as in torchmetrics.
        """
        out: dict[str, Any] = {}
        classes = torch.zeros(0, dtype=torch.int32, device=self.device)
        order = self._image_order()  # (torchmetrics' compute() wrapper has synced the state)
        for iou_type, p in self._prefixes.items():
            classes = self._compute_one(out, iou_type, p, order, classes)
        out["classes"] = classes
        return out

    def compute_slices(
        self, slices: Mapping[str, Iterable[int]] | None = None
    ) -> dict[str, dict[str, Tensor]]:
        """:meth:`compute` for named subsets of the images, from the same state (nothing matched again).

        The slices are the ones named at construction (``slices=``, images tagged in their
        target's ``slices``) and those given here as lists of image ids (the targets must carry
        ``image_id``). Each slice's result has the keys of ``compute()`` and equals what a metric
        updated with that slice's images alone gives (same image order, so the same ties). An
        empty slice gives -1 everywhere. Under DDP call it on every rank, like ``compute()``.

        Example:
            >>> import torch
            >>> from objdet.training.metrics import MeanAveragePrecision
            >>> metric = MeanAveragePrecision(slices=["night"])
            >>> box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
            >>> pred = dict(boxes=box, scores=torch.tensor([0.9]), labels=torch.tensor([0]))
            >>> metric.update([pred, pred], [dict(boxes=box, labels=torch.tensor([0]), image_id=1),
            ...                              dict(boxes=box + 100, labels=torch.tensor([0]), image_id=2,
            ...                                   slices={"night"})])
            >>> out = metric.compute_slices({"first": [1]})
            >>> round(out["night"]["map_50"].item(), 3), round(out["first"]["map_50"].item(), 3)
            (0.0, 1.0)
        """
        by_ids = _slices_by_ids(slices, self.slices)
        with synced(self):  # the state of every rank, as compute() sees it
            records = self._state("image_records")
            order = self._image_order()
            chosen = torch.arange(records.shape[0], device=records.device) if order is None else order
            out: dict[str, dict[str, Tensor]] = {}
            for bit, name in enumerate(self.slices):
                member = (records[chosen, self._slice_column] >> bit) & 1 == 1
                out[name] = self._compute_images(chosen[member])
            if by_ids and order is None and records.shape[0]:
                raise InputError(
                    "slices given as image ids need `image_id` in the target dicts; name the slices at "
                    "construction (`slices=`) and tag the images in their targets' `slices` instead"
                )
            for name, ids in by_ids.items():
                seen = records[chosen, ID]
                missing = sorted(set(ids.tolist()) - set(seen.tolist()))
                if missing:
                    raise InputError(
                        f"slice {name!r}: {len(missing)} image id(s) were never seen by the metric: "
                        f"{missing[:5]}{' ...' if len(missing) > 5 else ''}"
                    )
                out[name] = self._compute_images(chosen[torch.isin(seen, ids.to(seen.device))])
        return out

    def bootstrap(
        self,
        n_resamples: int = 1000,
        level: float = 0.95,
        seed: int = 0,
        other: MeanAveragePrecision | None = None,
        iou_type: str | None = None,
    ) -> BootstrapResult:
        """Percentile bootstrap intervals over images for map, map_50, map_75 and per-class AP.

        ``n_resamples`` resamples of the evaluated images with replacement (seeded: the same
        ``seed`` gives the same intervals), each evaluated from the state with image weights
        (see :mod:`objdet.functional.bootstrap`; nothing is matched again). The estimate is the
        metric's own value (pycocotools'). With ``other``, a metric that saw the same images
        (the same ``image_id`` set, or the same number of images in the same order without
        ids), the result is the paired difference ``self - other``: both are resampled with the
        same draws, so the interval says whether the difference is more than the luck of the
        images drawn. Under DDP call it on every rank, like ``compute()``.

        Example:
            >>> import torch
            >>> from objdet.training.metrics import MeanAveragePrecision
            >>> metric = MeanAveragePrecision()
            >>> box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
            >>> for i in range(20):
            ...     hit = dict(boxes=box, labels=torch.tensor([0]))
            ...     miss = dict(boxes=box + 60, labels=torch.tensor([0]))
            ...     pred = dict(boxes=box, scores=torch.tensor([0.5 + i / 50]), labels=torch.tensor([0]))
            ...     metric.update([pred], [hit if i % 4 else miss])
            >>> ci = metric.bootstrap(n_resamples=200, seed=1)
            >>> ci.low["map_50"] <= ci.estimate["map_50"] <= ci.high["map_50"]
            True
        """
        if not isinstance(n_resamples, int) or isinstance(n_resamples, bool) or n_resamples < 1:
            raise InputError(f"`n_resamples` must be a positive int, got {n_resamples!r}")
        if not isinstance(level, float | int) or not 0.0 < float(level) < 1.0:
            raise InputError(f"`level` must lie in (0, 1), got {level!r}")
        if other is not None and not isinstance(other, MeanAveragePrecision):
            raise InputError(f"`other` must be a MeanAveragePrecision, got {type(other).__name__}")
        iou_type = self.iou_type[0] if iou_type is None else iou_type
        if iou_type not in self._prefixes:
            raise InputError(f"`iou_type` must be one of {self.iou_type}, got {iou_type!r}")
        mine, ids = self._bootstrap_inputs(iou_type)
        theirs = None
        if other is not None:
            theirs, their_ids = other._bootstrap_inputs(
                iou_type if iou_type in other._prefixes else other.iou_type[0]
            )
            if their_ids.size != ids.size or not np.array_equal(their_ids, ids):
                raise InputError(
                    "`other` must have seen the same images: "
                    f"{ids.size} and {their_ids.size} images, the same ids in both (with `image_id`)"
                )
        return bootstrap_intervals(mine, n_resamples, float(level), seed, other=theirs)

    def _bootstrap_inputs(self, iou_type: str) -> tuple[ImageWeightedState, np.ndarray]:
        """The (synced) state of one evaluation for the bootstrap, and the images' ids (positions without).

        ``map`` reads maxDets = 100 (pycocotools), the last max-detection threshold when 100 is
        not among them.
        """
        name = f"{self._prefixes[iou_type]}{self._modes[0]}"
        with synced(self):
            order = self._image_order()
            records = self._state("image_records")
            chosen = torch.arange(records.shape[0], device=records.device) if order is None else order
            rows = self._rows(name, chosen)
            column = 2 + 2 * self._groups.index(name)
            picked = records[chosen].cpu()
        per_image = torch.arange(picked.shape[0])
        det_image = torch.repeat_interleave(per_image, picked[:, column]).numpy()
        gt_image = torch.repeat_interleave(per_image, picked[:, column + 1]).numpy()
        ids = picked[:, ID].numpy() if order is not None else np.arange(picked.shape[0])
        r = {k: v.cpu().numpy() for k, v in rows.items()}
        mdt = self._max_dets[iou_type]
        state = ImageWeightedState(
            scores=r["scores"], labels=r["labels"], rank=r["rank"], tp=r["tp"], ignored=r["ignored"],
            det_image=det_image, gt_labels=r["gt_labels"], gt_counts_all=r["gt_counts"][:, 0],
            gt_image=gt_image, lanes=np.arange(len(self.iou_thresholds)) * len(self._area_ranges[iou_type]),
            rec_thresholds=np.asarray(self.rec_thresholds, np.float64),
            max_det=100 if 100 in mdt else mdt[-1],
            iou_thresholds=np.asarray(self.iou_thresholds, np.float64),
            n_images=int(picked.shape[0]),
        )  # fmt: skip
        return state, ids

    def _compute_images(self, order: Tensor) -> dict[str, Tensor]:
        """:meth:`compute` over the images at positions ``order`` (in that order), on the synced state."""
        out: dict[str, Any] = {}
        classes = torch.zeros(0, dtype=torch.int32, device=self.device)
        for iou_type, p in self._prefixes.items():
            classes = self._compute_one(out, iou_type, p, order, classes)
        out["classes"] = classes
        # as torchmetrics' compute() wrapper does: one-element tensors become 0-d
        return {k: v.squeeze() if isinstance(v, Tensor) and v.numel() == 1 else v for k, v in out.items()}

    def _compute_one(
        self, out: dict[str, Any], iou_type: str, p: str, order: Tensor | None, classes: Tensor
    ) -> Tensor:
        """Add one IoU type's keys (prefix ``p``) to ``out``; returns the classes to report."""
        mdt = self._max_dets[iou_type]
        stats64, tables = self._evaluate(self.extended_summary, iou_type, order)
        stats = stats64.to(torch.float32)
        out.update({f"{p}{name}": stats[i] for i, name in enumerate(self._stat_names(iou_type))})
        if self._n_evaluated(order) == 0:  # torchmetrics returns only the stats and the (empty) classes
            return classes
        if self.extended_summary:
            out[f"{p}ious"] = self._ious(tables.classes, p, order)
            shown = contiguous_tables(tables)  # the compiled engine fills strided views
            out[f"{p}precision"] = shown.precision
            out[f"{p}recall"] = shown.recall
            out[f"{p}scores"] = shown.scores
        if self.class_metrics:
            class_tables = tables if self._modes[0] == "macro" else self._tables("macro", False, p, order)
            ap, ar = per_class_ap_ar(class_tables, mdt, ap_max_det=self._ap_max_det(iou_type))
            if self.backend == "faster_coco_eval":
                ap = last_max_det_class_ap(class_tables.precision).to(ap)
            out[f"{p}map_per_class"] = ap.to(torch.float32)
            out[f"{p}mar_{mdt[-1]}_per_class"] = ar.to(torch.float32)
        else:
            out[f"{p}map_per_class"] = torch.tensor([-1.0])
            out[f"{p}mar_{mdt[-1]}_per_class"] = torch.tensor([-1.0])
        return self._classes(tables)

    def _stat_names(self, iou_type: str) -> tuple[str, ...]:
        """The summary's output names for ``iou_type`` (unprefixed), in the order of its stats."""
        return stat_names_for(iou_type, self._max_dets[iou_type])

    def _ap_max_det(self, iou_type: str) -> int:
        """The maxDets at which the AP (overall and per class) is read: pycocotools' 100, 20 for keypoints."""
        return ap_max_det_for(iou_type, self._max_dets[iou_type])

    def _similarity(self) -> str:
        """What the thresholds of the curves and the calibration (the first IoU type's) threshold."""
        return similarity_for(self.iou_type[0])

    def _macro_rows(self, method: str) -> dict[str, Tensor]:
        """The per-class state rows of every rank (as ``compute()`` sees them), for ``method``.

        With several IoU types, those of the first (``iou_type[0]``).
        """
        if "macro" not in self._modes:
            raise ValueError(
                f"`{method}()` needs per-class state: create the metric with average='macro' (the default) "
                f"or class_metrics=True, got average={self.average!r}, class_metrics={self.class_metrics!r}"
            )
        with synced(self):
            return self._rows(f"{self._prefixes[self.iou_type[0]]}macro", self._image_order())

    def curves(
        self,
        iou_threshold: float | None = None,
        confidence: int | Tensor = 1001,
        average: Literal["micro", "macro"] = "micro",
    ) -> DetectionCurves:
        """Per-class PR curves and precision/recall/F1 vs confidence at one IoU threshold.

        Read from the flags kept by ``update()`` (area "all", the best
        ``max_detection_thresholds[-1]`` detections per image and class); nothing is matched
        again. Each class's AP in the result equals pycocotools' per-class AP at that threshold.
        Under DDP the state is gathered first, like ``compute()``: call it on every rank.

        Args:
            iou_threshold: one of ``iou_thresholds`` (default 0.5 when present, else the first).
            confidence: number of confidence thresholds (evenly spaced over [0, 1] when the
                scores lie in [0, 1], else scores evenly spaced in rank, see
                :func:`objdet.functional.curves.confidence_grid`) or a 1-D tensor of thresholds.
            average: how the overall precision/recall/F1 pool the classes: "micro" (counts
                summed) or "macro" (mean over classes with GT).

        Returns:
            :class:`objdet.functional.curves.DetectionCurves`; ``best_confidence`` is the
            confidence threshold with the highest overall F1.

        Example:
            >>> import torch
            >>> from objdet.training.metrics import MeanAveragePrecision
            >>> metric = MeanAveragePrecision()
            >>> metric.update([dict(boxes=torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]),
            ...                     scores=torch.tensor([0.9, 0.4]), labels=torch.tensor([0, 0]))],
            ...               [dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))])
            >>> c = metric.curves(iou_threshold=0.5)
            >>> round(c.ap.item(), 6), round(c.best_confidence.item(), 3), c.best_f1.item()
            (1.0, 0.401, 1.0)
        """
        rows = self._macro_rows("curves")
        curves = coco_state_curves(
            rows["scores"],
            rows["labels"],
            rows["tp"],
            rows["ignored"],
            rows["gt_labels"],
            rows["gt_counts"],
            self.iou_thresholds,
            iou_threshold,
            rec_thresholds=torch.tensor(self.rec_thresholds, dtype=torch.float64, device=self.device),
            confidence=confidence,
            average=average,
        )
        curves.similarity = self._similarity()
        return curves

    def plot(
        self,
        val: Any = None,
        ax: Any = None,
        kind: Literal["pr", "f1", "precision", "recall", "ap"] = "pr",
        iou_threshold: float | None = None,
        class_names: Sequence[str] | None = None,
    ) -> tuple[Any, Any]:
        """Draw the detection curves at one IoU threshold; returns ``(fig, ax)`` like torchmetrics.

        ``kind``: "pr" (precision-recall per class, mean bold, AP in the legend), "f1",
        "precision" or "recall" (vs confidence, best-F1 threshold marked) or "ap" (per-class AP
        bars); see :mod:`objdet.plotting.detection`. The curves come from :meth:`curves` (so
        under DDP call it on every rank), or from ``val`` when it is a ``DetectionCurves``; a
        ``val`` dict from ``compute()`` is accepted and not needed. A list of ``compute()``
        results draws their scalars over time (torchmetrics' plot): the per-class values (and
        their ``[-1]`` placeholders without ``class_metrics``) are left out, -1 (undefined, e.g.
        no ground truth in an area range) is a gap, and a value undefined in every result is
        left out. ``class_names`` is indexed by class id.
        """
        if isinstance(val, list):
            return self._plot_history(val, ax)
        from objdet.plotting.detection import plot_detection_curves

        curves = val if isinstance(val, DetectionCurves) else self.curves(iou_threshold)
        return plot_detection_curves(curves, kind=kind, class_names=class_names, ax=ax)

    def _plot_history(self, val: list[dict[str, Tensor]], ax: Any) -> tuple[Any, Any]:
        """torchmetrics' plot of the scalar results over time, on an Agg figure, legend beside the axes."""
        from objdet.plotting._common import figure_of, new_figure

        keys = [
            k
            for k, v in (val[0] if val else {}).items()
            if isinstance(v, Tensor) and v.numel() == 1 and k != "classes" and not k.endswith("_per_class")
        ]
        keys = [k for k in keys if any(float(d[k]) != -1.0 for d in val)]
        nan = torch.tensor(float("nan"))
        scalars = [
            {k: torch.where(d[k] == -1.0, nan, d[k].detach().cpu().float()) for k in keys} for d in val
        ]
        fig, ax = new_figure((7.2, 4.2)) if ax is None else (figure_of(ax), ax)
        self._plot(scalars, ax)
        if ax.get_legend() is not None:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        return fig, ax

    # ------------------------------------------------------------------ calibration (issue 13)
    def calibration(
        self,
        iou_threshold: float | None = None,
        bins: int = 10,
        strategy: Literal["width", "mass"] = "width",
    ) -> DetectionCalibration:
        """Calibration of the detection scores at one IoU threshold: reliability bins, ECE and MCE.

        Read from the flags kept by ``update()``, like :meth:`curves`: the detections counted
        are the kept ones (the best ``max_detection_thresholds[-1]`` per image and class, area
        "all") that are not ignored (matched to a crowd GT), the ones AP counts; a bin's
        accuracy is the fraction of its detections that are TPs at ``iou_threshold`` (its
        precision), its confidence their mean raw score. ECE = ``sum_b (n_b / N) |acc_b - conf_b|``,
        MCE = ``max_b |acc_b - conf_b|`` over non-empty bins; per class the same over that
        class's detections. See :mod:`objdet.functional.calibration` for the exact binning rules.
        Under DDP the state is gathered first, like ``compute()``: call it on every rank.

        Args:
            iou_threshold: one of ``iou_thresholds`` (default 0.5 when present, else the first).
            bins: number of confidence bins.
            strategy: "width" (equal-width bins over [0, 1]) or "mass" (equal-count bins).

        Raises:
            ValueError: when a counted score lies outside [0, 1] (calibration of raw logits is
                not defined; objdet applies no sigmoid), or on a bad argument.

        Example:
            >>> import torch
            >>> from objdet.training.metrics import MeanAveragePrecision
            >>> metric = MeanAveragePrecision()
            >>> metric.update([dict(boxes=torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]),
            ...                     scores=torch.tensor([0.9, 0.4]), labels=torch.tensor([0, 0]))],
            ...               [dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))])
            >>> c = metric.calibration(bins=10)
            >>> round(c.ece.item(), 3), round(c.mce.item(), 3)  # (|1 - 0.9| + |0 - 0.4|) / 2, 0.4
            (0.25, 0.4)
        """
        rows = self._macro_rows("calibration")
        calibration = coco_state_calibration(
            rows["scores"],
            rows["labels"],
            rows["tp"],
            rows["ignored"],
            len(self._area_ranges[self.iou_type[0]]),
            self.iou_thresholds,
            iou_threshold,
            bins=bins,
            strategy=strategy,
        )
        calibration.similarity = self._similarity()
        return calibration

    def plot_calibration(
        self,
        val: DetectionCalibration | None = None,
        ax: Any = None,
        iou_threshold: float | None = None,
        bins: int = 10,
        strategy: Literal["width", "mass"] = "width",
    ) -> tuple[Any, Any]:
        """The reliability diagram of :meth:`calibration` (or of ``val``); returns ``(fig, ax)``.

        See :func:`objdet.plotting.detection.plot_reliability_diagram`. Without ``val`` it calls
        :meth:`calibration`, so under DDP call it on every rank.
        """
        from objdet.plotting.detection import plot_reliability_diagram

        result = val if val is not None else self.calibration(iou_threshold, bins, strategy)
        return plot_reliability_diagram(result, ax=ax)
