"""Validation and flattening of torchmetrics-format detection inputs.

``preds`` and ``target`` are lists with one dict per image. preds: ``boxes`` (N, 4) float,
``scores`` (N,) float, ``labels`` (N,) int. target: ``boxes`` (M, 4) float, ``labels`` (M,)
int, optional ``iscrowd`` (M,) in {0, 1} and ``area`` (M,) float. With masks (iou_type
"segm"), ``masks`` (N, H, W) on both sides, bool or 0/1 values, the same (H, W) for the
detections and the GTs of one image; ``boxes`` are then needed only for "bbox". Errors
(:class:`~objdet.training.metrics._errors.InputError`, a ``ValueError`` and a ``TypeError``)
name the field, the image index, what was seen and what was expected.

A target may carry ``image_id`` (an int or a one-element integer tensor): given for every
image of a batch or for none (:func:`read_image_ids`).

Labels may have any integer dtype, or a floating dtype holding integers (``torch.tensor([])``,
the usual way to write "no objects", is float32); ``iscrowd`` may be bool.

CPU inputs are checked and converted by compiled loops (:mod:`objdet.ops.coco_cpu`): the
Python work is a few attribute reads per image, then one concatenation per field and one pass
over the values; a valid batch costs no per-element Python. Other devices use torch ops.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from objdet.functional.image_records import NO_IMAGE_ID
from objdet.ops import coco_cpu
from objdet.ops.boxes import BOX_FORMATS, box_convert
from objdet.ops.masks import check_masks
from objdet.training.metrics._errors import InputError


@dataclass
class FlatDetections:
    """A batch of images flattened: per detection and per GT, the image index in the batch.

    Without boxes (masks only) ``det_xywh`` / ``gt_xywh`` are None and ``gt_area`` holds the
    given areas (0 where none was given); with boxes ``gt_area`` is the given positive area,
    else the box area. ``gt_area_given`` is always the given area, 0 where absent.
    """

    n_images: int
    det_img: Tensor  # (D,) int64
    det_xywh: Tensor | None  # (D, 4) float64
    det_score: Tensor  # (D,) float64
    det_label: Tensor  # (D,) int64
    gt_img: Tensor  # (G,) int64
    gt_xywh: Tensor | None  # (G, 4) float64
    gt_label: Tensor  # (G,) int64
    gt_crowd: Tensor  # (G,) bool
    gt_area: Tensor  # (G,) float64
    gt_area_given: Tensor | None = None  # (G,) float64, 0 where not given
    det_area_given: Tensor | None = None  # (D,) float64 preds' optional ``area``, NaN where not given
    det_masks: list[Tensor] | None = None  # per image (n_i, H_i, W_i) bool
    gt_masks: list[Tensor] | None = None  # per image (m_i, H_i, W_i) bool
    image_ids: Tensor | None = None  # (B,) int64 targets' ``image_id``, None when not given
    det_kpts: Tensor | None = None  # (D, K, 3) float64 (x, y, score; score 0 when (D, K, 2) given)
    gt_kpts: Tensor | None = None  # (G, K, 3) float64 (x, y, visibility)
    gt_num_kpts: Tensor | None = None  # (G,) int64 labelled keypoints (given, else visibility > 0)
    gt_has_box: Tensor | None = None  # (G,) bool: the GT's image gave boxes (keypoints without bbox)
    det_count: np.ndarray | None = None  # (B,) int64 detections per image, on the host


_FORMAT_CODES = {"xyxy": 0, "xywh": 1, "cxcywh": 2}


def _is_list_of_dicts(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, str | bytes) and all(isinstance(d, dict) for d in x)


def _tensor(item: dict, key: str, side: str, i: int, required: bool = True) -> Tensor | None:
    if key not in item:
        if required:
            raise InputError(f"{side}[{i}] has no key '{key}' (keys seen: {sorted(item)})")
        return None
    value = item[key]
    if not isinstance(value, Tensor):
        raise InputError(f"{side}[{i}]['{key}'] must be a torch.Tensor, got {type(value).__name__}")
    return value


_BOX_DTYPES = (torch.int32, torch.int64, torch.int16, torch.uint8, torch.int8)


def _boxes(item: dict, side: str, i: int) -> Tensor:
    boxes = _tensor(item, "boxes", side, i)
    assert boxes is not None
    shape = boxes.shape
    if len(shape) != 2 or shape[1] != 4:
        if boxes.numel() == 0:
            return boxes.reshape(0, 4)
        raise InputError(f"{side}[{i}]['boxes'] must have shape (N, 4), got {tuple(shape)}")
    if not (boxes.is_floating_point() or boxes.dtype in _BOX_DTYPES):
        raise InputError(f"{side}[{i}]['boxes'] must be a float or integer tensor, got {boxes.dtype}")
    return boxes


def _masks(item: dict, side: str, i: int, n: int | None) -> Tensor:
    """The image's masks as (n, H, W) bool (checked: 0/1 values, count ``n`` if given)."""
    value = _tensor(item, "masks", side, i)
    assert value is not None
    try:
        masks = check_masks(value, f"{side}[{i}]['masks']")
    except (TypeError, ValueError) as err:
        raise InputError(str(err)) from None
    if n is not None and masks.shape[0] != n:
        raise InputError(
            f"{side}[{i}]['masks'] must hold one mask per box ({n}), got shape {tuple(value.shape)}"
        )
    return masks


def _keypoints(item: dict, side: str, i: int, n: int | None) -> Tensor:
    """The image's keypoints, (n, K, 2 or 3), checked for shape and dtype (values: :func:`_add_keypoints`)."""
    value = _tensor(item, "keypoints", side, i)
    assert value is not None
    widths = (2, 3) if side == "preds" else (3,)
    if value.ndim != 3 or value.shape[2] not in widths:
        if value.numel() == 0 and n in (0, None):
            return value.new_zeros(0, 0, 3, dtype=torch.float64)
        expected = " or ".join(f"(N, K, {w})" for w in widths)
        what = "(x, y[, score])" if side == "preds" else "(x, y, visibility)"
        raise InputError(
            f"{side}[{i}]['keypoints'] must have shape {expected} {what}, got {tuple(value.shape)}"
        )
    if value.is_complex() or value.dtype == torch.bool:
        raise InputError(f"{side}[{i}]['keypoints'] must be a float or integer tensor, got {value.dtype}")
    if n is not None and value.shape[0] != n:
        raise InputError(
            f"{side}[{i}]['keypoints'] must hold one pose per box ({n}), got shape {tuple(value.shape)}"
        )
    return value


def _vector(
    item: dict,
    key: str,
    side: str,
    i: int,
    n: int,
    kind: str,
    required: bool = True,
    ref: str = "boxes",
) -> Tensor | None:
    """``item[key]`` as an (n,) tensor; ``kind``: "float", "label" (integral values) or "any"."""
    value = _tensor(item, key, side, i, required)
    if value is None:
        return None
    if value.shape != (n,):
        if value.numel() == 0 and n == 0:
            value = value.reshape(0)
        elif value.ndim == 0 and n == 1:
            value = value.reshape(1)
        else:
            raise InputError(
                f"{side}[{i}]['{key}'] must have shape ({n},) to match '{ref}', got {tuple(value.shape)}"
            )
    if kind == "float" and not value.is_floating_point():
        raise InputError(f"{side}[{i}]['{key}'] must be a floating point tensor, got {value.dtype}")
    if kind == "label":
        if value.is_complex() or value.dtype == torch.bool:
            raise InputError(
                f"{side}[{i}]['{key}'] must be an integer tensor (or floats holding integers), "
                f"got {value.dtype}"
            )
        if value.is_floating_point():
            if n == 0:  # torch.tensor([]) is float32: an image without objects
                return value.new_zeros(0, dtype=torch.int64)
            frac = ~torch.isfinite(value) | (value != torch.round(value))
            if bool(frac.any()):
                bad = value[frac][0].item()
                raise InputError(f"{side}[{i}]['{key}'] must hold integer class ids, got {bad}")
            return value.to(torch.int64)
    return value


def _cat_boxes(boxes: list[Tensor], device: torch.device) -> Tensor:
    """Concatenate boxes, keeping float32/float64; other dtypes become float32."""
    if not boxes:
        return torch.zeros(0, 4, device=device)
    out = torch.cat(boxes).to(device)
    return out if out.dtype in (torch.float32, torch.float64) else out.float()


def _to_xywh_float64(boxes: Tensor, box_format: str) -> Tensor:
    """xywh in float64, converted as torchmetrics does (through xyxy, in the input's precision).

    torchmetrics converts with torchvision in the input dtype before pycocotools sees the
    boxes, so float32 inputs give float32-rounded widths; doing the same keeps results
    identical to torchmetrics for float32 inputs and to pycocotools for float64 inputs.
    """
    if box_format != "xywh":
        boxes = box_convert(box_convert(boxes, box_format, "xyxy"), "xyxy", "xywh")
    return boxes.to(torch.float64)


@dataclass
class _Gathered:
    """The per-image tensors of a batch, checked for keys, types and shapes (not yet values)."""

    n_images: int
    device: torch.device
    d_boxes: list[Tensor]
    d_scores: list[Tensor]
    d_labels: list[Tensor]
    d_area: list[Tensor | None]
    g_boxes: list[Tensor]
    g_labels: list[Tensor]
    g_crowd: list[Tensor | None]
    g_area: list[Tensor | None]
    d_masks: list[Tensor]
    g_masks: list[Tensor]
    d_count: list[int]
    g_count: list[int]
    d_kpts: list[Tensor] | None = None
    g_kpts: list[Tensor] | None = None
    g_num_kpts: list[Tensor | None] | None = None
    g_has_box: list[bool] | None = None


def _check_structure(preds: Any, target: Any, boxes: bool, masks: bool, keypoints: bool = False) -> None:
    """torchmetrics' checks in its order, with its message openings (its tests match them).

    Sequences first, their lengths, then the required keys of every pred and every target,
    then the type of every required value; each message then names the image and the field.
    """
    for side, items in (("preds", preds), ("target", target)):
        if not _is_list_of_dicts(items):
            raise InputError(
                f"Expected argument `{side}` to be of type Sequence: `{side}` must be a list of dicts "
                f"(one per image), got {type(items).__name__}"
            )
    if len(preds) != len(target):
        raise InputError(
            "Expected argument `preds` and `target` to have the same length: `preds` and `target` must "
            f"have one dict per image each, got {len(preds)} and {len(target)}"
        )
    geometry = [k for k, used in (("boxes", boxes), ("masks", masks), ("keypoints", keypoints)) if used]
    required = (("preds", preds, [*geometry, "scores", "labels"]), ("target", target, [*geometry, "labels"]))
    for side, items, keys in required:
        for key in keys:
            for i, item in enumerate(items):
                if key not in item:
                    raise InputError(
                        f"Expected all dicts in `{side}` to contain the `{key}` key: {side}[{i}] has no key "
                        f"'{key}' (keys seen: {sorted(item)})"
                    )
    for side, items, keys in required:
        for key in keys:
            for i, item in enumerate(items):
                if not isinstance(item[key], Tensor):
                    raise InputError(
                        f"Expected all {key} in `{side}` to be of type Tensor: {side}[{i}]['{key}'] must be "
                        f"a torch.Tensor, got {type(item[key]).__name__}"
                    )


def _gather(preds: Any, target: Any, boxes: bool, masks: bool, keypoints: bool = False) -> _Gathered:
    _check_structure(preds, target, boxes, masks, keypoints)
    g = _Gathered(len(preds), torch.device("cpu"), [], [], [], [], [], [], [], [], [], [], [], [])
    if keypoints:
        g.d_kpts, g.g_kpts, g.g_num_kpts, g.g_has_box = [], [], [], []
    device: torch.device | None = None
    ref = "boxes" if boxes else "masks" if masks else "keypoints"
    n_kpts: int | None = None  # K, the same for every pose of the batch
    for i, (p, t) in enumerate(zip(preds, target, strict=True)):
        dboxes = _boxes(p, "preds", i) if boxes else None
        dmasks = _masks(p, "preds", i, dboxes.shape[0] if dboxes is not None else None) if masks else None
        first_d = dboxes if dboxes is not None else dmasks
        dkpts = (
            _keypoints(p, "preds", i, first_d.shape[0] if first_d is not None else None)
            if keypoints
            else None
        )
        n = (first_d if first_d is not None else dkpts).shape[0]  # type: ignore[union-attr]
        scores = _vector(p, "scores", "preds", i, n, "float", ref=ref)
        labels = _vector(p, "labels", "preds", i, n, "label", ref=ref)
        # keypoints alone: a target's boxes are optional (the box rule of GTs without keypoints)
        read_gboxes = boxes or (keypoints and "boxes" in t)
        gboxes = _boxes(t, "target", i) if read_gboxes else None
        gmasks = _masks(t, "target", i, gboxes.shape[0] if gboxes is not None else None) if masks else None
        first_g = gboxes if gboxes is not None else gmasks
        gkpts = (
            _keypoints(t, "target", i, first_g.shape[0] if first_g is not None else None)
            if keypoints
            else None
        )
        m = (first_g if first_g is not None else gkpts).shape[0]  # type: ignore[union-attr]
        glabels = _vector(t, "labels", "target", i, m, "label", ref=ref)
        if keypoints:
            assert dkpts is not None and gkpts is not None
            for side, kp in (("preds", dkpts), ("target", gkpts)):
                if kp.shape[0] == 0:
                    continue
                if n_kpts is None:
                    n_kpts = kp.shape[1]
                elif kp.shape[1] != n_kpts:
                    raise InputError(
                        f"{side}[{i}]['keypoints'] have {kp.shape[1]} keypoints per pose, earlier poses "
                        f"of the batch {n_kpts}: every pose needs the same K"
                    )
            if m and gboxes is None and "area" not in t:
                raise InputError(
                    f"target[{i}] needs 'area' (the object areas OKS is scaled by) or 'boxes' (whose "
                    f"areas are then used) with keypoints; keys seen: {sorted(t)}"
                )
            num = None
            if "num_keypoints" in t:
                num = _vector(t, "num_keypoints", "target", i, m, "label", ref=ref)
                assert num is not None
                if bool((num < 0).any()):
                    raise InputError(
                        f"target[{i}]['num_keypoints'] must be >= 0, got {num[num < 0][0].item()}"
                    )
            assert g.d_kpts is not None and g.g_kpts is not None
            assert g.g_num_kpts is not None and g.g_has_box is not None
            g.d_kpts.append(dkpts)
            g.g_kpts.append(gkpts)
            g.g_num_kpts.append(num)
            g.g_has_box.append(gboxes is not None)
        crowd = (
            _vector(t, "iscrowd", "target", i, m, "any", required=False, ref=ref) if "iscrowd" in t else None
        )
        area = _vector(t, "area", "target", i, m, "any", required=False, ref=ref) if "area" in t else None
        darea = _vector(p, "area", "preds", i, n, "any", required=False, ref=ref) if "area" in p else None
        first = first_d if first_d is not None else dkpts
        assert first is not None and scores is not None and labels is not None and glabels is not None
        if device is None:
            device = first.device
        for name, v in (
            ("preds boxes", dboxes),
            ("target boxes", gboxes),
            ("preds masks", dmasks),
            ("target masks", gmasks),
            ("preds keypoints", dkpts),
            ("target keypoints", gkpts),
        ):
            if v is not None and v.device != device:
                raise InputError(f"image {i}: {name} are on {v.device}, other inputs on {device}")
        if dmasks is not None and gmasks is not None:
            if dmasks.shape[0] and gmasks.shape[0] and dmasks.shape[1:] != gmasks.shape[1:]:
                raise InputError(
                    f"preds[{i}]['masks'] have size (H, W) = {tuple(dmasks.shape[1:])} but "
                    f"target[{i}]['masks'] "
                    f"have {tuple(gmasks.shape[1:])}; the masks of one image must have the same size"
                )
            g.d_masks.append(dmasks)
            g.g_masks.append(gmasks)
        if darea is not None:  # optional, not in torchmetrics (see the metric): checked image by image
            bad = ~torch.isfinite(darea.to(torch.float64)) | (darea < 0)
            if bool(bad.any()):
                raise InputError(
                    f"preds[{i}]['area'] must have finite values >= 0, got {darea[bad][0].item()}"
                )
        g.d_boxes.append(dboxes if dboxes is not None else torch.zeros(n, 4, device=device))
        g.d_scores.append(scores)
        g.d_labels.append(labels)
        g.d_area.append(darea)
        g.g_boxes.append(gboxes if gboxes is not None else torch.zeros(m, 4, device=device))
        g.g_labels.append(glabels)
        g.g_crowd.append(crowd)
        g.g_area.append(area)
        g.d_count.append(n)
        g.g_count.append(m)
    g.device = device or torch.device("cpu")
    return g


def _cat(
    xs: list[Tensor | None], counts: list[int], dtype: torch.dtype, device: torch.device, fill: float = 0
) -> Tensor:
    """Concatenate per-image tensors (None: ``fill`` for that image) into one of ``dtype``."""
    if any(x is None for x in xs):
        xs = [
            x if x is not None else torch.full((c,), fill, dtype=dtype, device=device)
            for x, c in zip(xs, counts, strict=True)
        ]
    if not xs:
        return torch.zeros(0, dtype=dtype, device=device)
    return torch.cat(xs).to(device=device, dtype=dtype)  # type: ignore[arg-type]  # one conversion, after type promotion


def flatten_detections(
    preds: Any,
    target: Any,
    box_format: str,
    num_classes: int | None = None,
    boxes: bool = True,
    masks: bool = False,
    keypoints: bool = False,
) -> FlatDetections:
    """Validate ``preds``/``target`` and flatten them (boxes to float64 xywh).

    ``num_classes`` (optional) restricts labels to 0..num_classes-1. ``boxes`` / ``masks`` /
    ``keypoints``: which the inputs must carry (at least one); what is not needed is not read.
    Masks are kept per image (no copy of bool masks) in ``det_masks`` / ``gt_masks``. With
    keypoints and no boxes, a target's boxes are read when it has them (``gt_has_box``).
    """
    if not (boxes or masks or keypoints):
        raise ValueError("flatten_detections needs boxes, masks or keypoints")
    if box_format not in BOX_FORMATS:
        raise InputError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")
    lo, hi = (0, num_classes - 1) if num_classes is not None else (-(2**31), 2**31 - 1)
    flat = None
    if boxes and not masks and not keypoints:
        arrays = _gather_fast(preds, target)
        if arrays is not None:
            flat = _finish_arrays(*arrays, box_format=box_format, lo=lo, hi=hi, boxes=True)
    if flat is None:
        g = _gather(preds, target, boxes, masks, keypoints)
        finish = _finish_cpu if g.device.type == "cpu" else _finish_torch
        # keypoints alone still read the targets' boxes where given (zeros elsewhere)
        flat = finish(g, box_format, lo, hi, boxes or keypoints, masks)
        if keypoints:
            _add_keypoints(flat, g, boxes)
        flat.det_count = np.asarray(g.d_count, np.int64)
    flat.image_ids = read_image_ids(target)
    return flat


def _add_keypoints(flat: FlatDetections, g: _Gathered, boxes: bool) -> None:
    """Concatenate the poses into ``flat``; without "bbox" the detections' (absent) boxes are dropped."""
    assert g.d_kpts is not None and g.g_kpts is not None and g.g_num_kpts is not None
    assert g.g_has_box is not None
    device, f64 = g.device, torch.float64
    poses = (*g.d_kpts, *g.g_kpts)
    k = max([x.shape[1] for x in poses if x.shape[0]], default=max([x.shape[1] for x in poses], default=0))

    def cat(xs: list[Tensor], side: str, count: list[int]) -> Tensor:
        kept = [
            x if x.shape[2] == 3 else torch.cat([x, x.new_zeros(*x.shape[:2], 1)], 2)
            for x in xs
            if x.shape[0]
        ]
        if not kept:
            return torch.zeros(0, k, 3, dtype=f64, device=device)
        out = torch.cat(kept).to(device=device, dtype=f64)  # one conversion, after type promotion
        bad = ~torch.isfinite(out)
        if bool(bad.any()):  # one check per batch; only a failing batch looks for the image
            row = int(bad.any(2).any(1).nonzero()[0, 0].item())
            image = int(np.searchsorted(np.cumsum(count), row, side="right"))
            raise InputError(
                f"{side}[{image}]['keypoints'] must have finite values, got {out[bad][0].item()}"
            )
        return out

    flat.det_kpts = cat(g.d_kpts, "preds", g.d_count)
    flat.gt_kpts = cat(g.g_kpts, "target", g.g_count)
    given = g.g_num_kpts
    if given and all(x is not None for x in given):  # every image gave `num_keypoints`
        flat.gt_num_kpts = torch.cat(given).to(device=device, dtype=torch.int64)  # type: ignore[arg-type]
    else:
        num = (flat.gt_kpts[..., 2] > 0).sum(1)
        offsets = np.cumsum([0, *g.g_count])
        for i, x in enumerate(given):
            if x is not None:
                num[offsets[i] : offsets[i + 1]] = x.to(device)
        flat.gt_num_kpts = num
    if device.type == "cpu":  # numpy: torch's repeat_interleave waits for its thread pool beside busy cores
        flat.gt_has_box = torch.from_numpy(np.repeat(np.asarray(g.g_has_box, np.bool_), g.g_count))
    else:
        flat.gt_has_box = torch.repeat_interleave(
            torch.tensor(g.g_has_box, dtype=torch.bool, device=device),
            torch.tensor(g.g_count, dtype=torch.int64, device=device),
        )
    if not boxes:
        flat.det_xywh = None


def read_image_ids(target: Sequence[dict]) -> Tensor | None:
    """The targets' optional ``image_id`` as a (B,) int64 CPU tensor; None when no target has one.

    An id is an int (not a bool), a numpy integer or a one-element integer tensor (torchvision's
    ``tensor([id])`` included). It must be given for every image of the batch or for none.
    """
    values = [t.get("image_id") for t in target]
    missing = [i for i, v in enumerate(values) if v is None]
    if len(missing) == len(values):
        return None
    if missing:
        given = next(i for i, v in enumerate(values) if v is not None)
        raise InputError(
            f"target[{missing[0]}] has no 'image_id' but target[{given}] has one: give `image_id` in every "
            "target dict or in none"
        )
    ids = [_image_id(v, i) for i, v in enumerate(values)]
    return torch.tensor(ids, dtype=torch.int64)


def _image_id(value: Any, i: int) -> int:
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise InputError(
                f"target[{i}]['image_id'] must be an int or a one-element integer tensor, got a "
                f"{value.dtype} tensor of shape {tuple(value.shape)}"
            )
        value = int(value.item())
    elif isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(
            f"target[{i}]['image_id'] must be an int or a one-element integer tensor, got "
            f"{type(value).__name__} {value!r}"
        )
    value = int(value)
    if not NO_IMAGE_ID < value < 2**63:
        raise InputError(f"target[{i}]['image_id'] must fit in int64 (above -2**63), got {value}")
    return value


_FLOATS = (torch.float32, torch.float64)
_INTS = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
_Tensor = torch.Tensor


def _gather_fast(preds: Any, target: Any) -> tuple | None:
    """The common case in a few attribute reads per image: plain CPU tensors of the usual shapes.

    Returns numpy arrays of the concatenated fields, or None when anything is unusual (a
    missing key, another shape or dtype, another device, tensors that require grad, ...): the
    checked path then handles the batch and names what is wrong. Per image the lengths and
    dtypes are compared (a dtype check on the concatenation would let type promotion hide one
    image's integer scores, say); the dimensions are checked once on the concatenations
    (torch.cat refuses tensors of different dimensions).
    """
    if not isinstance(preds, list | tuple) or not isinstance(target, list | tuple):
        return None
    if not preds or len(preds) != len(target):
        return None
    d_boxes, d_scores, d_labels, g_boxes, g_labels, g_crowd, g_area = [], [], [], [], [], [], []
    d_count, g_count = [], []
    tensor, floats, ints = _Tensor, _FLOATS, _INTS
    try:
        for p, t in zip(preds, target, strict=True):
            if "area" in p:
                return None
            db, ds, dl, gb, gl = p["boxes"], p["scores"], p["labels"], t["boxes"], t["labels"]
            if type(db) is not tensor or type(ds) is not tensor or type(dl) is not tensor:
                return None
            if type(gb) is not tensor or type(gl) is not tensor:
                return None
            # shape[0] (a tuple read, not Tensor.__len__) raises IndexError on 0-d tensors: the checked path
            n, m = db.shape[0], gb.shape[0]
            if ds.shape[0] != n or dl.shape[0] != n or gl.shape[0] != m:
                return None
            if db.dtype not in floats or gb.dtype not in floats or ds.dtype not in floats:
                return None
            if dl.dtype not in ints or gl.dtype not in ints:
                return None
            gc, ga = t.get("iscrowd"), t.get("area")
            if gc is not None:
                if type(gc) is not tensor or gc.shape[0] != m:
                    return None
                g_crowd.append(gc)
            if ga is not None:
                if type(ga) is not tensor or ga.shape[0] != m:
                    return None
                g_area.append(ga)
            d_boxes.append(db)
            d_scores.append(ds)
            d_labels.append(dl)
            g_boxes.append(gb)
            g_labels.append(gl)
            d_count.append(n)
            g_count.append(m)
        n_images = len(d_count)
        if 0 < len(g_crowd) < n_images or 0 < len(g_area) < n_images:
            return None  # some images without 'iscrowd' / 'area': the checked path fills them in
        # one concatenation per field; .numpy() refuses other devices and grads
        det_boxes, gt_boxes = torch.cat(d_boxes), torch.cat(g_boxes)
        scores, labels, gt_labels = torch.cat(d_scores), torch.cat(d_labels), torch.cat(g_labels)
        crowd = torch.cat(g_crowd) if g_crowd else None
        area = torch.cat(g_area) if g_area else None
        if det_boxes.dim() != 2 or det_boxes.shape[1] != 4 or gt_boxes.dim() != 2 or gt_boxes.shape[1] != 4:
            return None
        if scores.dim() != 1 or labels.dim() != 1 or gt_labels.dim() != 1:
            return None
        if (crowd is not None and crowd.dim() != 1) or (area is not None and area.dim() != 1):
            return None
        f64, n_gt = torch.float64, sum(g_count)
        return (
            n_images,
            np.asarray(d_count, np.int64),
            np.asarray(g_count, np.int64),
            det_boxes.numpy().astype(np.float64, copy=False),
            det_boxes.dtype == torch.float32,  # torch.cat promotes: float32 only if every image's are
            scores.numpy().astype(np.float64, copy=False),
            labels.numpy().astype(np.int64, copy=False),
            gt_boxes.numpy().astype(np.float64, copy=False),
            gt_boxes.dtype == torch.float32,
            gt_labels.numpy().astype(np.int64, copy=False),
            crowd.to(f64).numpy() if crowd is not None else np.zeros(n_gt),
            area.to(f64).numpy() if area is not None else np.zeros(n_gt),
        )
    except (KeyError, TypeError, RuntimeError, AttributeError, IndexError):
        return None


def _box_sizes_expected(box_format: str) -> str:
    """What a box with a negative size lacks; the usual cause is a box format other than the metric's."""
    return (
        f"non-negative width and height ({box_format}; `box_format` must be the boxes' format: COCO "
        "files and objdet.io.load_coco_gt give 'xywh')"
    )


def _raise_bad_value(side: str, key: str, expected: str, image: int, value: Any) -> None:
    raise InputError(f"{side}[{image}]['{key}'] must have {expected}, got {value}")


def _finish_cpu(g: _Gathered, box_format: str, lo: int, hi: int, boxes: bool, masks: bool) -> FlatDetections:
    """Concatenate the checked per-image tensors, then :func:`_finish_arrays`."""
    f64, cpu = torch.float64, g.device
    det_boxes_in, gt_boxes_in = _cat_boxes(g.d_boxes, cpu), _cat_boxes(g.g_boxes, cpu)
    flat = _finish_arrays(
        g.n_images,
        np.asarray(g.d_count, np.int64),
        np.asarray(g.g_count, np.int64),
        det_boxes_in.detach().to(f64).numpy(),
        det_boxes_in.dtype != f64,
        _cat(g.d_scores, g.d_count, f64, cpu).detach().numpy(),  # type: ignore[arg-type]
        _cat(g.d_labels, g.d_count, torch.int64, cpu).numpy(),  # type: ignore[arg-type]
        gt_boxes_in.detach().to(f64).numpy(),
        gt_boxes_in.dtype != f64,
        _cat(g.g_labels, g.g_count, torch.int64, cpu).numpy(),  # type: ignore[arg-type]
        _cat(g.g_crowd, g.g_count, f64, cpu).detach().numpy(),
        _cat(g.g_area, g.g_count, f64, cpu).detach().numpy(),
        box_format=box_format,
        lo=lo,
        hi=hi,
        boxes=boxes,
    )
    if any(a is not None for a in g.d_area):  # NaN where an image's preds have no 'area'
        flat.det_area_given = _cat(g.d_area, g.d_count, f64, cpu, fill=float("nan"))
    flat.det_masks = g.d_masks if masks else None
    flat.gt_masks = g.g_masks if masks else None
    return flat


def _finish_arrays(
    n_images: int,
    d_count: np.ndarray,
    g_count: np.ndarray,
    det_boxes: np.ndarray,
    det_single: bool,
    det_score: np.ndarray,
    det_label: np.ndarray,
    gt_boxes: np.ndarray,
    gt_single: bool,
    gt_label: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area_raw: np.ndarray,
    *,
    box_format: str,
    lo: int,
    hi: int,
    boxes: bool,
) -> FlatDetections:
    """Check values and convert boxes with the compiled loops of :mod:`objdet.ops.coco_cpu` (float64 inputs;
    ``*_single``: the boxes were float32, converted in float32 as torchmetrics does)."""
    det_img = np.repeat(np.arange(n_images, dtype=np.int64), d_count)
    gt_img = np.repeat(np.arange(n_images, dtype=np.int64), g_count)
    fmt = _FORMAT_CODES[box_format]
    det_xywh, code, row = coco_cpu.check_dets(det_boxes, fmt, det_single, det_score, det_label, lo, hi)
    sizes = _box_sizes_expected(box_format)
    label_range = f"values in [{lo}, {hi}]"
    if code != coco_cpu.CHECK_OK:
        key, expected, values = {
            coco_cpu.BAD_BOX_VALUES: ("boxes", "finite values", det_boxes),
            coco_cpu.BAD_BOX_SIZE: ("boxes", sizes, det_boxes),
            coco_cpu.BAD_SCORES: ("scores", "finite values", det_score),
            coco_cpu.BAD_LABELS: ("labels", label_range, det_label),
        }[code]
        _raise_bad_value("preds", key, expected, int(det_img[row]), values[row].tolist())
    gt_xywh, gt_area, code, row = coco_cpu.check_gts(
        gt_boxes, fmt, gt_single, gt_label, gt_crowd, gt_area_raw, lo, hi, boxes
    )
    if code != coco_cpu.CHECK_OK:
        key, expected, values = {
            coco_cpu.BAD_BOX_VALUES: ("boxes", "finite values", gt_boxes),
            coco_cpu.BAD_BOX_SIZE: ("boxes", sizes, gt_boxes),
            coco_cpu.BAD_CROWD: ("iscrowd", "values in {0, 1}", gt_crowd),
            coco_cpu.BAD_AREA: ("area", "finite values >= 0", gt_area_raw),
            coco_cpu.BAD_LABELS: ("labels", label_range, gt_label),
        }[code]
        _raise_bad_value("target", key, expected, int(gt_img[row]), values[row].tolist())
    t = torch.from_numpy
    return FlatDetections(
        n_images=n_images,
        det_img=t(det_img),
        det_xywh=t(det_xywh) if boxes else None,
        det_score=t(det_score),
        det_label=t(det_label),
        gt_img=t(gt_img),
        gt_xywh=t(gt_xywh) if boxes else None,
        gt_label=t(gt_label),
        gt_crowd=t(gt_crowd != 0),
        gt_area=t(gt_area),
        gt_area_given=t(gt_area_raw),
        det_count=d_count,
    )


def _finish_torch(
    g: _Gathered, box_format: str, lo: int, hi: int, boxes: bool, masks: bool
) -> FlatDetections:
    """The same as :func:`_finish_cpu` with torch ops on the inputs' device (CUDA)."""
    f64, device = torch.float64, g.device
    det_img = torch.repeat_interleave(
        torch.arange(g.n_images, device=device), torch.tensor(g.d_count, dtype=torch.int64, device=device)
    )
    gt_img = torch.repeat_interleave(
        torch.arange(g.n_images, device=device), torch.tensor(g.g_count, dtype=torch.int64, device=device)
    )
    det_boxes_in, gt_boxes_in = _cat_boxes(g.d_boxes, device), _cat_boxes(g.g_boxes, device)
    det_boxes, gt_boxes = det_boxes_in.to(f64), gt_boxes_in.to(f64)
    det_score = _cat(g.d_scores, g.d_count, f64, device)  # type: ignore[arg-type]
    det_label = _cat(g.d_labels, g.d_count, torch.int64, device)  # type: ignore[arg-type]
    det_area = None  # NaN where an image's preds have no 'area'
    if any(a is not None for a in g.d_area):
        det_area = _cat(g.d_area, g.d_count, f64, device, fill=float("nan"))
    gt_label = _cat(g.g_labels, g.g_count, torch.int64, device)  # type: ignore[arg-type]
    gt_crowd_raw = _cat(g.g_crowd, g.g_count, f64, device)
    gt_area_raw = _cat(g.g_area, g.g_count, f64, device)

    det_xywh = _to_xywh_float64(det_boxes_in, box_format)
    gt_xywh = _to_xywh_float64(gt_boxes_in, box_format)

    # Value checks. Each flag is computed once; the flags of each side are OR-ed so that a valid
    # batch costs a single host sync, and only a failing batch looks for the field and the image.
    sizes = _box_sizes_expected(box_format)
    label_range = f"values in [{lo}, {hi}]"
    det_checks = [  # (field, expected, bad flags, values to show)
        ("boxes", "finite values", ~torch.isfinite(det_boxes).all(1), det_boxes),
        ("boxes", sizes, (det_xywh[:, 2:] < 0).any(1), det_boxes),
        ("scores", "finite values", ~torch.isfinite(det_score), det_score),
        ("labels", label_range, (det_label < lo) | (det_label > hi), det_label),
    ]
    gt_checks = [
        ("iscrowd", "values in {0, 1}", (gt_crowd_raw != 0) & (gt_crowd_raw != 1), gt_crowd_raw),
        ("area", "finite values >= 0", ~torch.isfinite(gt_area_raw) | (gt_area_raw < 0), gt_area_raw),
        ("labels", label_range, (gt_label < lo) | (gt_label > hi), gt_label),
    ]
    if boxes:
        gt_checks[:0] = [
            ("boxes", "finite values", ~torch.isfinite(gt_boxes).all(1), gt_boxes),
            ("boxes", sizes, (gt_xywh[:, 2:] < 0).any(1), gt_boxes),
        ]
    det_bad = functools.reduce(operator.or_, [flags for _, _, flags, _ in det_checks])
    gt_bad = functools.reduce(operator.or_, [flags for _, _, flags, _ in gt_checks])
    if bool(det_bad.any() | gt_bad.any()):
        for side, owner, checks in (("preds", det_img, det_checks), ("target", gt_img, gt_checks)):
            for key, expected, flags, values in checks:
                if bool(flags.any()):
                    row = int(flags.nonzero()[0, 0].item())
                    _raise_bad_value(side, key, expected, int(owner[row].item()), values[row].tolist())

    # Area: a given positive area is used, otherwise the box area (torchmetrics' rule); the
    # mask area replaces the box area where masks are used (see the metric).
    box_area = gt_xywh[:, 2] * gt_xywh[:, 3]
    gt_area = torch.where(gt_area_raw > 0, gt_area_raw, box_area) if boxes else gt_area_raw
    return FlatDetections(
        n_images=g.n_images,
        det_img=det_img,
        det_xywh=det_xywh if boxes else None,
        det_score=det_score,
        det_label=det_label,
        gt_img=gt_img,
        gt_xywh=gt_xywh if boxes else None,
        gt_label=gt_label,
        gt_crowd=gt_crowd_raw.bool(),
        gt_area=gt_area,
        gt_area_given=gt_area_raw,
        det_area_given=det_area,
        det_masks=g.d_masks if masks else None,
        gt_masks=g.g_masks if masks else None,
    )
