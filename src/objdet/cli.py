"""The ``objdet`` command line: evaluate COCO JSON files.

``objdet eval GT.json DT.json`` reads a COCO annotation file and a COCO results file, computes
pycocotools' COCO evaluation and the detection confusion matrix on them, prints the COCO
summary and a per-class table, and on request writes the metrics as JSON (``--json``) and the
plots plus the JSON into a directory (``--out``). ``objdet eval --demo`` does the same on the
small data set shipped in the package. ``python -m objdet`` is the same program.

On the CPU (the default) the files are read into numpy columns (:mod:`objdet.io.coco_arrays`,
msgspec), every image is matched in a few large calls of the compiled engine
(:func:`objdet.ops.coco_cpu.coco_match_cpu`; masks by pycocotools' IoU on their RLEs, never
decoded), accumulated by :func:`objdet.functional.coco_cpu.coco_accumulate_np`, and the
confusion matrix comes from :mod:`objdet.ops.confusion_cpu`: the same numbers as
:class:`~objdet.training.metrics.MeanAveragePrecision` and
:class:`~objdet.training.metrics.ConfusionMatrix`, without importing torch (the plots and
their curves neither: they import matplotlib only). ``--device cuda`` runs those two metrics
on the GPU instead.

Bad input (a missing file, invalid JSON, a missing key, a detection whose ``image_id`` or
``category_id`` is not in the ground truth, a malformed ``bbox``, numbers written as strings)
gives one line on stderr and exit code 2; every file is written through a temporary name and
renamed, so nothing is left half-written. Suspicious input that can still be evaluated (an
empty results list, a ground truth without annotations, results skipped by
``--skip-unknown-categories``) gives one ``objdet: warning:`` line each on stderr, naming the
file, also with ``--quiet``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from objdet.functional.coco_params import (
    AREA_RANGES,
    KEYPOINT_AREA_RANGES,
    KEYPOINT_MAX_DETS,
    ap_max_det_for,
    coco_stat_names,
    default_iou_thresholds,
    default_rec_thresholds,
    keypoint_stat_names,
    similarity_for,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

    from objdet.io import CocoGroundTruth
    from objdet.io.coco_arrays import DtArrays, GtArrays
    from objdet.ops.rle_cpu import RleStrings

EXIT_BAD_INPUT = 2
_SUMMARY_ROWS = (
    ("Average Precision", "AP", "0.50:0.95", "all", 2),
    ("Average Precision", "AP", "0.50", "all", 2),
    ("Average Precision", "AP", "0.75", "all", 2),
    ("Average Precision", "AP", "0.50:0.95", "small", 2),
    ("Average Precision", "AP", "0.50:0.95", "medium", 2),
    ("Average Precision", "AP", "0.50:0.95", "large", 2),
    ("Average Recall", "AR", "0.50:0.95", "all", 0),
    ("Average Recall", "AR", "0.50:0.95", "all", 1),
    ("Average Recall", "AR", "0.50:0.95", "all", 2),
    ("Average Recall", "AR", "0.50:0.95", "small", 2),
    ("Average Recall", "AR", "0.50:0.95", "medium", 2),
    ("Average Recall", "AR", "0.50:0.95", "large", 2),
)
_MAX_DETS = (1, 10, 100)
# pycocotools' defaults (from the torch-free module of the compiled engine)
_STAT_KEYS = coco_stat_names(_MAX_DETS)
_IOU_THRESHOLDS = np.array(default_iou_thresholds())
_REC_THRESHOLDS = np.array(default_rec_thresholds())
_AREA_RANGES = np.array(AREA_RANGES)
#: detections matched per call of the compiled engine (the progress bar moves between calls)
_CHUNK_DETECTIONS = 100_000
_KEYPOINT_SUMMARY_ROWS = (
    ("Average Precision", "AP", "0.50:0.95", "all", 0),
    ("Average Precision", "AP", "0.50", "all", 0),
    ("Average Precision", "AP", "0.75", "all", 0),
    ("Average Precision", "AP", "0.50:0.95", "medium", 0),
    ("Average Precision", "AP", "0.50:0.95", "large", 0),
    ("Average Recall", "AR", "0.50:0.95", "all", 0),
    ("Average Recall", "AR", "0.50", "all", 0),
    ("Average Recall", "AR", "0.75", "all", 0),
    ("Average Recall", "AR", "0.50:0.95", "medium", 0),
    ("Average Recall", "AR", "0.50:0.95", "large", 0),
)


@dataclass(frozen=True)
class _Protocol:
    """pycocotools' parameters of one ``--iou-type``: area ranges, maxDets, the summary's names and rows."""

    area_ranges: np.ndarray
    max_dets: tuple[int, ...]
    stat_keys: tuple[str, ...]
    summary_rows: tuple[tuple[str, str, str, str, int], ...]
    iou_type: str = "bbox"  # "bbox" stands for segm too: the same parameters

    @property
    def keypoints(self) -> bool:
        return self.iou_type == "keypoints"

    @property
    def ap_max_det(self) -> int:
        """The maxDets of pycocotools' first number (and of the per-class AP): 100, or 20 for keypoints."""
        return ap_max_det_for(self.iou_type, self.max_dets)

    @property
    def similarity(self) -> str:
        return similarity_for(self.iou_type)

    @property
    def ar_key(self) -> str:
        """The class table's recall column: "AR100", or "AR20" for keypoints."""
        return f"AR{self.max_dets[-1]}"

    def summarize(self, precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
        from objdet.functional.coco_cpu import summarize_for

        return summarize_for(self.iou_type, precision, recall, _IOU_THRESHOLDS, self.max_dets)


_COCO = _Protocol(_AREA_RANGES, _MAX_DETS, _STAT_KEYS, _SUMMARY_ROWS)
_KEYPOINTS = _Protocol(
    np.array(KEYPOINT_AREA_RANGES),
    KEYPOINT_MAX_DETS,
    keypoint_stat_names(KEYPOINT_MAX_DETS[-1]),
    _KEYPOINT_SUMMARY_ROWS,
    iou_type="keypoints",
)


def _protocol(iou_type: str) -> _Protocol:
    return _KEYPOINTS if iou_type == "keypoints" else _COCO


class InputError(ValueError):
    """Bad command-line input: reported as one line with exit code 2."""


# ----------------------------------------------------------------------------- evaluation
@dataclass
class Evaluation:
    """Everything ``objdet eval`` computed, in plain Python (JSON-ready) and tensors for the plots."""

    metrics: dict[str, Any]
    stats: list[float]
    class_table: list[dict[str, Any]]
    class_names: list[str]
    confusion: Any  # (C + 1, C + 1) int64, numpy array or tensor
    curves: Any
    calibration: Any = None  # DetectionCalibration with --calibration (numpy on the CPU route)
    # with --bootstrap, (n_resamples, level, seed) -> BootstrapResult on the evaluation's state
    bootstrap: Callable[[int, float, int], Any] | None = None
    # with --bootstrap, what it resamples (the metric, or the CPU route's ImageWeightedState): --compare
    bootstrap_input: Any = None
    tide: Any = None  # with --tide: (TideResult, foreground IoU, background IoU, iou_type), for tide.png


class Progress:
    """A one-line progress bar on a terminal, shown only once a run has lasted ``delay`` seconds."""

    def __init__(self, total: int, stream: IO[str] | None, delay: float = 1.0) -> None:
        self.total, self.stream, self.delay = total, stream, delay
        self.start = time.perf_counter()
        self.last = -math.inf
        self.shown = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.stream is None or now - self.start < self.delay or now - self.last < 0.1:
            return
        self.last, self.shown = now, True
        width = 30
        filled = int(width * done / max(self.total, 1))
        rate = done / (now - self.start)
        self.stream.write(
            f"\revaluating [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} images"
            f" ({rate:,.0f}/s)"
        )
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own on the terminal (nothing without one)."""
        if self.stream is not None:
            self.stream.write(("\n" if self.shown else "") + text + "\n")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        if self.shown and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def _plain(value: Any) -> Any:
    """JSON-ready Python values: tensors and arrays to numbers/lists, NaN to None."""
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu().tolist()
    elif isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _confusion_json(matrix: Any, names: Sequence[str], iou_threshold: float, conf_threshold: float) -> dict:
    """The JSON's ``confusion_matrix`` entry (both routes)."""
    return {
        "iou_threshold": iou_threshold,
        "conf_threshold": conf_threshold,
        "labels": [*names, "background"],
        "rows": "ground truth",
        "columns": "predictions",
        "matrix": matrix.tolist(),
    }


def evaluate(
    gt: CocoGroundTruth,
    preds: Sequence[dict[str, Tensor]],
    iou_type: str = "bbox",
    class_names: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    conf_threshold: float = 0.25,
    batch_size: int = 64,
    plots: bool = True,
    progress: Callable[[int], None] | None = None,
    slices: dict[str, np.ndarray] | None = None,
    diagnostics: Diagnostics | None = None,
    bootstrap: bool = False,
) -> Evaluation:
    """Run MeanAveragePrecision and ConfusionMatrix over loaded COCO data (labels contiguous).

    The torch route (``--device cuda``); :func:`evaluate_arrays` gives the same result on the CPU
    (``slices`` likewise, here through ``MeanAveragePrecision.compute_slices``).
    """
    import torch

    from objdet.functional.coco import per_class_ap_ar
    from objdet.training.metrics import ConfusionMatrix, MeanAveragePrecision

    if gt.labels != "contiguous":
        raise ValueError("`gt` must be loaded with labels='contiguous'")
    names = list(class_names) if class_names is not None else list(gt.category_names)
    n_classes = len(gt.category_ids)
    device = gt.target[0]["labels"].device if len(gt.target) else torch.device("cpu")
    box_format: Any = gt.box_format
    slice_names = list(slices or {})
    mean_ap = MeanAveragePrecision(
        box_format=box_format,
        iou_type=iou_type,  # type: ignore[arg-type]
        class_metrics=True,
        slices=slice_names or None,
    )
    confusion = ConfusionMatrix(
        num_classes=max(n_classes, 1),
        iou_threshold=iou_threshold,
        conf_threshold=conf_threshold,
        box_format=box_format,
    )
    mean_ap.to(device)
    confusion.to(device)
    n = len(gt.target)
    for start in range(0, n, batch_size):
        target: Sequence[dict[str, Any]] = gt.target[start : start + batch_size]
        batch = preds[start : start + batch_size]
        if slices:
            target = [
                {**t, "slices": {name for name in slice_names if slices[name][start + k]}}
                for k, t in enumerate(target)
            ]
        mean_ap.update(batch, target)
        if "bbox" in gt.iou_type:
            confusion.update(batch, target)
        if progress is not None:
            progress(min(start + batch_size, n))

    stats64, tables = mean_ap.coco_eval(full=False)
    result = mean_ap.compute()
    classes = result["classes"].long().cpu().reshape(-1)  # 0-d for one class (squeezed by Metric)
    proto = _protocol(iou_type)
    per_class = partial(per_class_ap_ar, tables, list(proto.max_dets), ap_max_det=proto.ap_max_det)
    ap, ar = per_class()
    thresholds = torch.tensor(mean_ap.iou_thresholds, dtype=torch.float64)
    at = {t: int((thresholds - t).abs().argmin()) for t in (0.5, 0.75)}
    ap50, _ = per_class(iou_index=at[0.5])
    ap75, _ = per_class(iou_index=at[0.75])
    matrix = confusion.compute().cpu()
    pr = confusion.per_class_metrics()
    table_classes = tables.classes.long().cpu().tolist()
    class_table = []
    for label in range(n_classes):
        row: dict[str, Any] = {"class": names[label], "category_id": gt.category_ids[label]}
        if label in table_classes:
            k = table_classes.index(label)
            row.update(
                {
                    "AP": ap[k].item(),
                    "AP50": ap50[k].item(),
                    "AP75": ap75[k].item(),
                    proto.ar_key: ar[k].item(),
                }
            )
        else:
            row.update({"AP": -1.0, "AP50": -1.0, "AP75": -1.0, proto.ar_key: -1.0})
        row.update(
            n_gt=int(matrix[label].sum()),
            precision=pr["precision"][label].item(),
            recall=pr["recall"][label].item(),
            f1=pr["f1"][label].item(),
        )
        class_table.append(row)

    metrics = {key: _plain(value) for key, value in result.items() if key != "classes"}
    # The JSON carries pycocotools' float64 numbers (compute() rounds them to float32).
    for key, value in zip(proto.stat_keys, stats64.cpu().tolist(), strict=True):
        metrics[key] = value
    metrics["coco_stats"] = stats64.cpu().tolist()  # pycocotools' `stats`, in its order
    by_label = dict(zip(table_classes, zip(ap.tolist(), ar.tolist(), strict=True), strict=True))
    metrics["map_per_class"] = [by_label.get(c, (-1.0, -1.0))[0] for c in classes.tolist()]
    metrics[f"mar_{proto.max_dets[-1]}_per_class"] = [
        by_label.get(c, (-1.0, -1.0))[1] for c in classes.tolist()
    ]
    metrics["classes"] = [gt.category_ids[c] for c in classes.tolist()]
    metrics["class_names"] = [names[c] for c in classes.tolist()]
    metrics["iou_type"] = iou_type
    metrics["n_images"] = n
    metrics["per_class"] = _plain(class_table)
    if "bbox" in gt.iou_type:
        metrics["confusion_matrix"] = _confusion_json(matrix, names, iou_threshold, conf_threshold)
    if slices:
        metrics["slices"] = {}
    for name, values in mean_ap.compute_slices().items():
        s_classes = values["classes"].long().cpu().reshape(-1).tolist()
        metrics["slices"][name] = {
            "n_images": int(slices[name].sum()),  # type: ignore[index]
            **{key: float(values[key]) for key in proto.stat_keys},
            "map_per_class": values["map_per_class"].reshape(-1).tolist() if s_classes else [],
            "classes": [gt.category_ids[c] for c in s_classes],
        }
    diag = diagnostics or Diagnostics()
    curves = mean_ap.curves() if plots or diag.needs_curves else None  # at IoU 0.5 (else the first)
    calibration = None
    if diag.calibration:
        calibration = _calibration_or_error(
            lambda: mean_ap.calibration(bins=diag.calibration_bins, strategy=diag.calibration_strategy)
        )
    return Evaluation(
        metrics=metrics,
        stats=stats64.cpu().tolist(),
        class_table=class_table,
        class_names=names,
        confusion=matrix,
        curves=curves,
        calibration=calibration,
        bootstrap=partial(_metric_bootstrap, mean_ap) if bootstrap else None,
        bootstrap_input=mean_ap if bootstrap else None,
    )


#: said on the terminal when the compiled engine's cache is empty (first run after an install)
COMPILING_NOTICE = (
    "objdet: compiling the CPU engine for this machine (once after an install or an upgrade, "
    "about half a minute; later runs load it from the cache)"
)


def _start_numba(notice: Callable[[str], None] | None = None) -> None:
    """Import numba and start its CPU target (a kernel's first call) with scipy hidden.

    numba's start-up imports scipy when it is installed (scipy.linalg, to see whether ``np.dot``
    in compiled code can use BLAS, and scipy's array-API helpers), which objdet's kernels never
    need: hidden, a run starts about 0.4 s sooner here. Only while numba starts, and only when
    neither is imported yet (as in the ``objdet`` command); ``import scipy`` works afterwards.
    That first kernel is a trivial one (:func:`objdet.functional.compile_helper.start_if_cold`):
    when it was not in numba's cache (a fresh install or upgrade, so the others are not there
    either), the compile helper has started and ``notice`` is told :data:`COMPILING_NOTICE`
    before the real kernels compile (once per process). Where numba is imported already (a
    reader of mask results without ``bbox`` called a kernel) only the probe runs.
    """
    global _compile_noticed
    from objdet.functional.compile_helper import start_if_cold

    if "numba" in sys.modules or "scipy" in sys.modules:
        cold = start_if_cold()
    else:
        sys.modules["scipy"] = None  # type: ignore[assignment]  # `import scipy` raises ImportError
        try:
            cold = start_if_cold()
        finally:
            if sys.modules.get("scipy", 0) is None:
                del sys.modules["scipy"]
    if cold and notice is not None and not _compile_noticed:
        _compile_noticed = True
        notice(COMPILING_NOTICE)


_compile_noticed = False  # whether COMPILING_NOTICE was said in this process


def _segm_sizes_agree(gt: GtArrays, gt_sizes: np.ndarray, dt: DtArrays, dt_sizes: np.ndarray) -> None:
    """Every RLE of an image has one size (checked against the image's size when the file gives it)."""
    n = len(gt.image_ids)
    first = np.full((n, 2), -1, np.int64)
    for what, sizes, img in (("annotations", gt_sizes, gt.img), ("results", dt_sizes, dt.img)):
        if not len(sizes):
            continue
        unset = first[img, 0] < 0
        first[img[unset][::-1], :] = sizes[unset][::-1]  # the first RLE of an image sets its size
        bad = np.flatnonzero((first[img] != sizes).any(1))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"{what} of image {int(gt.image_ids[img[k]])}: the 'segmentation' sizes of one image differ "
                f"({first[img[k]].tolist()} and {sizes[k].tolist()}); give the image its 'height' and 'width'"
            )


def _check_rles(rles: RleStrings, image_of: np.ndarray, image_ids: np.ndarray, what: str) -> None:
    """Compressed RLE strings that pycocotools would refuse to decode raise ValueError naming the image."""
    k = rles.first_invalid()
    if k >= 0:
        raise ValueError(
            f"{what} of image {int(image_ids[image_of[k]])}: a compressed RLE 'segmentation' is "
            "invalid (Invalid RLE mask representation)"
        )


def _segm_pair_iou(
    gt: GtArrays, dt: DtArrays
) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], np.ndarray]:
    """``pair_iou`` of :func:`coco_match_cpu` and :func:`tide_classify_np` on the files' RLEs (file-wide
    positions: pycocotools' mask IoU, compiled, any pairs), and the GT masks' areas; sizes and
    strings checked first (ValueError naming the image)."""
    from objdet.ops.rle_cpu import rle_strings

    assert gt.rles is not None and dt.rles is not None
    det = dt.strings if dt.strings is not None else rle_strings(dt.rles)
    truth = rle_strings(gt.rles)
    _segm_sizes_agree(gt, truth.sizes, dt, det.sizes)
    _check_rles(truth, gt.img, gt.image_ids, "annotations")
    _check_rles(det, dt.img, gt.image_ids, "results")
    # the masks' boxes (not the results' bbox) make rleIou's overlap test
    pair_iou = partial(det.pair_iou, truth, gt.crowd.astype(np.bool_))
    return pair_iou, truth.area_bbox()[0]


def _keypoint_pair_iou(
    gt: GtArrays, dt: DtArrays, gt_area: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """OKS of (result, annotation) pairs, file-wide positions: pycocotools' ``computeOks`` (COCO's sigmas)."""
    from objdet.ops.keypoints_cpu import COCO_PERSON_SIGMAS, pair_oks

    assert gt.keypoints is not None and dt.keypoints is not None and gt.boxes is not None
    k = gt.keypoints.shape[1] if len(gt.keypoints) else dt.keypoints.shape[1]
    for what, kp in (("annotations", gt.keypoints), ("results", dt.keypoints)):
        if len(kp) and kp.shape[1] != k:
            raise ValueError(f"the {what} have {kp.shape[1]} keypoints per pose, the annotations {k}")
    if (len(gt.keypoints) or len(dt.keypoints)) and k != COCO_PERSON_SIGMAS.size:
        raise ValueError(
            f"the poses have {k} keypoints; objdet eval uses COCO's {COCO_PERSON_SIGMAS.size} person "
            "sigmas (for other keypoint sets use MeanAveragePrecision(iou_type='keypoints', "
            "keypoint_sigmas=...))"
        )
    has_box = np.ones(len(gt_area), np.bool_)
    det_kpts, gt_kpts = np.ascontiguousarray(dt.keypoints), np.ascontiguousarray(gt.keypoints)
    boxes = gt.boxes

    def pair_iou(pair_det: np.ndarray, pair_gt: np.ndarray) -> np.ndarray:
        return pair_oks(pair_det, pair_gt, det_kpts, gt_kpts, gt_area, boxes, has_box, COCO_PERSON_SIGMAS)

    return pair_iou


def evaluate_arrays(
    gt: GtArrays,
    dt: DtArrays,
    iou_type: str = "bbox",
    class_names: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    conf_threshold: float = 0.25,
    plots: bool = True,
    progress: Callable[[int], None] | None = None,
    slices: dict[str, np.ndarray] | None = None,
    diagnostics: Diagnostics | None = None,
    bootstrap: bool = False,
) -> Evaluation:
    """COCO evaluation and confusion matrix of columns read by :mod:`objdet.io.coco_arrays`, on the CPU.

    The numbers of :func:`evaluate` (MeanAveragePrecision and ConfusionMatrix on the same files),
    computed with the compiled engine on numpy arrays: all images matched in a few large calls
    (``progress`` is told the images done after each), without torch: the PR and F1 curves
    (``plots``, F-beta) and the calibration are numpy code too.
    ``slices``: {name: (n_images,) bool} subsets of the images also evaluated
    (``metrics["slices"]``), from the same matching. ``bootstrap``: keep the matched state for
    ``Evaluation.bootstrap`` (numpy, no torch).
    """
    _start_numba()
    from objdet.functional.coco_cpu import coco_accumulate_np, per_class_ap_ar_np
    from objdet.ops.coco_cpu import coco_match_cpu, gt_class_counts
    from objdet.ops.confusion_cpu import confusion_precision_recall_f1_np, detection_confusion_matrix_np

    assert gt.boxes is not None
    names = list(class_names) if class_names is not None else list(gt.category_names)
    n_classes, n_images = len(gt.category_ids), len(gt.image_ids)
    crowd = gt.crowd.astype(bool)
    segm = iou_type == "segm"
    proto = _protocol(iou_type)
    area_ranges, max_dets = proto.area_ranges, proto.max_dets
    pair_iou = None
    range_area = None  # the GT areas the area ranges read, where they differ from gt_area
    if iou_type == "keypoints":
        assert gt.keypoints is not None and gt.num_keypoints is not None and dt.keypoints is not None
        gt_area = np.where(gt.area > 0, gt.area, gt.boxes[:, 2] * gt.boxes[:, 3])
        pair_iou_all = _keypoint_pair_iou(gt, dt, gt_area)
        # pycocotools ignores a GT without labelled keypoints in every area range
        range_area = np.where(gt.num_keypoints > 0, gt_area, -1.0)
    elif segm:
        pair_iou_all, gt_mask_area = _segm_pair_iou(gt, dt)
        gt_area = np.where(gt.area > 0, gt.area, gt_mask_area)
    else:
        gt_area = np.where(gt.area > 0, gt.area, gt.boxes[:, 2] * gt.boxes[:, 3])

    ranged_area = gt_area if range_area is None else range_area
    # the confusion matrix first: on an empty compile cache the compile helper (started by
    # _start_numba) compiles the accumulate kernels meanwhile, which come last
    matrix = detection_confusion_matrix_np(
        dt.img, dt.label, dt.score, dt.boxes, gt.img, gt.label, gt.boxes, crowd, max(n_classes, 1),
        iou_threshold=iou_threshold, conf_threshold=conf_threshold,
    )  # fmt: skip
    # chunks of whole images, about _CHUNK_DETECTIONS detections each
    det_end = np.cumsum(dt.counts)
    gt_end = np.cumsum(np.bincount(gt.img, minlength=n_images))
    cuts = [0]
    while cuts[-1] < n_images or len(cuts) == 1:  # one (empty) chunk at least: the state's dtypes
        if not n_images:
            cuts.append(0)
            break
        base = det_end[cuts[-1] - 1] if cuts[-1] else 0
        nxt = int(np.searchsorted(det_end, base + _CHUNK_DETECTIONS, side="right"))
        cuts.append(min(max(nxt, cuts[-1] + 1), n_images))
    parts: list[dict[str, np.ndarray]] = []
    for i0, i1 in itertools.pairwise(cuts):
        d0, d1 = (int(det_end[i - 1]) if i else 0 for i in (i0, i1))
        g0, g1 = (int(gt_end[i - 1]) if i else 0 for i in (i0, i1))
        if iou_type != "bbox":

            def pair_iou(pd: np.ndarray, pg: np.ndarray, d0: int = d0, g0: int = g0) -> np.ndarray:
                return pair_iou_all(pd + d0, pg + g0)

        out = coco_match_cpu(
            dt.img[d0:d1], dt.label[d0:d1], dt.score[d0:d1],
            gt.img[g0:g1], gt.label[g0:g1], crowd[g0:g1], ranged_area[g0:g1], dt.area[d0:d1],
            _IOU_THRESHOLDS, area_ranges, max_dets[-1],
            det_xywh=None if pair_iou is not None else dt.boxes[d0:d1],
            gt_xywh=None if pair_iou is not None else gt.boxes[g0:g1],
            pair_iou=pair_iou,
        )  # fmt: skip
        parts.append(out)
        if progress is not None:
            progress(i1)
    state = {
        key: np.concatenate([p[key] for p in parts])
        for key in ("scores", "labels", "rank", "tp", "ignored", "img")
    }
    gt_labels, gt_counts = gt_class_counts(gt.label, crowd, ranged_area, area_ranges)
    classes, precision, recall, _ = coco_accumulate_np(
        state["scores"], state["labels"], state["rank"], state["tp"], state["ignored"],
        gt_labels, gt_counts, len(_IOU_THRESHOLDS), _REC_THRESHOLDS, max_dets, full=False,
    )  # fmt: skip
    n_stats = len(proto.stat_keys)
    stats = proto.summarize(precision, recall) if n_images else np.full(n_stats, -1.0)
    per_class = partial(per_class_ap_ar_np, precision, recall, max_dets, ap_max_det=proto.ap_max_det)
    ap, ar = per_class()
    at = {t: int(np.abs(_IOU_THRESHOLDS - t).argmin()) for t in (0.5, 0.75)}
    ap50, _ = per_class(iou_index=at[0.5])
    ap75, _ = per_class(iou_index=at[0.75])
    pr = confusion_precision_recall_f1_np(matrix)
    table_classes = classes.tolist()
    where = {c: k for k, c in enumerate(table_classes)}
    class_table = []
    for label in range(n_classes):
        row: dict[str, Any] = {"class": names[label], "category_id": int(gt.category_ids[label])}
        if label in where:
            k = where[label]
            row.update(
                {
                    "AP": float(ap[k]),
                    "AP50": float(ap50[k]),
                    "AP75": float(ap75[k]),
                    proto.ar_key: float(ar[k]),
                }
            )
        else:
            row.update({"AP": -1.0, "AP50": -1.0, "AP75": -1.0, proto.ar_key: -1.0})
        row.update(
            n_gt=int(matrix[label].sum()),
            precision=float(pr["precision"][label]),
            recall=float(pr["recall"][label]),
            f1=float(pr["f1"][label]),
        )
        class_table.append(row)
    metrics: dict[str, Any] = dict(zip(proto.stat_keys, stats.tolist(), strict=True))
    metrics["coco_stats"] = stats.tolist()  # pycocotools' `stats`, in its order
    metrics["map_per_class"] = ap.tolist()
    metrics[f"mar_{max_dets[-1]}_per_class"] = ar.tolist()
    metrics["classes"] = [int(gt.category_ids[c]) for c in table_classes]
    metrics["class_names"] = [names[c] for c in table_classes]
    metrics["iou_type"] = iou_type
    metrics["n_images"] = n_images
    metrics["per_class"] = _plain(class_table)
    metrics["confusion_matrix"] = _confusion_json(matrix, names, iou_threshold, conf_threshold)
    if slices:
        metrics["slices"] = {}
    for name, members in (slices or {}).items():  # the same rows, only the slice's images
        d, g = members[state["img"]], members[gt.img]
        s_labels, s_counts = gt_class_counts(gt.label[g], crowd[g], ranged_area[g], area_ranges)
        s_classes, s_precision, s_recall, _ = coco_accumulate_np(
            state["scores"][d], state["labels"][d], state["rank"][d], state["tp"][d], state["ignored"][d],
            s_labels, s_counts, len(_IOU_THRESHOLDS), _REC_THRESHOLDS, max_dets, full=False,
        )  # fmt: skip
        n_slice = int(members.sum())
        s_stats = proto.summarize(s_precision, s_recall) if n_slice else np.full(n_stats, -1.0)
        s_ap, _ = per_class_ap_ar_np(s_precision, s_recall, max_dets, ap_max_det=proto.ap_max_det)
        metrics["slices"][name] = {
            "n_images": n_slice,
            **dict(zip(proto.stat_keys, s_stats.tolist(), strict=True)),
            "map_per_class": s_ap.tolist(),
            "classes": [int(gt.category_ids[c]) for c in s_classes.tolist()],
        }
    diag = diagnostics or Diagnostics()
    curves = None
    if plots or diag.needs_curves:  # at IoU 0.5, as MeanAveragePrecision.curves()
        from objdet.functional.curves import coco_state_curves

        curves = coco_state_curves(
            state["scores"], state["labels"], state["tp"], state["ignored"], gt_labels, gt_counts,
            _IOU_THRESHOLDS.tolist(), None, rec_thresholds=_REC_THRESHOLDS,
        )  # fmt: skip
        curves.similarity = proto.similarity
    calibration = None
    if diag.calibration:  # at IoU 0.5, as MeanAveragePrecision.calibration(), on the numpy state
        from objdet.functional.calibration import coco_state_calibration

        calibration = _calibration_or_error(
            lambda: coco_state_calibration(
                state["scores"],
                state["labels"],
                state["tp"],
                state["ignored"],
                len(area_ranges),
                _IOU_THRESHOLDS.tolist(),
                None,
                bins=diag.calibration_bins,
                strategy=diag.calibration_strategy,
            )
        )
    if calibration is not None:
        calibration.similarity = proto.similarity
    boot_state = bootstrap_state(state, gt, crowd, ranged_area, proto) if bootstrap else None
    return Evaluation(
        metrics=metrics,
        stats=stats.tolist(),
        class_table=class_table,
        class_names=names,
        confusion=matrix,
        curves=curves,
        calibration=calibration,
        bootstrap=partial(_arrays_bootstrap, boot_state) if boot_state is not None else None,
        bootstrap_input=boot_state,
    )


# ------------------------------------------------------------------ diagnostics: --calibration, --fbeta
# (issue 13) Calibration of the scores and F-beta, from the same matched state as the COCO numbers,
# at IoU 0.5 as the PR / F1 curves. The calibration is numpy code (the CPU route stays torch-free);
# F-beta reads the confidence curves (numpy code, as the plots).
@dataclass
class Diagnostics:
    """What ``--calibration`` / ``--fbeta`` ask for."""

    calibration: bool = False
    calibration_bins: int = 10
    calibration_strategy: Literal["width", "mass"] = "width"
    fbeta: float | None = None

    @property
    def needs_curves(self) -> bool:
        return self.fbeta is not None


def add_diagnostic_arguments(ev: argparse.ArgumentParser) -> None:
    group = ev.add_argument_group("diagnostics (at IoU 0.5, on the detections COCO AP counts)")
    group.add_argument(
        "--calibration",
        action="store_true",
        help="print the calibration of the scores (ECE, MCE; scores must be in [0, 1]); with --json / "
        "--out it goes into the JSON as 'calibration', with --out reliability_diagram.png",
    )
    group.add_argument("--calibration-bins", type=int, default=10, metavar="N", help="confidence bins (10)")
    group.add_argument(
        "--calibration-strategy",
        choices=("width", "mass"),
        default="width",
        help="equal-width or equal-mass (equal-count) bins (width)",
    )
    group.add_argument(
        "--fbeta",
        type=float,
        metavar="BETA",
        help="print the best F-beta over the confidence thresholds and where it is reached; "
        "with --out fBETA_confidence.png",
    )


def check_diagnostic_arguments(args: argparse.Namespace) -> Diagnostics:
    if args.calibration_bins < 1:
        raise InputError(f"--calibration-bins: expected a positive integer, got {args.calibration_bins}")
    if args.fbeta is not None and not (math.isfinite(args.fbeta) and args.fbeta > 0):
        raise InputError(f"--fbeta: expected a finite number > 0, got {args.fbeta}")
    return Diagnostics(args.calibration, args.calibration_bins, args.calibration_strategy, args.fbeta)


def _calibration_or_error(compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except ValueError as err:
        raise ValueError(f"--calibration: {err}") from None


def add_diagnostics(evaluation: Evaluation, diagnostics: Diagnostics) -> list[str]:
    """Put the diagnostics into ``evaluation.metrics`` (the JSON); returns the lines to print."""
    lines = []
    cal = evaluation.calibration
    if cal is not None:
        ece, mce = float(cal.ece), float(cal.mce)
        evaluation.metrics["calibration"] = _plain(
            {
                "ece": ece,
                "mce": mce,
                "iou_threshold": cal.iou_threshold,
                "bins": cal.n_bins,
                "strategy": cal.strategy,
                "n_detections": cal.n_detections,
                "reliability": {  # one entry per bin: the reliability diagram's numbers
                    "lower": cal.lower,
                    "upper": cal.upper,
                    "count": cal.count,
                    "confidence": cal.confidence,
                    "accuracy": cal.accuracy,
                },
                "per_class": [
                    {
                        "category_id": evaluation.class_table[c]["category_id"],
                        "class": evaluation.class_names[c],
                        "n_detections": int(np.asarray(cal.class_count[k]).sum()),
                        "ece": cal.class_ece[k],
                        "mce": cal.class_mce[k],
                    }
                    for k, c in enumerate(np.asarray(cal.classes).tolist())
                ],
            }
        )
        kind = "equal-width" if cal.strategy == "width" else "equal-mass"
        lines.append(
            f"Calibration (IoU={cal.iou_threshold:g}, {cal.n_bins} {kind} bins, "
            f"{cal.n_detections} detections): ECE = {ece:.4f}  MCE = {mce:.4f}"
        )
    if diagnostics.fbeta is not None and evaluation.curves is not None:
        fb = evaluation.curves.fbeta(diagnostics.fbeta)
        best, at = float(fb.best_fbeta), float(fb.best_confidence)
        evaluation.metrics["fbeta"] = _plain(
            {
                "beta": fb.beta,
                "best": best,
                "confidence": at,
                "iou_threshold": fb.iou_threshold,
                "average": fb.average,
            }
        )
        lines.append(
            f"F{fb.beta:g} (IoU={fb.iou_threshold:g}, all classes pooled): "
            f"best {best:.4f} at confidence >= {at:.4g}"
        )
    return lines


def diagnostic_figures(evaluation: Evaluation, diagnostics: Diagnostics) -> Iterator[tuple[str, Figure]]:
    """reliability_diagram.png (--calibration) and f<beta>_confidence.png (--fbeta)."""
    from objdet.plotting.detection import plot_detection_curves, plot_reliability_diagram

    if evaluation.calibration is not None:
        yield "reliability_diagram.png", plot_reliability_diagram(evaluation.calibration)[0]
    if diagnostics.fbeta is not None and evaluation.curves is not None:
        names = evaluation.class_names
        name = f"f{diagnostics.fbeta:g}_confidence.png"
        yield name, plot_detection_curves(evaluation.curves, "f1", names, beta=diagnostics.fbeta)[0]


# ----------------------------------------------------------------------------- output
def format_summary(stats: Sequence[float], iou_type: str) -> str:
    """pycocotools' summary lines: twelve, or ten for keypoints."""
    proto = _protocol(iou_type)
    lines = [f"COCO {iou_type} evaluation"]
    for (title, short, iou, area, det), value in zip(proto.summary_rows, stats, strict=True):
        where = f"IoU={iou:<9} | area={area:>6} | maxDets={proto.max_dets[det]:>3}"
        lines.append(f" {title:<18} ({short}) @[ {where} ] = {value:0.3f}")
    return "\n".join(lines)


def format_slice_table(slices: dict[str, dict[str, Any]]) -> str:
    """One line per slice: its number of images and its AP numbers (six, five for keypoints)."""
    width = max([5, *(len(name) for name in slices)])
    every = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")
    keys = tuple(k for k in every if all(k in values for values in slices.values()))
    head = f"{'slice':<{width}}  {'images':>6}  " + "  ".join(f"{k:>10}" for k in keys)
    lines = [head, "-" * len(head)]
    for name, values in slices.items():
        numbers = "  ".join("         -" if values[k] < 0 else f"{values[k]:10.3f}" for k in keys)
        lines.append(f"{name:<{width}}  {values['n_images']:>6}  {numbers}")
    return "\n".join(lines)


def read_slices(path: Path, image_ids: Sequence[int]) -> dict[str, np.ndarray]:
    """``--slices FILE``: {name: [image ids]} as {name: (n_images,) bool} over the GT's images."""
    import json

    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"--slices: cannot read {path}: {err}") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f'--slices: {path} must hold a JSON object {{"name": [image ids], ...}}')
    position = {int(i): k for k, i in enumerate(image_ids)}
    out = {}
    for name, ids in raw.items():
        if not isinstance(ids, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise InputError(f"--slices: {path}: slice {name!r} must be a list of int image ids")
        unknown = sorted({i for i in ids if i not in position})
        if unknown:
            raise InputError(
                f"--slices: {path}: slice {name!r} names {len(unknown)} image id(s) not in the GT "
                f"'images': {unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
            )
        members = np.zeros(len(image_ids), dtype=bool)
        members[[position[i] for i in ids]] = True
        out[name] = members
    return out


def format_class_table(
    rows: Sequence[dict[str, Any]], conf_threshold: float, iou_threshold: float = 0.5, iou_type: str = "bbox"
) -> str:
    """One line per class: AP, AP50, AP75, AR100 (AR20 for keypoints), and P/R/F1 at the confidence threshold.

    P/R/F1 come from the detection confusion matrix, which matches boxes (also for segm and
    keypoints) at ``iou_threshold``; the header says so.
    """
    width = max([5, *(len(str(r["class"])) for r in rows)])
    ar_key = _protocol(iou_type).ar_key

    def num(v: float) -> str:
        return "    -" if v is None or math.isnan(v) or v < 0 else f"{v:5.3f}"

    head = (
        f"{'class':<{width}}  {'id':>5}  {'GT':>6}  {'AP':>5}  {'AP50':>5}  {'AP75':>5}  {ar_key:>5}"
        f"  {'P':>5}  {'R':>5}  {'F1':>5}   (P/R/F1 at score >= {conf_threshold:g}, box IoU >= "
        f"{iou_threshold:g}{', from the boxes' if iou_type != 'bbox' else ''})"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['class']:<{width}}  {r['category_id']:>5}  {r['n_gt']:>6}  {num(r['AP'])}  {num(r['AP50'])}"
            f"  {num(r['AP75'])}  {num(r[ar_key])}"
            f"  {num(r['precision'])}  {num(r['recall'])}  {num(r['f1'])}"
        )
    return "\n".join(lines)


def _atomic_write(path: Path, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, metrics: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(metrics, indent=1, allow_nan=False) + "\n"))


def detection_figures(
    evaluation: Evaluation, conf_threshold: float, iou_threshold: float
) -> Iterator[tuple[str, Figure]]:
    """The confusion matrix (counts and normalised by GT), PR curves, F1-confidence and AP bars."""
    from objdet.plotting.detection import plot_ap_bars, plot_confusion_matrix, plot_detection_curves

    names = evaluation.class_names
    details = f"IoU >= {iou_threshold:g}, score >= {conf_threshold:g}"
    confusion = evaluation.confusion
    yield "confusion_matrix.png", plot_confusion_matrix(confusion, names, details=details)[0]
    yield (
        "confusion_matrix_normalized.png",
        plot_confusion_matrix(confusion, names, normalize="true", details=details)[0],
    )
    if evaluation.curves is not None:
        yield "pr_curves.png", plot_detection_curves(evaluation.curves, "pr", names)[0]
        yield "f1_confidence.png", plot_detection_curves(evaluation.curves, "f1", names)[0]
    rows = [r for r in evaluation.class_table if r["AP"] >= 0]
    ap = np.array([r["AP"] for r in rows], dtype=np.float64)
    yield "ap_per_class.png", plot_ap_bars(ap, [r["class"] for r in rows], title="AP@[.50:.95] per class")[0]


def evaluation_figures(
    evaluation: Evaluation, conf_threshold: float, iou_threshold: float, diagnostics: Diagnostics
) -> Iterator[tuple[str, Figure]]:
    """Every figure of a run, one at a time, as (PNG file name, Figure): --out and --report both use it."""
    yield from detection_figures(evaluation, conf_threshold, iou_threshold)
    yield from diagnostic_figures(evaluation, diagnostics)
    yield from tide_figures(evaluation)


def save_figures(figures: Iterable[tuple[str, Figure]], out: Path | None, report: Any = None) -> list[Path]:
    """Each figure as ``out/<name>`` (PNG) and/or a page of ``report`` (a :class:`ReportPdf`), then closed."""
    from objdet.plotting._common import close_figure

    written = []
    for name, fig in figures:
        try:
            if out is not None:
                path = out / name
                _atomic_write(path, partial(fig.savefig, format="png", dpi=110), binary=True)
                written.append(path)
            if report is not None:
                report.add_figure(fig)
        finally:
            close_figure(fig)
    return written


#: the longest wait for the worker's PNGs before the run draws them itself
_WORKER_TIMEOUT_S = 600.0


class FigureWorker:
    """Draws a run's PNGs in a second Python process, which imports matplotlib while this one evaluates.

    ``objdet eval ... --out DIR`` spends about 0.25 s importing matplotlib and about 0.1 s per
    figure drawing. Started before the files are read, the worker's imports overlap the
    evaluation. When the run has everything else written, :meth:`render` gives it the finished
    :class:`Evaluation` (pickled, without the bootstrap state) and it writes the PNGs as
    :func:`save_figures` does here. Whatever goes wrong with it (no second process, a crash, an
    error while drawing, no answer within ``_WORKER_TIMEOUT_S``) makes :meth:`render` return
    None, and the caller draws in its own process as before, where a real error is raised as
    usual. A run that stops before :meth:`render` (bad input) stops the worker at once: it
    has written nothing.
    """

    def __init__(self) -> None:
        import subprocess

        from objdet.functional.compile_helper import python_command

        self._process: Any = subprocess.Popen(
            python_command("from objdet.cli import figure_worker_main; figure_worker_main()"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    @classmethod
    def start(cls) -> FigureWorker | None:
        """A started worker, or None when no second process can be started."""
        from objdet.functional.compile_helper import can_start_python

        if not can_start_python():
            return None
        try:
            return cls()
        except (OSError, ValueError):  # no usable sys.executable, say
            return None

    def render(
        self, evaluation: Evaluation, conf_threshold: float, iou_threshold: float, diagnostics: Diagnostics,
        out: Path,
    ) -> list[Path] | None:  # fmt: skip
        """The figures of ``evaluation`` as PNGs in ``out``, by the worker: the paths, or None when it
        could not write them all."""
        import dataclasses
        import pickle
        import subprocess

        figures_only = dataclasses.replace(evaluation, metrics={}, bootstrap=None, bootstrap_input=None)
        job = pickle.dumps((figures_only, conf_threshold, iou_threshold, diagnostics, out), protocol=5)
        try:
            reply, _ = self._process.communicate(job, timeout=_WORKER_TIMEOUT_S)
            status, paths = pickle.loads(reply)
        except subprocess.TimeoutExpired:
            self.close()
            return None
        except Exception:  # the worker died, or sent something else than its reply
            return None
        return [Path(p) for p in paths] if self._process.returncode == 0 and status == "ok" else None

    def close(self) -> None:
        """Stop the worker if it still runs (before :meth:`render` it has written nothing), and reap it."""
        from objdet.functional.compile_helper import stop_process

        stop_process(self._process)


def figure_worker_main() -> None:
    """The worker of :class:`FigureWorker`: imports, waits for its job on stdin, answers on stdout.

    Stopped (Ctrl-C, or the run's terminate) it ends quietly; a PNG being written is removed, as
    :func:`_atomic_write` removes its temporary file on any exception.
    """
    import pickle
    import signal
    import traceback

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
        import objdet.plotting.detection  # noqa: F401  # the slow imports, while the run evaluates

        data = sys.stdin.buffer.read()
        if not data:  # the run stopped before its figures
            os._exit(0)
        try:
            evaluation, conf_threshold, iou_threshold, diagnostics, out = pickle.loads(data)
            figures = evaluation_figures(evaluation, conf_threshold, iou_threshold, diagnostics)
            reply: tuple[str, Any] = ("ok", [str(p) for p in save_figures(figures, out)])
        except Exception:
            reply = ("error", traceback.format_exc())
        sys.stdout.buffer.write(pickle.dumps(reply))
        sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        os._exit(130)
    os._exit(0)  # every file is closed: skip the interpreter's teardown, which the run would wait for


# ----------------------------------------------------------------------------- TIDE (--tide)
# Everything of ``--tide`` is in this block (plus one call in build_parser and one in _run_eval).
#: tidecv's error types, in its order: the short names of the table and of the JSON
_TIDE_MAIN = ("cls", "loc", "both", "dupe", "bkg", "miss")
_TIDE_SPECIAL = ("fp", "fn")


def add_tide_arguments(ev: argparse.ArgumentParser) -> None:
    ev.add_argument(
        "--tide",
        action="store_true",
        help="also TIDE's error breakdown (dAP of each error type, tidecv's numbers; on the boxes, or on "
        "the masks with --iou-type segm)",
    )
    ev.add_argument("--tide-pos-threshold", type=float, default=0.5, help="TIDE foreground IoU (0.5)")
    ev.add_argument("--tide-bg-threshold", type=float, default=0.1, help="TIDE background IoU (0.1)")
    ev.add_argument(
        "--worst-images",
        type=int,
        default=0,
        metavar="K",
        help="with --tide: the K images with the most TIDE errors (ties: lower F1 at --conf-threshold)",
    )
    ev.add_argument(
        "--label-errors",
        type=int,
        default=0,
        metavar="N",
        help="with --tide: the N most confident detections (score >= --conf-threshold) TIDE calls "
        "classification or background errors: candidates for a wrong or missing label",
    )


def check_tide_arguments(args: argparse.Namespace) -> None:
    for flag, value in (("--worst-images", args.worst_images), ("--label-errors", args.label_errors)):
        if value < 0:
            raise InputError(f"{flag}: expected a non-negative integer, got {value}")
        if value and not args.tide:
            raise InputError(f"{flag} reads TIDE's error types: add --tide")
    if not args.tide:
        return
    if not 0.0 < args.tide_pos_threshold <= 1.0:
        raise InputError(f"--tide-pos-threshold: expected a value in (0, 1], got {args.tide_pos_threshold}")
    if not 0.0 <= args.tide_bg_threshold <= args.tide_pos_threshold:
        raise InputError(
            f"--tide-bg-threshold: expected a value in [0, {args.tide_pos_threshold:g}] "
            f"(the foreground threshold), got {args.tide_bg_threshold}"
        )


@dataclass
class TideImages:
    """What ``--worst-images`` / ``--label-errors`` read: the per-detection TIDE codes with their files' ids.

    Images in the GT file's order (TIDE's): ``image_ids`` (N,); per kept detection (image by
    image, by score inside) ``score``, ``code``, ``fix_label`` (the GT class a classification
    error overlaps), ``label``, ``result_index`` (its position in the results file); per image
    ``det_count``, and ``gt_status`` / ``gt_count`` of its non-crowd GTs.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    score: np.ndarray
    code: np.ndarray
    fix_label: np.ndarray
    label: np.ndarray
    result_index: np.ndarray
    det_count: np.ndarray
    gt_status: np.ndarray
    gt_count: np.ndarray


def worst_images_json(images: TideImages, k: int, conf_threshold: float) -> list[dict[str, Any]]:
    """The ``k`` images with the most TIDE errors (ties: lower F1 at ``conf_threshold``, then file order)."""
    from objdet.functional.tide import MAIN_ERRORS, tide_image_scores_np, worst_image_order

    scores = tide_image_scores_np(
        images.score, images.code, images.det_count, images.gt_status, images.gt_count, conf_threshold
    )
    rows = worst_image_order(scores["errors"], scores["f1"])[:k]
    keys = ("errors", *MAIN_ERRORS, "miss", "tp", "fp", "fn")
    return [
        {
            "image_id": int(images.image_ids[r]),
            **{key: int(scores[key][r]) for key in keys},
            "f1": float(scores["f1"][r]),
        }
        for r in rows.tolist()
    ]


def label_errors_json(
    images: TideImages, n: int, min_score: float, names: Sequence[str]
) -> list[dict[str, Any]]:
    """The ``n`` most confident label-error candidates (as ``TIDE.label_error_candidates`` picks them)."""
    from objdet.functional.tide import tide_label_error_rows_np
    from objdet.ops.tide_cpu import CLS, TYPE_MASK

    rows = tide_label_error_rows_np(images.score, images.code, min_score, n)
    det_image = np.repeat(images.image_ids, images.det_count)
    out = []
    for r in rows.tolist():
        is_cls = (int(images.code[r]) & TYPE_MASK) == CLS
        label, fix = int(images.label[r]), int(images.fix_label[r])
        out.append(
            {
                "result_index": int(images.result_index[r]),
                "image_id": int(det_image[r]),
                "category_id": int(images.category_ids[label]),
                "class": names[label],
                "score": float(images.score[r]),
                "kind": "cls" if is_cls else "bkg",
                "gt_category_id": int(images.category_ids[fix]) if is_cls else None,
                "gt_class": names[fix] if is_cls else None,
            }
        )
    return out


def format_worst_images(rows: Sequence[dict[str, Any]], conf_threshold: float) -> str:
    head = (
        f"{'image':>10}  {'errors':>6}"
        + "".join(f"  {k:>4}" for k in ("cls", "loc", "both", "dupe", "bkg", "miss"))
        + f"  {'F1':>5}   (worst images by TIDE errors; F1 at score >= {conf_threshold:g})"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        counts = "".join(f"  {r[k]:>4}" for k in ("cls", "loc", "both", "dupe", "bkg", "miss"))
        lines.append(f"{r['image_id']:>10}  {r['errors']:>6}{counts}  {r['f1']:5.3f}")
    return "\n".join(lines)


def format_label_errors(rows: Sequence[dict[str, Any]], min_score: float) -> str:
    head = (
        f"{'image':>10}  {'result':>7}  {'score':>5}  kind  detection -> overlapped GT   "
        f"(label-error candidates, score >= {min_score:g})"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        what = f"{r['class']} -> {r['gt_class']}" if r["kind"] == "cls" else f"{r['class']} -> no GT"
        lines.append(
            f"{r['image_id']:>10}  {r['result_index']:>7}  {r['score']:5.3f}  {r['kind']:<4}  {what}"
        )
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def tide_arrays(
    gt: GtArrays,
    dt: DtArrays,
    pos_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    iou_type: Literal["bbox", "segm"] = "bbox",
) -> Any:
    """TIDE of columns read by :mod:`objdet.io.coco_arrays`, without torch: a ``TideResult``.

    ``iou_type="bbox"`` matches the boxes, ``"segm"`` the masks (pycocotools' IoU on the
    RLEs, tidecv's mask mode; the columns must have been read with "segm"). Images are taken
    in the order of the GT file's ``images``, as tidecv does: that order breaks score ties
    across images (:class:`~objdet.training.metrics.TIDE` with ``image_id`` uses the id order
    instead).
    """
    return tide_classified(gt, dt, pos_threshold, bg_threshold, iou_type)[0]


def tide_classified(
    gt: GtArrays,
    dt: DtArrays,
    pos_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    iou_type: Literal["bbox", "segm"] = "bbox",
) -> tuple[Any, TideImages]:
    """:func:`tide_arrays` and the :class:`TideImages` that ``--worst-images`` / ``--label-errors`` read."""
    _start_numba()
    from objdet.functional.tide import tide_errors_np
    from objdet.ops.tide_cpu import tide_classify_np

    n_images = len(gt.image_ids)
    order = gt.image_file_order if gt.image_file_order is not None else np.arange(n_images)
    pair_iou = None
    if iou_type == "segm":
        if gt.rles is None or dt.rles is None:
            raise ValueError("TIDE on masks needs the columns read with iou_type 'segm'")
        pair_iou = _segm_pair_iou(gt, dt)[0]
    elif gt.boxes is None or dt.boxes is None:
        raise ValueError("TIDE on boxes needs the columns read with iou_type 'bbox'")
    s = tide_classify_np(
        order[dt.img], dt.label, dt.score, dt.boxes, order[gt.img], gt.label, gt.boxes, gt.crowd.astype(bool),
        n_images, pos_threshold, bg_threshold, pair_iou=pair_iou,
    )  # fmt: skip
    keep = s["keep"]
    result = tide_errors_np(
        dt.score[keep], dt.label[keep], s["code"], s["fix_label"], gt.label[s["gt_keep"]], s["gt_status"]
    )
    ids_in_file_order = np.empty_like(gt.image_ids)
    ids_in_file_order[order] = gt.image_ids
    images = TideImages(
        image_ids=ids_in_file_order, category_ids=gt.category_ids, score=dt.score[keep], code=s["code"],
        fix_label=s["fix_label"], label=dt.label[keep], result_index=dt.index[keep],
        det_count=s["det_count"], gt_status=s["gt_status"], gt_count=s["gt_count"],
    )  # fmt: skip
    return result, images


def tide_json(result: Any) -> dict[str, Any]:
    """``{"main": {cls, loc, both, dupe, bkg, miss}, "special": {fp, fn}}`` in AP points."""
    return {
        "main": {k: float(result.main[k]) for k in _TIDE_MAIN},
        "special": {k: float(result.special[k]) for k in _TIDE_SPECIAL},
    }


def format_tide_table(result: Any, pos_threshold: float, bg_threshold: float, iou_type: str = "bbox") -> str:
    """tidecv's summary: the AP, then the dAP of the main and special errors (two decimals)."""
    main = "".join(f"  {k.capitalize():>6}" for k in _TIDE_MAIN)
    special = "".join(f"  {k.upper():>6}" for k in _TIDE_SPECIAL)
    lines = [
        f"TIDE ({'mask' if iou_type == 'segm' else 'box'} IoU: "
        f"foreground {pos_threshold:g}, background {bg_threshold:g}); "
        f"AP{pos_threshold * 100:g} = {result.ap:.2f}",
        f"  main errors   {main}   |  special {special}",
        "  dAP           "
        + "".join(f"  {result.main[k]:6.2f}" for k in _TIDE_MAIN)
        + "   |          "
        + "".join(f"  {result.special[k]:6.2f}" for k in _TIDE_SPECIAL),
        "  count         " + "".join(f"  {result.counts[k]:6d}" for k in _TIDE_MAIN),
    ]
    return "\n".join(lines)


def run_tide(
    args: argparse.Namespace, evaluation: Evaluation, arrays: tuple[Any, Any] | None
) -> tuple[str, float]:
    """``--tide``: the table, ``tide`` in the metrics, the result kept for ``tide.png``; and the time taken.

    ``arrays``: the files' columns (read here when the evaluation did not read them: ``--device
    cuda``). TIDE's kernel is the compiled CPU one on either route.
    """
    t0 = time.perf_counter()
    pos, bg = args.tide_pos_threshold, args.tide_bg_threshold
    if arrays is None:
        from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays

        with warnings.catch_warnings():  # already reported by the evaluation's reading
            warnings.simplefilter("ignore")
            gt = read_gt_arrays(args.gt, iou_type=args.iou_type)
            arrays = (gt, read_dt_arrays(args.dt, gt, skip_unknown_categories=args.skip_unknown_categories))
    result, images = tide_classified(arrays[0], arrays[1], pos, bg, args.iou_type)
    evaluation.metrics["tide"] = tide_json(result)
    evaluation.tide = (result, pos, bg, args.iou_type)
    table = format_tide_table(result, pos, bg, args.iou_type)
    if args.worst_images:
        worst = worst_images_json(images, args.worst_images, args.conf_threshold)
        evaluation.metrics["worst_images"] = worst
        table += "\n\n" + format_worst_images(worst, args.conf_threshold)
    if args.label_errors:
        rows = label_errors_json(images, args.label_errors, args.conf_threshold, evaluation.class_names)
        evaluation.metrics["label_error_candidates"] = rows
        table += "\n\n" + format_label_errors(rows, args.conf_threshold)
    return table, time.perf_counter() - t0


def tide_figures(evaluation: Evaluation) -> Iterator[tuple[str, Figure]]:
    """tide.png: the dAP bars, after :func:`run_tide`."""
    if evaluation.tide is None:
        return
    from objdet.plotting.tide import plot_tide

    result, pos, bg, iou_type = evaluation.tide
    kind = "mask" if iou_type == "segm" else "box"
    details = f"AP{pos * 100:g} = {result.ap:.2f}; {kind} IoU fg {pos:g}, bg {bg:g}"
    yield "tide.png", plot_tide({**result.main, **result.special}, details=details)[0]


# ----------------------------------------------------------------------------- bootstrap (--bootstrap)
# (issue 13) Percentile intervals over images for map, map_50, map_75 and per-class AP, from the
# matched state (nothing is matched again): functional.bootstrap on the CPU route (numpy + numba,
# no torch), MeanAveragePrecision.bootstrap on the torch route; the same draws for the same seed.
@dataclass
class BootstrapRequest:
    """What ``--bootstrap`` / ``--bootstrap-seed`` / ``--bootstrap-level`` ask for."""

    n_resamples: int
    seed: int = 0
    level: float = 0.95


def add_bootstrap_arguments(ev: argparse.ArgumentParser) -> None:
    group = ev.add_argument_group("confidence intervals (bootstrap over images)")
    group.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="percentile intervals of map, map_50, map_75 and per-class AP over N resamples of the "
        "images (1000 is usual); with --json / --out they go into the JSON as 'bootstrap'",
    )
    group.add_argument("--bootstrap-seed", type=int, default=0, metavar="S", help="seed of the resamples (0)")
    group.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER.json",
        help="with --bootstrap: a second results file on the same GT (another checkpoint); adds the paired "
        "difference DT - OTHER of map, map_50, map_75 and per-class AP with its interval, both resampled "
        "with the same draws ('bootstrap_comparison' in the JSON)",
    )
    group.add_argument(
        "--bootstrap-level", type=float, default=0.95, metavar="L", help="interval level, in (0, 1) (0.95)"
    )


def check_bootstrap_arguments(args: argparse.Namespace) -> BootstrapRequest | None:
    if args.compare is not None and args.bootstrap is None:
        raise InputError(
            "--compare gives the paired difference with its bootstrap interval: add --bootstrap N"
        )
    if args.compare is not None and args.compare.is_dir():
        raise InputError(f"--compare: {args.compare} is a directory, expected a COCO results file")
    if args.bootstrap is None:
        return None
    if args.bootstrap < 1:
        raise InputError(f"--bootstrap: expected a positive number of resamples, got {args.bootstrap}")
    if not 0.0 < args.bootstrap_level < 1.0:  # NaN fails too
        raise InputError(f"--bootstrap-level: expected a value in (0, 1), got {args.bootstrap_level}")
    if args.bootstrap_seed < 0:
        raise InputError(f"--bootstrap-seed: expected an integer >= 0, got {args.bootstrap_seed}")
    return BootstrapRequest(args.bootstrap, args.bootstrap_seed, args.bootstrap_level)


def bootstrap_state(
    state: dict[str, np.ndarray],
    gt: GtArrays,
    crowd: np.ndarray,
    gt_area: np.ndarray,
    proto: _Protocol = _COCO,
) -> Any:
    """The ``ImageWeightedState`` of :func:`evaluate_arrays`' matched state (images in GT id order).

    As :class:`~objdet.training.metrics.MeanAveragePrecision` builds it: a GT row per (image,
    class) with its non-ignored GTs of area "all" (not a crowd, area in range), the lanes of
    area "all", maxDets 100, every image of the GT counted (also those without detections or GTs).
    """
    from objdet.functional.bootstrap import ImageWeightedState
    from objdet.ops.coco_cpu import gt_image_class_counts

    n_images = len(gt.image_ids)
    labels, counts, per_image = gt_image_class_counts(
        gt.img, gt.label, crowd, gt_area, proto.area_ranges, n_images
    )
    return ImageWeightedState(
        scores=state["scores"], labels=state["labels"], rank=state["rank"], tp=state["tp"],
        ignored=state["ignored"], det_image=state["img"], gt_labels=labels, gt_counts_all=counts[:, 0],
        gt_image=np.repeat(np.arange(n_images), per_image),
        lanes=np.arange(len(_IOU_THRESHOLDS)) * len(proto.area_ranges), rec_thresholds=_REC_THRESHOLDS,
        max_det=proto.max_dets[-1], iou_thresholds=_IOU_THRESHOLDS, n_images=n_images,
    )  # fmt: skip


def _arrays_bootstrap(state: Any, n_resamples: int, level: float, seed: int) -> Any:
    from objdet.functional.bootstrap import bootstrap_intervals

    return bootstrap_intervals(state, n_resamples, level, seed)


def _metric_bootstrap(metric: Any, n_resamples: int, level: float, seed: int) -> Any:
    return metric.bootstrap(n_resamples=n_resamples, level=level, seed=seed)


_BOOTSTRAP_KEYS = ("map", "map_50", "map_75")


def bootstrap_json(result: Any, category_ids: Sequence[int], names: Sequence[str]) -> dict[str, Any]:
    """``{"n_resamples", "seed", "level", "map": {estimate, low, high, bias}, ..., "per_class": [...]}``."""
    out: dict[str, Any] = {"n_resamples": result.n_resamples, "seed": result.seed, "level": result.level}
    for key in _BOOTSTRAP_KEYS:
        out[key] = {
            "estimate": result.estimate[key],
            "low": result.low[key],
            "high": result.high[key],
            "bias": result.bias[key],
        }
    out["per_class"] = [
        {
            "category_id": int(category_ids[c]),
            "class": names[c],
            "estimate": result.estimate["map_per_class"][k],
            "low": result.low["map_per_class"][k],
            "high": result.high["map_per_class"][k],
        }
        for k, c in enumerate(np.asarray(result.classes).tolist())
    ]
    return _plain(out)


def format_bootstrap_table(boot: dict[str, Any], per_class: bool = False) -> str:
    """The intervals of ``bootstrap_json``: map, map_50, map_75 (and, on request, every class)."""

    def num(v: float | None) -> str:
        return f"{'-':>8}" if v is None else f"{v:8.3f}"

    rows = [(key, boot[key]) for key in _BOOTSTRAP_KEYS]
    if per_class:
        rows += [(f"AP {r['class']}", {**r, "bias": None}) for r in boot["per_class"]]
    width = max(len(name) for name, _ in rows)
    head = f"{'':<{width}}  {'estimate':>8}  {'low':>8}  {'high':>8}  {'bias':>8}"
    lines = [
        f"Bootstrap over images: {boot['level'] * 100:g}% percentile intervals, "
        f"{boot['n_resamples']} resamples, seed {boot['seed']}",
        head,
        "-" * len(head),
    ]
    for name, v in rows:
        bias = "" if v["bias"] is None else f"  {v['bias']:+8.3f}"
        lines.append(f"{name:<{width}}  {num(v['estimate'])}  {num(v['low'])}  {num(v['high'])}{bias}")
    lines.append("bias: mean of the resamples minus the estimate (AP leans upwards when resampled)")
    return "\n".join(lines)


def paired_bootstrap(mine: Evaluation, other: Evaluation, request: BootstrapRequest) -> Any:
    """The paired bootstrap ``mine - other`` of two evaluations of the same images (same route)."""
    a, b = mine.bootstrap_input, other.bootstrap_input
    assert a is not None and b is not None
    if hasattr(a, "bootstrap"):  # the metrics of the torch route
        return a.bootstrap(n_resamples=request.n_resamples, level=request.level, seed=request.seed, other=b)
    from objdet.functional.bootstrap import bootstrap_intervals

    return bootstrap_intervals(a, request.n_resamples, request.level, request.seed, other=b)


def run_comparison(
    request: BootstrapRequest,
    evaluation: Evaluation,
    other: Evaluation,
    category_ids: Sequence[int],
    name: str,
) -> str:
    """``--compare``: ``bootstrap_comparison`` in the metrics; returns the table to print."""
    result = paired_bootstrap(evaluation, other, request)
    boot = bootstrap_json(result, category_ids, evaluation.class_names)
    evaluation.metrics["bootstrap_comparison"] = {"other": name, **boot}
    table = format_bootstrap_table(boot).splitlines()
    table[0] = (
        f"Paired bootstrap, DT - {name}: {boot['level'] * 100:g}% percentile intervals of the difference, "
        f"{boot['n_resamples']} resamples, seed {boot['seed']} (an interval without 0: a real difference)"
    )
    return "\n".join(table)


def run_bootstrap(
    request: BootstrapRequest, evaluation: Evaluation, category_ids: Sequence[int]
) -> tuple[str, float]:
    """``--bootstrap``: ``bootstrap`` in the metrics; returns the table to print and the time taken."""
    assert evaluation.bootstrap is not None
    t0 = time.perf_counter()
    result = evaluation.bootstrap(request.n_resamples, request.level, request.seed)
    evaluation.metrics["bootstrap"] = bootstrap_json(result, category_ids, evaluation.class_names)
    return format_bootstrap_table(evaluation.metrics["bootstrap"]), time.perf_counter() - t0


# ----------------------------------------------------------------------------- report (--report)
# (issue 13) One multi-page PDF (matplotlib's PdfPages): the summary and the per-class table as text
# pages, every figure the run makes (those --out writes as PNGs, from evaluation_figures), then the
# slices and bootstrap tables as text pages.
_REPORT_PAGE = (11.69, 8.27)  # A4 landscape, inches
_REPORT_LINES = 52  # text lines per page (the title aside)
_REPORT_WIDTH = 130  # characters per line; longer lines are wrapped


def add_report_arguments(ev: argparse.ArgumentParser) -> None:
    ev.add_argument(
        "--report",
        type=Path,
        metavar="PDF",
        help="write one PDF: the summary, the per-class table, every plot and the slices / bootstrap tables",
    )


def check_report_arguments(args: argparse.Namespace) -> None:
    if args.report is not None and args.report.is_dir():
        raise InputError(f"--report: {args.report} is a directory, expected a file name (report.pdf)")


def text_pages(lines: Sequence[str], header: int = 0, per_page: int = _REPORT_LINES) -> list[list[str]]:
    """``lines`` cut into pages of at most ``per_page`` lines, the first ``header`` lines atop each page.

    One page at least (an empty table is one page with its header).
    """
    head, body = list(lines[:header]), list(lines[header:])
    room = max(per_page - len(head), 1)
    return [head + body[k : k + room] for k in range(0, max(len(body), 1), room)]


def report_pages(
    evaluation: Evaluation, args: argparse.Namespace, extra: Sequence[str], timing: str
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """The report's text pages as (title, lines): those before the figures and those after them.

    Before: the summary (files, the 12 COCO lines, ``extra``: the diagnostics and TIDE lines
    printed, the timing line), the per-class table. After: the slices table (--slices) and the
    bootstrap table with every class (--bootstrap).
    """
    summary = [
        f"ground truth: {args.gt}",
        f"detections:   {args.dt}",
        "",
        *format_summary(evaluation.stats, args.iou_type).splitlines(),
        *(["", *extra] if extra else []),
        "",
        timing,
    ]
    table = format_class_table(evaluation.class_table, args.conf_threshold, args.iou_threshold, args.iou_type)
    before = [("objdet eval: summary", page) for page in text_pages(summary)]
    before += [("per class", page) for page in text_pages(table.splitlines(), header=2)]
    after = []
    if "slices" in evaluation.metrics:
        lines = format_slice_table(evaluation.metrics["slices"]).splitlines()
        after += [("slices", page) for page in text_pages(lines, header=2)]
    if "bootstrap" in evaluation.metrics:
        lines = format_bootstrap_table(evaluation.metrics["bootstrap"], per_class=True).splitlines()
        after += [("bootstrap", page) for page in text_pages(lines, header=3)]
    return before, after


def text_figure(title: str, lines: Sequence[str], core_fonts: bool = False) -> Figure:
    """A page of monospaced text; lines longer than 130 characters are wrapped, the font fits the width.

    ``core_fonts``: for ``pdf.use14corefonts`` (Courier's only weight is "medium").
    """
    import textwrap

    from matplotlib.figure import Figure

    wrapped = [
        part
        for line in lines
        for part in (textwrap.wrap(line, _REPORT_WIDTH, subsequent_indent="    ") if line.strip() else [line])
    ]
    fig = Figure(figsize=_REPORT_PAGE)
    width_pt = (_REPORT_PAGE[0] - 1.0) * 72  # half an inch of margin each side
    longest = max([40, *(len(line) for line in wrapped)])
    size = min(9.0, width_pt / (0.61 * longest))  # a monospaced glyph is ~0.6 em wide
    left = 0.5 / _REPORT_PAGE[0]
    fig.text(left, 0.95, title, fontsize=13, fontweight="bold", va="top")
    fig.text(
        left, 0.89, "\n".join(wrapped), family="monospace",
        fontweight="medium" if core_fonts else "normal", fontsize=size, va="top",
        linespacing=1.25,
    )  # fmt: skip
    return fig


class ReportPdf:
    """A multi-page PDF written through a temporary file in the same directory, renamed when complete."""

    def __init__(self, path: Path, title: str) -> None:
        self.path, self.title = path, title
        self.pages = 0

    def __enter__(self) -> ReportPdf:
        from matplotlib.backends.backend_pdf import PdfPages

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._handle = os.fdopen(fd, "wb")
        metadata = {"Title": self.title, "Creator": f"objdet {_version()}"}
        self._pdf = PdfPages(self._handle, metadata=metadata)
        return self

    def add_figure(self, fig: Figure) -> None:
        self._pdf.savefig(fig)
        self.pages += 1

    def add_text(self, pages: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Text pages, numbered "(k/n)" in the title when a title has several pages.

        Text that the PDF's standard fonts can show (Latin-1 and Windows-1252) is written in
        Courier / Helvetica: searchable, and a few kB a page; other text embeds DejaVu's glyphs.
        """
        import matplotlib

        count: dict[str, int] = {}
        for title, _ in pages:
            count[title] = count.get(title, 0) + 1
        seen: dict[str, int] = {}
        for title, lines in pages:
            seen[title] = seen.get(title, 0) + 1
            if count[title] > 1:
                title = f"{title} ({seen[title]}/{count[title]})"
            try:
                "\n".join([title, *lines]).encode("cp1252")
                core = True
            except UnicodeEncodeError:
                core = False
            with matplotlib.rc_context({"pdf.use14corefonts": core}):
                self.add_figure(text_figure(title, lines, core))

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            self._pdf.close()
            self._handle.close()
            if kind is None:
                os.chmod(self._tmp, 0o666 & ~_umask())
                os.replace(self._tmp, self.path)
        finally:
            Path(self._tmp).unlink(missing_ok=True)


def write_report(
    args: argparse.Namespace,
    evaluation: Evaluation,
    figures: Iterable[tuple[str, Figure]],
    extra: Sequence[str],
    timing: str,
    out: Path | None,
) -> tuple[list[Path], int]:
    """``--report``: the PDF (text pages, then ``figures``, also saved as PNGs under ``out``); its pages."""
    before, after = report_pages(evaluation, args, extra, timing)
    with ReportPdf(args.report, f"objdet eval: {Path(args.dt).name} on {Path(args.gt).name}") as pdf:
        pdf.add_text(before)
        written = save_figures(figures, out, pdf)
        pdf.add_text(after)
    return [*written, args.report], pdf.pages


# ----------------------------------------------------------------------------- command line
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("objdet")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="objdet", description="Detection metrics, exact and fast.")
    parser.add_argument("--version", action="version", version=f"objdet {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser(
        "eval",
        help="evaluate a COCO results file against a COCO annotation file",
        description="COCO evaluation (pycocotools' numbers) plus a detection confusion matrix.",
    )
    ev.add_argument("gt", nargs="?", type=Path, help="COCO annotation file (ground truth)")
    ev.add_argument("dt", nargs="?", type=Path, help="COCO results file (detections)")
    ev.add_argument(
        "--demo",
        action="store_true",
        help="use the small data set shipped with objdet (people with keypoints for --iou-type keypoints)",
    )
    ev.add_argument(
        "--iou-type",
        choices=("bbox", "segm", "keypoints"),
        default="bbox",
        help="bbox: box IoU; segm: mask IoU on the files' RLEs / polygons; keypoints: OKS with COCO's "
        "17 person sigmas (default bbox)",
    )
    ev.add_argument("--out", type=Path, help="directory for metrics.json and the plots")
    ev.add_argument("--json", type=Path, help="write the metrics as JSON to this file")
    ev.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ev.add_argument("--class-names", nargs="+", metavar="NAME", help="names for the categories, in id order")
    ev.add_argument("--iou-threshold", type=float, default=0.5, help="confusion matrix IoU (0.5)")
    ev.add_argument("--conf-threshold", type=float, default=0.25, help="confusion matrix min score (0.25)")
    ev.add_argument("--batch-size", type=int, default=64, help="images per update with --device cuda (64)")
    ev.add_argument("--no-plots", action="store_true", help="with --out: write only metrics.json")
    ev.add_argument(
        "--skip-unknown-categories",
        action="store_true",
        help="leave out results whose category_id is not in the GT, with a warning (as pycocotools "
        "ignores them); without it they are an error",
    )
    ev.add_argument(
        "--slices",
        type=Path,
        metavar="FILE",
        help='JSON {"name": [image ids], ...}: also evaluate these subsets of the images (same matching)',
    )
    ev.add_argument(
        "--lvis",
        action="store_true",
        help="LVIS federated evaluation (the LVIS API's numbers; GT.json an LVIS annotation file), "
        "see objdet.cli_lvis",
    )
    ev.add_argument("-q", "--quiet", action="store_true", help="print nothing but warnings and errors")
    add_diagnostic_arguments(ev)
    add_tide_arguments(ev)
    add_bootstrap_arguments(ev)
    add_report_arguments(ev)
    return parser


def _printer(stdout: IO[str], quiet: bool) -> Callable[[str], None]:
    """``say(text)``: a line on ``stdout`` unless ``quiet``. When the reader goes away (``objdet eval
    ... | head``) the rest is not printed, and the run goes on: its files are still written."""
    closed = quiet

    def say(text: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            print(text, file=stdout, flush=True)  # nothing left in the buffer for the exit to fail on
        except BrokenPipeError:
            closed = True
            if stdout is sys.stdout:  # no second error when Python flushes stdout at exit
                try:
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())
                except (OSError, ValueError):
                    pass

    return say


def _device(name: str) -> Any:
    """The torch device of ``--device``; ``None`` for the CPU (the compiled engine, no torch import)."""
    if name == "cpu":
        return None
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: expected cpu or cuda, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, got {name!r}")
    return None if device.type == "cpu" else device


def _run_eval(args: argparse.Namespace, stdout: IO[str], stderr: IO[str], figure_worker: bool = False) -> int:
    if args.demo:
        if args.gt is not None or args.dt is not None:
            raise InputError("--demo takes no GT/DT files")
        from objdet.data import demo_files

        args.gt, args.dt = demo_files("keypoints" if args.iou_type == "keypoints" else "shapes")
    elif args.gt is None or args.dt is None:
        raise InputError(
            "expected GT.json and DT.json (or --demo)\n"
            "usage: objdet eval GT.json DT.json [--iou-type bbox|segm|keypoints] [--out DIR] [--json FILE] "
            "... "
            "(objdet eval --help for every option)"
        )
    if not 0.0 < args.iou_threshold <= 1.0:
        raise InputError(f"--iou-threshold: expected a value in (0, 1], got {args.iou_threshold}")
    if math.isnan(args.conf_threshold):
        raise InputError("--conf-threshold: expected a number, got nan")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} is a file, expected a directory")
    if args.json is not None and args.json.is_dir():
        raise InputError(f"--json: {args.json} is a directory, expected a file name")
    if args.batch_size < 1:
        raise InputError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    diagnostics = check_diagnostic_arguments(args)
    check_tide_arguments(args)
    boot = check_bootstrap_arguments(args)
    check_report_arguments(args)
    device = _device(args.device)
    if args.lvis:  # its own route: objdet.cli_lvis
        from objdet.cli_lvis import run_lvis

        return run_lvis(args, device, stdout, stderr)
    plots = args.out is not None and not args.no_plots
    use_worker = plots and figure_worker and device is None and args.report is None
    worker = FigureWorker.start() if use_worker else None
    try:
        return _evaluate_files(args, device, diagnostics, boot, plots, worker, stdout, stderr)
    finally:
        if worker is not None:
            worker.close()


@contextlib.contextmanager
def _without_gc() -> Iterator[None]:
    """Python's cycle collector paused while ``objdet eval`` reads and evaluates (and resumed after,
    as it was).

    Reading a results file makes millions of objects and no reference cycles; each collection
    walks every tracked object, so on 300k mask results the collector took a fifth of the
    run. TIDE, the bootstrap and the figures run with it on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _evaluate_files(
    args: argparse.Namespace,
    device: Any,
    diagnostics: Diagnostics,
    boot: BootstrapRequest | None,
    plots: bool,
    worker: FigureWorker | None,
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    """The rest of ``objdet eval`` once the arguments are checked (``worker``: see :class:`FigureWorker`)."""
    say = _printer(stdout, args.quiet)
    notes: list[str] = []  # warnings of the readers, printed once every input check has passed
    _load = partial(_read_file, notes=notes)
    skip = args.skip_unknown_categories
    terminal = None if args.quiet or not stderr.isatty() else stderr  # progress and notices go there
    t0 = time.perf_counter()
    with _without_gc():  # reading and evaluating: millions of objects, no cycles
        types = (args.iou_type,) if args.iou_type == "bbox" else ("bbox", args.iou_type)
        if args.tide and args.iou_type == "keypoints":
            raise InputError("--tide matches boxes: for keypoint files run it with --iou-type bbox")
        if device is None:
            if args.iou_type == "segm":  # the mask readers call numba: started first, scipy hidden
                _start_numba(
                    notice=(lambda text: print(text, file=terminal, flush=True)) if terminal else None
                )
            # (otherwise after reading: the files' objects are freed by then, so the peak RSS is lower)
            from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays

            gt_arrays = _load(lambda: read_gt_arrays(args.gt, iou_type=types), args.gt)
            category_ids = gt_arrays.category_ids.tolist()
            n_images = len(gt_arrays.image_ids)
        else:
            from objdet.io import load_coco_dt, load_coco_gt

            gt = _load(
                lambda: load_coco_gt(args.gt, iou_type=types, labels="contiguous", device=device), args.gt
            )
            category_ids, n_images = gt.category_ids, len(gt.target)
        if not category_ids:
            raise InputError(f"{args.gt}: the COCO ground truth has no 'categories': nothing to evaluate")
        if device is None:
            dt_arrays = _load(
                lambda: read_dt_arrays(args.dt, gt_arrays, skip_unknown_categories=skip), args.dt
            )
        else:
            preds = _load(
                lambda: load_coco_dt(args.dt, gt, device=device, skip_unknown_categories=skip), args.dt
            )
        if args.class_names is not None and len(args.class_names) != len(category_ids):
            raise InputError(
                f"--class-names: expected {len(category_ids)} names (one per category of {args.gt}), "
                f"got {len(args.class_names)}"
            )
        image_ids = gt_arrays.image_ids.tolist() if device is None else gt.image_ids
        slices = read_slices(args.slices, image_ids) if args.slices is not None else None
        for note in notes:
            print(f"objdet: warning: {note}", file=stderr)
        t_load = time.perf_counter() - t0
        bar = Progress(n_images, terminal)
        options = {
            "iou_type": args.iou_type,
            "class_names": args.class_names,
            "iou_threshold": args.iou_threshold,
            "conf_threshold": args.conf_threshold,
            "plots": plots or args.report is not None,  # the curves for the figures
            "progress": bar.update,
            "slices": slices,
            "diagnostics": diagnostics,
            "bootstrap": boot is not None,
        }
        try:  # masks are checked here (bad RLE, sizes of GT and results that differ): still bad input
            if device is None:
                _start_numba(notice=bar.note)
                evaluation = evaluate_arrays(gt_arrays, dt_arrays, **options)
            else:
                evaluation = evaluate(gt, preds, batch_size=args.batch_size, **options)
        except ValueError as err:
            raise InputError(f"{args.gt}, {args.dt}: {err}") from None
        finally:
            bar.close()
    t_eval = time.perf_counter() - t0 - t_load
    evaluation.metrics["files"] = {"gt": str(args.gt), "dt": str(args.dt)}
    say(format_summary(evaluation.stats, args.iou_type))
    say("")
    say(format_class_table(evaluation.class_table, args.conf_threshold, args.iou_threshold, args.iou_type))
    if "slices" in evaluation.metrics:
        say("")
        say(format_slice_table(evaluation.metrics["slices"]))
    diagnostic_lines = add_diagnostics(evaluation, diagnostics)
    if diagnostic_lines:
        say("")
    for line in diagnostic_lines:
        say(line)
    extra = list(diagnostic_lines)  # the lines of the summary page of --report, after the COCO ones
    if args.tide:  # TIDE: see run_tide
        arrays = (gt_arrays, dt_arrays) if device is None else None
        table, t_tide = run_tide(args, evaluation, arrays)
        say("")
        say(table)
        extra += ["", *table.splitlines()] if extra else table.splitlines()
    if boot is not None:  # the bootstrap: see run_bootstrap
        table, t_boot = run_bootstrap(boot, evaluation, category_ids)
        say("")
        say(table)
        if args.compare is not None:  # the same evaluation of the other file, then the paired bootstrap
            t0_compare = time.perf_counter()
            other = _evaluate_other(args, options, gt_arrays if device is None else gt, device, skip)
            say("")
            say(run_comparison(boot, evaluation, other, category_ids, str(args.compare)))
            t_boot += time.perf_counter() - t0_compare
    timing = (
        f"{n_images} images; files read in {t_load:.2f} s (imports included), "
        f"evaluated in {t_eval:.2f} s (matching, accumulate, confusion matrix)"
        + (f", TIDE in {t_tide:.2f} s" if args.tide else "")
        + (f", bootstrap in {t_boot:.2f} s" if boot is not None else "")
    )
    written = []
    if args.json is not None:
        write_json(args.json, evaluation.metrics)
        written.append(args.json)
    if args.out is not None:
        write_json(args.out / "metrics.json", evaluation.metrics)
        written.append(args.out / "metrics.json")
    figure_job = (evaluation, args.conf_threshold, args.iou_threshold, diagnostics)
    figures = evaluation_figures(*figure_job)
    if args.report is not None:  # the report: see write_report (the PNGs of --out on the way)
        files, pages = write_report(args, evaluation, figures, extra, timing, args.out if plots else None)
        written += files
    elif plots:
        drawn = None if worker is None else worker.render(*figure_job, args.out)
        written += drawn if drawn is not None else save_figures(figures, args.out)
    say("")
    say(timing)
    for path in written:
        say(f"wrote {path}" + (f" ({pages} pages)" if path == args.report else ""))
    return 0


def _evaluate_other(
    args: argparse.Namespace, options: dict[str, Any], gt: Any, device: Any, skip: bool
) -> Evaluation:
    """``--compare``: the second results file evaluated as the first (its warnings are not repeated)."""
    quiet = {
        **options,
        "plots": False,
        "progress": None,
        "slices": None,
        "diagnostics": None,
        "bootstrap": True,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if device is None:
                from objdet.io.coco_arrays import read_dt_arrays

                return evaluate_arrays(
                    gt, read_dt_arrays(args.compare, gt, skip_unknown_categories=skip), **quiet
                )
            from objdet.io import load_coco_dt

            preds = load_coco_dt(args.compare, gt, device=device, skip_unknown_categories=skip)
            return evaluate(gt, preds, batch_size=args.batch_size, **quiet)
        except (OSError, ValueError) as err:
            raise InputError(f"--compare: {args.compare}: {err}") from None


def _read_file(read: Callable[[], Any], path: Path, notes: list[str]) -> Any:
    """``read()``: errors as one-line InputErrors naming ``path``, CocoInputWarnings' texts into ``notes``."""
    from objdet.io.coco_arrays import CocoInputWarning, UnknownCategoryError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CocoInputWarning)
            result = read()
    except UnknownCategoryError as err:
        raise InputError(
            f"{path}: {err.detail}; --skip-unknown-categories skips such results (pycocotools ignores them)"
        ) from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 text file ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(f"{path}: {err}") from None
    for w in caught:
        if issubclass(w.category, CocoInputWarning):  # the message names the file
            notes.append(" ".join(str(w.message).split()))
        else:  # not ours: as if it had not been caught
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def main(
    argv: Sequence[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """Entry point of ``objdet``; returns the exit code (0, or 2 for bad input)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return _run_eval(args, stdout, stderr, figure_worker=argv is None)
    except InputError as err:
        message = " ".join(str(err).split())
        print(f"objdet: error: {message}", file=stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
