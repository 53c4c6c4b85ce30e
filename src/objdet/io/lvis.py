"""LVIS JSON -> torchmetrics-format tensors, with the federated lists and category frequencies.

An LVIS annotation file is a COCO file whose images carry ``neg_category_ids`` and
``not_exhaustive_category_ids`` and whose categories carry ``frequency`` ("r", "c", "f").
:func:`~objdet.io.load_lvis_gt` reads it as :func:`~objdet.io.load_coco_gt` does and adds both lists to
every target dict (as labels) and the frequencies (by label) to the result;
:func:`~objdet.io.load_lvis_dt` reads an LVIS results file (the COCO results format). Together they feed
:class:`objdet.training.metrics.LVISMeanAveragePrecision`, which applies the LVIS API's rules
(300 detections per image and the rest) itself: the readers drop nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import torch
from torch import Tensor

from objdet.io.coco import CocoGroundTruth, LabelMode, LazyImages, load_coco_dt, load_coco_gt
from objdet.io.coco_arrays import IouTypes


class _Image(msgspec.Struct, gc=False):
    id: int
    neg_category_ids: list[int]
    not_exhaustive_category_ids: list[int]


class _Category(msgspec.Struct, gc=False):
    id: int
    frequency: str


class _File(msgspec.Struct):
    images: list[_Image]
    categories: list[_Category]


@dataclass(repr=False)
class LvisGroundTruth(CocoGroundTruth):
    """An LVIS annotation file: a :class:`~objdet.io.CocoGroundTruth` plus the LVIS fields.

    Attributes:
        frequencies: label -> "r", "c" or "f" (the categories' ``frequency``), for
            ``LVISMeanAveragePrecision(frequencies=gt.frequencies)``.
        target: as ``CocoGroundTruth.target``, every dict also holding ``neg_category_ids``
            and ``not_exhaustive_category_ids`` (int64 labels, as ``labels``).
    """

    frequencies: dict[int, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "Lvis" + super().__repr__()[len("Coco") :]


def _read(source: str | os.PathLike | dict) -> _File:
    what = f"{os.fspath(source)}: " if isinstance(source, str | os.PathLike) else ""
    try:
        if isinstance(source, dict):
            return msgspec.convert(source, _File)
        with open(source, "rb") as f:
            return msgspec.json.decode(f.read(), type=_File)
    except msgspec.ValidationError as err:
        raise ValueError(f"{what}not an LVIS annotation file: {err}") from None
    except msgspec.DecodeError as err:
        raise ValueError(f"{what}invalid JSON: {err}") from None


def load_lvis_gt(
    source: str | os.PathLike | dict,
    iou_type: IouTypes = "bbox",
    labels: LabelMode = "category_id",
    box_format: str = "xywh",
    device: torch.device | str | None = None,
) -> LvisGroundTruth:
    """Read an LVIS annotation file (path or the loaded dict) into per-image targets.

    Arguments as :func:`~objdet.io.load_coco_gt`. Every image needs ``neg_category_ids`` and
    ``not_exhaustive_category_ids``, every category ``frequency`` in "r", "c", "f"; the ids in
    the lists must be categories of the file. Errors are ValueErrors naming the entry.

    Example:
        >>> gt = load_lvis_gt({
        ...     "images": [{"id": 7, "height": 4, "width": 5, "neg_category_ids": [2],
        ...                 "not_exhaustive_category_ids": []}],
        ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2],
        ...                      "area": 4.0}],
        ...     "categories": [{"id": 2, "frequency": "r"}, {"id": 3, "frequency": "f"}],
        ... })
        >>> gt.frequencies, gt.target[0]["neg_category_ids"].tolist()
        ({2: 'r', 3: 'f'}, [2])
    """
    file = _read(source)
    coco = load_coco_gt(source, iou_type=iou_type, labels=labels, box_format=box_format, device=device)
    for k, cat in enumerate(file.categories):
        if cat.frequency not in ("r", "c", "f"):
            raise ValueError(f"categories[{k}]['frequency'] must be 'r', 'c' or 'f', got {cat.frequency!r}")
    labels_of = coco.label_of([c.id for c in file.categories]).tolist()
    frequencies = {label: cat.frequency for label, cat in zip(labels_of, file.categories, strict=True)}
    position = {image_id: i for i, image_id in enumerate(coco.image_ids)}
    empty = torch.zeros(0, dtype=torch.int64)
    lists: list[dict[str, Tensor]] = [{} for _ in coco.image_ids]
    for k, img in enumerate(file.images):
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            ids = getattr(img, key)
            try:
                value = coco.label_of(ids) if ids else empty
            except ValueError:
                unknown = sorted(set(ids) - set(coco.category_ids))
                raise ValueError(
                    f"images[{k}]['{key}'] has ids that are not categories of the file: {unknown[:5]}"
                ) from None
            lists[position[img.id]][key] = value
    dev = torch.device(device) if device is not None else torch.device("cpu")
    base = coco.target

    def build(i: int) -> dict[str, Tensor]:
        return {**base[i], **{key: v.to(dev) for key, v in lists[i].items()}}

    fields = {f.name: getattr(coco, f.name) for f in dataclasses.fields(CocoGroundTruth)}
    fields["target"] = LazyImages(len(coco.image_ids), build)
    return LvisGroundTruth(**fields, frequencies=frequencies)


def load_lvis_dt(
    source: str | os.PathLike | list,
    gt: CocoGroundTruth,
    iou_type: IouTypes | None = None,
    device: torch.device | str | None = None,
    skip_unknown_categories: bool = False,
) -> Sequence[dict[str, Any]]:
    """Read an LVIS results file (the COCO results format) into ``preds``, one dict per image of ``gt``.

    :func:`~objdet.io.load_coco_dt` (same arguments): every result is kept (the metric keeps
    the 300 best of an image); ``area`` is the LVIS API's (``LVISResults``): the box's where
    the result has a ``bbox``, else the mask's pixel count.
    """
    return load_coco_dt(source, gt, iou_type, device, skip_unknown_categories)
