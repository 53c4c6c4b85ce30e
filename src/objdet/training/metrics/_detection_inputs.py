"""Validation and flattening of torchmetrics-format detection inputs.

``preds`` and ``target`` are lists with one dict per image. preds: ``boxes`` (N, 4) float,
``scores`` (N,) float, ``labels`` (N,) int. target: ``boxes`` (M, 4) float, ``labels`` (M,)
int, optional ``iscrowd`` (M,) in {0, 1} and ``area`` (M,) float. With masks (iou_type
"segm"), ``masks`` (N, H, W) on both sides, bool or 0/1 values, the same (H, W) for the
detections and the GTs of one image; ``boxes`` are then needed only for "bbox". Errors name
the field, the image index, what was seen and what was expected.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from objdet.ops.boxes import BOX_FORMATS, box_convert
from objdet.ops.masks import check_masks


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


def _is_list_of_dicts(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, str | bytes) and all(isinstance(d, dict) for d in x)


def _tensor(item: dict, key: str, side: str, i: int, required: bool = True) -> Tensor | None:
    if key not in item:
        if required:
            raise ValueError(f"{side}[{i}] has no key '{key}' (keys seen: {sorted(item)})")
        return None
    value = item[key]
    if not isinstance(value, Tensor):
        raise TypeError(f"{side}[{i}]['{key}'] must be a torch.Tensor, got {type(value).__name__}")
    return value


def _boxes(item: dict, side: str, i: int) -> Tensor:
    boxes = _tensor(item, "boxes", side, i)
    assert boxes is not None
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{side}[{i}]['boxes'] must have shape (N, 4), got {tuple(boxes.shape)}")
    if not (boxes.is_floating_point() or boxes.dtype in (torch.int32, torch.int64, torch.int16, torch.uint8)):
        raise TypeError(f"{side}[{i}]['boxes'] must be a float or integer tensor, got {boxes.dtype}")
    return boxes


def _masks(item: dict, side: str, i: int, n: int | None) -> Tensor:
    """The image's masks as (n, H, W) bool (checked: 0/1 values, count ``n`` if given)."""
    value = _tensor(item, "masks", side, i)
    assert value is not None
    masks = check_masks(value, f"{side}[{i}]['masks']")
    if n is not None and masks.shape[0] != n:
        raise ValueError(
            f"{side}[{i}]['masks'] must hold one mask per box ({n}), got shape {tuple(value.shape)}"
        )
    return masks


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
    value = _tensor(item, key, side, i, required)
    if value is None:
        return None
    if value.numel() == 0 and n == 0:
        value = value.reshape(0)
    if value.ndim == 0 and n == 1:
        value = value.reshape(1)
    if value.shape != (n,):
        raise ValueError(
            f"{side}[{i}]['{key}'] must have shape ({n},) to match '{ref}', got {tuple(value.shape)}"
        )
    if kind == "float" and not value.is_floating_point():
        raise TypeError(f"{side}[{i}]['{key}'] must be a floating point tensor, got {value.dtype}")
    if kind == "int" and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"{side}[{i}]['{key}'] must be an integer tensor, got {value.dtype}")
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


def flatten_detections(
    preds: Any,
    target: Any,
    box_format: str,
    num_classes: int | None = None,
    boxes: bool = True,
    masks: bool = False,
) -> FlatDetections:
    """Validate ``preds``/``target`` and flatten them (boxes to float64 xywh).

    ``num_classes`` (optional) restricts labels to 0..num_classes-1. ``boxes`` / ``masks``:
    which of the two the inputs must carry (at least one); what is not needed is not read.
    Masks are kept per image (no copy of bool masks) in ``det_masks`` / ``gt_masks``.
    """
    if not (boxes or masks):
        raise ValueError("flatten_detections needs boxes, masks or both")
    if box_format not in BOX_FORMATS:
        raise ValueError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")
    if not _is_list_of_dicts(preds):
        raise TypeError(f"`preds` must be a list of dicts (one per image), got {type(preds).__name__}")
    if not _is_list_of_dicts(target):
        raise TypeError(f"`target` must be a list of dicts (one per image), got {type(target).__name__}")
    if len(preds) != len(target):
        raise ValueError(
            f"`preds` and `target` must have one dict per image each, got {len(preds)} and {len(target)}"
        )

    d_boxes, d_scores, d_labels, g_boxes, g_labels, g_crowd, g_area = [], [], [], [], [], [], []
    d_masks: list[Tensor] = []
    d_area: list[Tensor | None] = []  # preds' optional 'area', rarely given
    f64 = torch.float64
    g_masks: list[Tensor] = []
    d_count, g_count = [], []
    device: torch.device | None = None
    ref = "boxes" if boxes else "masks"
    for i, (p, t) in enumerate(zip(preds, target, strict=True)):
        dboxes = _boxes(p, "preds", i) if boxes else None
        dmasks = _masks(p, "preds", i, dboxes.shape[0] if dboxes is not None else None) if masks else None
        n = dboxes.shape[0] if dboxes is not None else dmasks.shape[0]  # type: ignore[union-attr]
        scores = _vector(p, "scores", "preds", i, n, "float", ref=ref)
        labels = _vector(p, "labels", "preds", i, n, "int", ref=ref)
        gboxes = _boxes(t, "target", i) if boxes else None
        gmasks = _masks(t, "target", i, gboxes.shape[0] if gboxes is not None else None) if masks else None
        m = gboxes.shape[0] if gboxes is not None else gmasks.shape[0]  # type: ignore[union-attr]
        glabels = _vector(t, "labels", "target", i, m, "int", ref=ref)
        crowd = _vector(t, "iscrowd", "target", i, m, "any", required=False, ref=ref)
        area = _vector(t, "area", "target", i, m, "any", required=False, ref=ref)
        first = dboxes if dboxes is not None else dmasks
        assert first is not None
        device = device or first.device
        for name, v in (
            ("preds boxes", dboxes),
            ("target boxes", gboxes),
            ("preds masks", dmasks),
            ("target masks", gmasks),
        ):
            if v is not None and v.device != device:
                raise ValueError(f"image {i}: {name} are on {v.device}, other inputs on {device}")
        if dmasks is not None and gmasks is not None:
            if dmasks.shape[0] and gmasks.shape[0] and dmasks.shape[1:] != gmasks.shape[1:]:
                raise ValueError(
                    f"preds[{i}]['masks'] have size (H, W) = {tuple(dmasks.shape[1:])} but "
                    f"target[{i}]['masks'] "
                    f"have {tuple(gmasks.shape[1:])}; the masks of one image must have the same size"
                )
            d_masks.append(dmasks)
            g_masks.append(gmasks)
        d_boxes.append(dboxes if dboxes is not None else torch.zeros(n, 4, device=device))
        d_scores.append(scores)
        darea = _vector(p, "area", "preds", i, n, "any", required=False, ref=ref)
        if darea is not None:  # optional, not in torchmetrics (see the metric): checked image by image
            bad = ~torch.isfinite(darea.to(f64)) | (darea < 0)
            if bool(bad.any()):
                raise ValueError(
                    f"preds[{i}]['area'] must have finite values >= 0, got {darea[bad][0].item()}"
                )
        d_area.append(darea)
        d_labels.append(labels)
        g_boxes.append(gboxes if gboxes is not None else torch.zeros(m, 4, device=device))
        g_labels.append(glabels)
        g_crowd.append(crowd if crowd is not None else torch.zeros(m, dtype=torch.int64, device=device))
        g_area.append(area if area is not None else torch.zeros(m, dtype=torch.float64, device=device))
        d_count.append(n)
        g_count.append(m)

    device = device or torch.device("cpu")

    def cat(xs: list, dtype: torch.dtype, shape: tuple[int, ...] = ()) -> Tensor:
        if not xs:
            return torch.zeros((0, *shape), dtype=dtype, device=device)
        return torch.cat(xs).to(device=device, dtype=dtype)  # one conversion, after type promotion

    det_img = torch.repeat_interleave(
        torch.arange(len(preds), device=device), torch.tensor(d_count, dtype=torch.int64, device=device)
    )
    gt_img = torch.repeat_interleave(
        torch.arange(len(target), device=device), torch.tensor(g_count, dtype=torch.int64, device=device)
    )
    det_boxes_in, gt_boxes_in = _cat_boxes(d_boxes, device), _cat_boxes(g_boxes, device)
    det_boxes, gt_boxes = det_boxes_in.to(f64), gt_boxes_in.to(f64)
    det_score, det_label = cat(d_scores, f64), cat(d_labels, torch.int64)
    det_area = None  # NaN where an image's preds have no 'area'
    if any(a is not None for a in d_area):
        fill = [torch.full((n,), float("nan"), dtype=f64, device=device) for n in d_count]
        det_area = cat([a if a is not None else f for a, f in zip(d_area, fill, strict=True)], f64)
    gt_label, gt_crowd_raw, gt_area_raw = cat(g_labels, torch.int64), cat(g_crowd, f64), cat(g_area, f64)

    det_xywh = _to_xywh_float64(det_boxes_in, box_format)
    gt_xywh = _to_xywh_float64(gt_boxes_in, box_format)

    # Value checks. Each flag is computed once; the flags of each side are OR-ed so that a valid
    # batch costs a single host sync, and only a failing batch looks for the field and the image.
    lo_label, hi_label = (0, num_classes - 1) if num_classes is not None else (-(2**31), 2**31 - 1)
    sizes = f"non-negative width and height ({box_format})"
    label_range = f"values in [{lo_label}, {hi_label}]"
    det_checks = [  # (field, expected, bad flags, values to show)
        ("boxes", "finite values", ~torch.isfinite(det_boxes).all(1), det_boxes),
        ("boxes", sizes, (det_xywh[:, 2:] < 0).any(1), det_boxes),
        ("scores", "finite values", ~torch.isfinite(det_score), det_score),
        ("labels", label_range, (det_label < lo_label) | (det_label > hi_label), det_label),
    ]
    gt_checks = [
        ("boxes", "finite values", ~torch.isfinite(gt_boxes).all(1), gt_boxes),
        ("boxes", sizes, (gt_xywh[:, 2:] < 0).any(1), gt_boxes),
        ("iscrowd", "values in {0, 1}", (gt_crowd_raw != 0) & (gt_crowd_raw != 1), gt_crowd_raw),
        ("area", "finite values >= 0", ~torch.isfinite(gt_area_raw) | (gt_area_raw < 0), gt_area_raw),
        ("labels", label_range, (gt_label < lo_label) | (gt_label > hi_label), gt_label),
    ]
    det_bad = functools.reduce(operator.or_, [flags for _, _, flags, _ in det_checks])
    gt_bad = functools.reduce(operator.or_, [flags for _, _, flags, _ in gt_checks])
    if bool(det_bad.any() | gt_bad.any()):
        for side, owner, checks in (("preds", det_img, det_checks), ("target", gt_img, gt_checks)):
            for key, expected, flags, values in checks:
                if bool(flags.any()):
                    row = int(flags.nonzero()[0, 0].item())
                    image = int(owner[row].item())
                    raise ValueError(
                        f"{side}[{image}]['{key}'] must have {expected}, got {values[row].tolist()}"
                    )

    # Area: a given positive area is used, otherwise the box area (torchmetrics' rule); the
    # mask area replaces the box area where masks are used (see the metric).
    box_area = gt_xywh[:, 2] * gt_xywh[:, 3]
    gt_area = torch.where(gt_area_raw > 0, gt_area_raw, box_area) if boxes else gt_area_raw
    return FlatDetections(
        n_images=len(preds),
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
        det_masks=d_masks if masks else None,
        gt_masks=g_masks if masks else None,
    )
