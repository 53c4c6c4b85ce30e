"""torchmetrics' COCO file converters, ``coco_to_tm`` and ``tm_to_coco``, without torchvision.

Same signatures, same in-memory and on-disk formats as
``torchmetrics.detection.MeanAveragePrecision.coco_to_tm`` / ``tm_to_coco``, built on
:func:`objdet.io.load_coco_gt`, :func:`objdet.io.load_coco_dt`, :func:`objdet.io.to_coco_gt`
and :func:`objdet.io.to_coco_results` (so polygons, uncompressed and compressed RLE are all read,
and malformed files raise ValueError naming the entry).

:func:`~objdet.io.coco_to_tm` returns, as torchmetrics does, one dict per image that has at least one GT
annotation, in the order of each image's first annotation in the file (images without
annotations are left out, with their detections); labels are the COCO category ids (int32),
boxes are xywh (float32), masks uint8 (H, W) per object, ``iscrowd`` int32 and ``area``
float32 from the file. An image without detections has empty ``scores`` / ``labels`` and
``boxes`` of shape (0, 4) (torchmetrics: (0,)), ``masks`` of shape (0, H, W).

:func:`~objdet.io.tm_to_coco` writes ``<name>_preds.json`` (a COCO results list) and
``<name>_target.json`` (a COCO ground-truth dataset with ``info``, ``images``, ``annotations``,
``categories``) from lists of per-image dicts; images are numbered 0, 1, ... in list order and
the categories are every label seen in preds or target. Unlike torchmetrics, every image is
written, also one without GT masks (as the metric counts it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from objdet.io.coco import (
    IouTypes,
    _iou_types,
    load_coco_dt,
    load_coco_gt,
    to_coco_gt,
    to_coco_results,
)
from objdet.io.coco_arrays import _generic, _read_bytes

_BACKENDS = ("pycocotools", "faster_coco_eval")


def _read_json(source: Any, kind: type, what: str) -> Any:
    """A path's JSON content (or the loaded object itself), checked to be a ``kind``."""
    data = _read_bytes(source) if isinstance(source, str | os.PathLike) else None
    return _generic(source, data, kind, what)


def _check_backend(backend: str) -> None:
    if backend not in _BACKENDS:
        raise ValueError(f"Expected argument `backend` to be one of {_BACKENDS} but got {backend!r}")


def coco_to_tm(
    coco_preds: str | os.PathLike | list,
    coco_target: str | os.PathLike | dict,
    iou_type: IouTypes = ("bbox",),
    backend: str = "pycocotools",
) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """A COCO results file and annotation file as ``(preds, target)`` in torchmetrics' input format.

    Args:
        coco_preds: path of the COCO results JSON (or its list).
        coco_target: path of the COCO annotation JSON (or its dict).
        iou_type: "bbox", "segm" or both: which of ``boxes`` / ``masks`` to return.
        backend: accepted for torchmetrics' signature ("pycocotools" or "faster_coco_eval");
            the files are read the same way with either.

    Example:
        >>> gt = {"images": [{"id": 3, "height": 4, "width": 4}, {"id": 9, "height": 4, "width": 4}],
        ...       "annotations": [{"id": 1, "image_id": 9, "category_id": 2, "bbox": [0, 0, 2, 2],
        ...                        "area": 4, "iscrowd": 0}],
        ...       "categories": [{"id": 2}]}
        >>> dt = [{"image_id": 9, "category_id": 2, "bbox": [0, 0, 2, 1], "score": 0.5}]
        >>> preds, target = coco_to_tm(dt, gt)
        >>> len(preds), preds[0]["boxes"].tolist(), target[0]["labels"].dtype
        (1, [[0.0, 0.0, 2.0, 1.0]], torch.int32)
    """
    types = _iou_types(iou_type)
    _check_backend(backend)
    data = _read_json(coco_target, dict, "the COCO ground truth")  # kept: the annotations' order matters
    gt = load_coco_gt(data, iou_type=types, labels="category_id", box_format="xywh")
    dt = load_coco_dt(coco_preds, gt, iou_type=types)
    position = {image_id: k for k, image_id in enumerate(gt.image_ids)}
    # torchmetrics' order: images with annotations, by their first annotation in the file
    first_seen = dict.fromkeys(int(a["image_id"]) for a in data["annotations"])
    preds: list[dict[str, Tensor]] = []
    target: list[dict[str, Tensor]] = []
    for image_id in first_seen:
        k = position[image_id]
        t, p = gt.target[k], dt[k]
        bt = {
            "labels": t["labels"].to(torch.int32),
            "iscrowd": t["iscrowd"].to(torch.int32),
            "area": t["area"].to(torch.float32),
        }
        bp = {"scores": p["scores"].to(torch.float32), "labels": p["labels"].to(torch.int32)}
        if "bbox" in types:
            bt["boxes"] = t["boxes"].to(torch.float32)
            bp["boxes"] = p["boxes"].to(torch.float32)
        if "segm" in types:
            bt["masks"] = t["masks"].to(torch.uint8)
            bp["masks"] = p["masks"].to(torch.uint8)
        preds.append(bp)
        target.append(bt)
    return preds, target


def _labels(items: Sequence[dict[str, Any]]) -> set[int]:
    out: set[int] = set()
    for item in items:
        labels = item.get("labels") if isinstance(item, dict) else None
        if isinstance(labels, Tensor):
            out.update(int(v) for v in labels.detach().cpu().reshape(-1).to(torch.int64).tolist())
    return out


def tm_to_coco(
    preds: Sequence[dict[str, Tensor]],
    target: Sequence[dict[str, Tensor]],
    name: str = "tm_map_input",
    iou_type: IouTypes = ("bbox",),
    box_format: str = "xyxy",
) -> None:
    """Write ``preds`` / ``target`` (torchmetrics' format) to ``<name>_preds.json`` / ``<name>_target.json``.

    The files are what torchmetrics' ``MeanAveragePrecision.tm_to_coco(name)`` writes for the
    same inputs, and what :func:`coco_to_tm` (or pycocotools' ``COCO`` / ``loadRes``) reads back.

    Args:
        preds: one dict per image with ``scores``, ``labels`` and ``boxes`` and/or ``masks``.
        target: one dict per image with ``labels``, ``boxes`` and/or ``masks``, optional
            ``iscrowd`` and ``area`` (written where positive, else the mask's or box's area).
        name: path prefix of the two files.
        iou_type: "bbox", "segm" or both: which of ``bbox`` / ``segmentation`` to write.
        box_format: the format of the input boxes (written as COCO's xywh).
    """
    types = _iou_types(iou_type)
    if len(preds) != len(target):
        raise ValueError(
            "Expected argument `preds` and `target` to have the same length, "
            f"got {len(preds)} and {len(target)}"
        )
    dataset = to_coco_gt(target, iou_type=types, box_format=box_format)
    results = to_coco_results(preds, iou_type=types, box_format=box_format)
    dataset["categories"] = [{"id": c, "name": str(c)} for c in sorted(_labels(preds) | _labels(target))]
    # pycocotools 2.0.9 and 2.0.10 need an `info` entry to load results against the dataset
    dataset = {"info": {"description": "written by objdet.io.tm_to_coco"}, **dataset}
    with open(f"{name}_preds.json", "w") as f:
        json.dump(results, f, indent=4)
    with open(f"{name}_target.json", "w") as f:
        json.dump(dataset, f, indent=4)
