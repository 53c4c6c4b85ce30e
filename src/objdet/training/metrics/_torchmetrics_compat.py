"""What MeanAveragePrecision needs to behave like torchmetrics' outside the COCO engine.

Small pure helpers, each for one torchmetrics behaviour:

* :func:`resolve_grid`: torchmetrics' float32 default grids count as pycocotools' float64 ones;
* :func:`warn_on_many_detections`: torchmetrics' warning for images with many detections;
* :func:`last_max_det_ap` / :func:`last_max_det_class_ap`: faster-coco-eval's summary rule
  (AP read at the last max-detection threshold);
* :func:`apply_keeping_dtypes`: ``.to(...)`` / ``set_dtype(...)`` move the state, never recast it;
* :func:`fill_empty_list_states` / :func:`cat_state`: list states under DDP and at compute time.
* :func:`synced`: public reads of the state see the state of all ranks, as ``compute()`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn


# ---------------------------------------------------------------------------- grids
def _float32_forms(default: Sequence[float], start: float, end: float) -> tuple[list[float], list[float]]:
    """The two float32 spellings of a float64 grid: its rounding, and ``torch.linspace`` in float32."""
    rounded = torch.tensor(list(default), dtype=torch.float64).to(torch.float32).tolist()
    linspace = torch.linspace(start, end, len(default), dtype=torch.float32).tolist()
    return rounded, linspace


def resolve_grid(
    values: list[float] | None, default: Sequence[float], start: float, end: float
) -> list[float]:
    """``values``, or the exact float64 ``default`` grid when ``values`` is None or its float32 form.

    torchmetrics builds its default grids with ``torch.linspace(...)`` in float32 and users copy
    them (``torch.linspace(0.5, 0.95, 10).tolist()``); thresholds compared in float64 then sit
    up to 3e-8 away from pycocotools' (0.550000011920929 instead of 0.55), and an IoU or recall
    that lands exactly on a threshold is counted differently. A list that equals, entry by entry,
    either the float32 rounding of the default grid or torchmetrics' float32 ``linspace`` is
    therefore taken to mean the default and replaced by the float64 grid itself.

    Example:
        >>> import torch
        >>> from objdet.functional.coco import default_iou_thresholds
        >>> grid = resolve_grid(torch.linspace(0.5, 0.95, 10).tolist(), default_iou_thresholds(), 0.5, 0.95)
        >>> grid[1], resolve_grid([0.5, 0.75], default_iou_thresholds(), 0.5, 0.95)
        (0.55, [0.5, 0.75])
    """
    exact = list(default)
    if values is None:
        return exact
    if len(values) != len(exact):
        return values
    rounded, linspace = _float32_forms(exact, start, end)
    if all(v in (d, r, s) for v, d, r, s in zip(values, exact, rounded, linspace, strict=True)):
        return exact
    return values


# ---------------------------------------------------------------------------- many detections
def _count(item: Any, key: str) -> int:
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, Tensor) or value.ndim == 0:
        return 0
    return int(value.shape[0])


def warn_on_many_detections(preds: Any, iou_type: Sequence[str], limit: int) -> None:
    """Warn (once per call, on rank 0) when an image of ``preds`` has more than ``limit`` detections.

    torchmetrics' rule: an image whose ``boxes`` (for "bbox") or ``masks`` (for "segm") number
    more than ``max_detection_thresholds[-1]``. COCO keeps the ``limit`` best-scored detections
    of each (image, class) pair; past that count the lowest-scored ones of a crowded class are
    dropped, which lowers recall without notice. Only the counts are read (the input's first
    dimension, no host sync); entries that are not dicts of tensors are skipped here and
    reported by the input validation that runs next. Silence it with
    ``metric.warn_on_many_detections = False``.

    Example:
        >>> import warnings, torch
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_on_many_detections([{"boxes": torch.zeros(101, 4)}], ("bbox",), 100)
        >>> str(caught[0].message).split(":")[0]
        'Encountered more than 100 detections in a single image'
    """
    if not isinstance(preds, Sequence):
        return
    keys = [k for t, k in (("bbox", "boxes"), ("segm", "masks")) if t in iou_type]
    for item in preds:
        n = max((_count(item, k) for k in keys), default=0)
        if n > limit:
            many_detections_warning(limit)
            return


def warn_on_detection_counts(counts: np.ndarray, iou_type: Sequence[str], limit: int) -> None:
    """:func:`warn_on_many_detections` from the detections per image of a validated batch."""
    if ("bbox" in iou_type or "segm" in iou_type) and counts.size and int(counts.max()) > limit:
        many_detections_warning(limit)


def many_detections_warning(limit: int) -> None:
    rank_zero_warn(
        # one text per limit, so that Python's default filter shows it once, not every batch
        f"Encountered more than {limit} detections in a single image: COCO evaluation keeps "
        f"only the {limit} highest-scored detections of each class in "
        "an image (`max_detection_thresholds[-1]`), so some may be ignored; raise "
        "`max_detection_thresholds` if that matters, or set `metric.warn_on_many_detections = False` "
        "to silence this warning.",
        UserWarning,
    )


# ---------------------------------------------------------------------------- faster-coco-eval's summary
def last_max_det_ap(precision: Tensor) -> Tensor:
    """mAP (area all) read at the last max-detection threshold: faster-coco-eval's ``stats[0]``.

    ``precision``: pycocotools' (T, R, K, A, M) table, -1 where undefined. pycocotools reads
    ``stats[0]`` at maxDets = 100 whatever ``maxDets`` holds (so -1 without 100);
    faster-coco-eval, and torchmetrics with ``backend="faster_coco_eval"``, read it at
    ``maxDets[-1]``. The other 11 numbers agree between the two (both use the last value).
    """
    p = precision[:, :, :, 0, -1]
    defined = p > -1
    if not bool(defined.any()):
        return torch.tensor(-1.0, dtype=precision.dtype, device=precision.device)
    return p[defined].mean()


def last_max_det_class_ap(precision: Tensor) -> Tensor:
    """Per-class AP (area all) at the last max-detection threshold; -1 for a class with nothing defined."""
    # a contiguous (K, T * R) copy whatever the table's strides: the same sums on either engine
    p = precision[:, :, :, 0, -1].permute(2, 0, 1).flatten(1).contiguous()
    defined = p > -1
    ap = torch.where(defined, p, torch.zeros_like(p)).sum(1) / defined.sum(1).clamp(min=1)
    return torch.where(defined.any(1), ap, torch.full_like(ap, -1.0))


# ---------------------------------------------------------------------------- dtypes and devices
def _keep_dtype(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def apply(t: Tensor) -> Tensor:
        out = fn(t)
        # a cast (set_dtype, .to(dtype)) is undone from the original, so no precision is lost
        return out if out.dtype == t.dtype else t.to(device=out.device)

    return apply


def apply_keeping_dtypes(
    metric: Metric, fn: Callable[[Tensor], Tensor], exclude_state: Sequence[str]
) -> None:
    """Apply ``fn`` (from ``.to()`` / ``.cuda()`` / ``set_dtype()``) to the states, keeping each dtype.

    Call it after ``Metric._apply(fn, exclude_state=<every state>)``, which moves the metric's
    device and dtype attributes and its cached results. The states of the detection metrics are
    an exact, typed record (float64 scores, uint8 flag bytes, int32/int64 labels and counts):
    recasting them would break the bit operations of ``compute()`` (``set_dtype(torch.float64)``
    on uint8 flags) or change scores and hence ties. So a state follows the device of ``fn`` and
    keeps its dtype; ``compute()`` returns float32 numbers as torchmetrics, whatever the dtype set.
    """
    for key in metric._defaults:
        if key in exclude_state:
            continue
        apply = _keep_dtype(fn)
        default = metric._defaults[key]
        if isinstance(default, Tensor):
            metric._defaults[key] = apply(default)
        else:
            metric._defaults[key] = [apply(v) for v in default]
        value = getattr(metric, key)
        if isinstance(value, Tensor):
            setattr(metric, key, apply(value))
        else:
            setattr(metric, key, [apply(v) for v in value])


# ---------------------------------------------------------------------------- sync
#: a list state's element dtype and trailing shape (its rows may be any number)
ListStates = dict[str, tuple[torch.dtype, tuple[int, ...]]]


def fill_empty_list_states(metric: Metric, specs: ListStates) -> None:
    """Give every empty list state one empty tensor: a rank without updates still joins every gather."""
    for name, (dtype, shape) in specs.items():
        value = getattr(metric, name)
        if isinstance(value, list) and not value:
            value.append(torch.zeros((0, *shape), dtype=dtype, device=metric.device))


def cat_state(metric: Metric, name: str, specs: ListStates) -> Tensor:
    """A list state as one tensor (synced: already one), empty with its dtype and shape if no rows."""
    value = getattr(metric, name)
    if isinstance(value, Tensor):
        return value
    if not value:
        dtype, shape = specs[name]
        return torch.zeros((0, *shape), dtype=dtype, device=metric.device)
    if len(value) == 1:
        return value[0]
    if all(v.device.type == "cpu" and v.dtype == value[0].dtype and not v.requires_grad for v in value):
        # numpy's concatenation runs on this thread: torch.cat of the large states would use the
        # intra-op pool, whose threads wait for descheduled ones when DataLoader workers keep the
        # cores busy
        return torch.from_numpy(np.concatenate([v.numpy() for v in value]))
    return torch.cat(value)


@contextlib.contextmanager
def synced(metric: Metric) -> Iterator[None]:
    """The state of every rank inside the block, as ``compute()`` sees it; a no-op if already synced.

    Every rank must enter it (it gathers). Outside DDP it changes nothing.
    """
    synced_here = not metric._is_synced
    if synced_here:
        metric.sync(dist_sync_fn=metric.dist_sync_fn, should_sync=metric._to_sync)
    try:
        yield
    finally:
        if synced_here and metric._is_synced:
            metric.unsync(should_unsync=metric._should_unsync)
