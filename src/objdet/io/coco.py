"""COCO JSON <-> torchmetrics-format tensors (boxes, labels, scores, crowd flags, areas, masks).

Reading: :func:`~objdet.io.load_coco_gt` reads a COCO annotation file (or the dict) and returns a
:class:`~objdet.io.CocoGroundTruth` whose ``target`` holds one dict per image, ordered by image id;
:func:`~objdet.io.load_coco_dt` reads a COCO results file (or the list) and returns the matching
``preds`` list, one dict per GT image in the same order. Both feed
:class:`objdet.training.metrics.MeanAveragePrecision` directly. Their boxes are in
``gt.box_format``: ``"xywh"``, COCO's own format, unless another ``box_format`` is asked for,
while the metric defaults to ``"xyxy"`` as torchmetrics does; so create the metric with
``MeanAveragePrecision(box_format=gt.box_format)`` (or load with ``box_format="xyxy"``). xywh
boxes read as xyxy are wrong boxes, and often valid ones, so no error can catch every case.

Writing: :func:`~objdet.io.to_coco_gt` and :func:`~objdet.io.to_coco_results` turn the same
lists of dicts back into JSON-ready objects (masks as compressed RLE with ASCII ``counts``).

Segmentations may be polygons, uncompressed RLE (``counts`` a list, as COCO's crowd
annotations) or compressed RLE (``counts`` a string), in GT and in results; they are decoded
with pycocotools exactly as COCOeval decodes them (polygons need the image's ``height`` and
``width``). Masks are decoded when an image is read from the returned sequences, not at load
time, so a whole data set never sits in memory as dense masks: slice the sequences batch by
batch.

Labels: COCO category ids are arbitrary integers. With ``labels="category_id"`` (the
default, as torchmetrics' ``coco_to_tm``) the labels are the category ids themselves, so the
metric's ``classes`` are COCO's ``catIds``; with ``labels="contiguous"`` they are 0..K-1 in
increasing category id order (what :class:`~objdet.training.metrics.ClasswiseAP` needs), and
``CocoGroundTruth.category_ids[label]`` maps back.

Validation: missing keys, detections or annotations whose ``image_id`` / ``category_id`` is
not in the GT, malformed ``bbox`` (not 4 finite numbers, negative width or height), bad
``score``, duplicate ids and segmentations that do not fit their image raise ValueError naming
the field, the entry's index and the value seen.

Detection areas follow pycocotools' ``loadRes``: the box area for results that carry a
``bbox`` (also in ``segm`` evaluation), else the mask's pixel count; :func:`~objdet.io.load_coco_dt`
returns them as ``area`` in every preds dict, which the metric uses, so that results on files
equal pycocotools'. (pycocotools picks one rule for the whole file from its first result; here
each result picks its own, which is the same for files whose results all look alike.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor

from objdet.io.coco_arrays import GtArrays, IouTypes, locate, read_dt_arrays, read_gt_arrays, rle_area
from objdet.io.coco_arrays import iou_types as _iou_types
from objdet.ops.boxes import BOX_FORMATS, box_convert

LabelMode = Literal["category_id", "contiguous"]


# ------------------------------------------------------------------------------ helpers
def _decode(rles: list[dict], height: int, width: int, what: str) -> Tensor:
    """(n, H, W) bool masks (C-contiguous) from compressed RLEs of one image."""
    if not rles:
        return torch.zeros((0, height, width), dtype=torch.bool)
    for r in rles:  # only possible where the image has no 'height' / 'width' to check them against
        if list(r["size"]) != [height, width]:
            raise ValueError(
                f"{what}: the 'segmentation' sizes of one image differ ({[height, width]} and "
                f"{list(r['size'])}); give the image its 'height' and 'width'"
            )
    try:
        fortran = mask_utils.decode(rles)  # (H, W, n) uint8, column-major
    except ValueError as err:
        raise ValueError(f"{what}: a compressed RLE 'segmentation' is invalid ({err})") from None
    return torch.from_numpy(np.ascontiguousarray(fortran.transpose(2, 0, 1))).view(torch.bool)


class LazyImages(Sequence[dict[str, Tensor]]):
    """One dict per image, built when read (masks decoded then); slicing gives a list of dicts.

    Indexing is cheap for boxes-only data; with masks every read decodes that image's masks
    (nothing is cached, so memory stays bounded when the sequence is read batch by batch).
    """

    def __init__(self, n: int, build: Callable[[int], dict[str, Tensor]]) -> None:
        self._n = n
        self._build = build

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> dict[str, Tensor]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Tensor]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if isinstance(index, slice):
            return [self._build(i) for i in range(*index.indices(self._n))]
        if not -self._n <= index < self._n:
            raise IndexError(f"image index {index} out of range for {self._n} images")
        return self._build(index % self._n)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return (self._build(i) for i in range(self._n))


def _bounds(counts: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of every group in an array sorted by group."""
    ends = np.cumsum(counts)
    return list(zip((ends - counts).tolist(), ends.tolist(), strict=True))


def _convert_boxes(xywh: np.ndarray, box_format: str) -> Tensor:
    boxes = torch.from_numpy(xywh)
    return boxes if box_format == "xywh" else box_convert(boxes, "xywh", box_format)


# ------------------------------------------------------------------------------ ground truth
@dataclass
class CocoGroundTruth:
    """A COCO GT file as per-image torchmetrics targets (see the module docstring).

    Attributes:
        image_ids: COCO image ids in increasing order; ``target[i]`` is image ``image_ids[i]``.
        image_sizes: (height, width) of every image ((0, 0) where the file gives none).
        category_ids: COCO category ids in increasing order.
        category_names: their ``name`` (the id as a string where none is given).
        labels: "category_id" (labels are the category ids) or "contiguous" (label i is
            ``category_ids[i]``).
        iou_type: what was read: ("bbox",), ("segm",), ("keypoints",) or several.
        box_format: the format of every ``boxes`` tensor in ``target`` and in the ``preds`` of
            :func:`load_coco_dt`; give it to the metric: ``MeanAveragePrecision(box_format=gt.box_format)``.
        target: one dict per image: ``boxes`` (M, 4) (with bbox or keypoints), ``masks`` (M, H,
            W) bool (with segm, decoded when read), ``keypoints`` (M, K, 3) float64 and
            ``num_keypoints`` (M,) int64 (with keypoints), ``labels`` (M,) int64, ``iscrowd``
            (M,) int64, ``area`` (M,) float64 (0 where the file has none) and
            ``annotation_ids`` (M,) int64.

    Its repr gives the sizes and the formats, not the data.
    """

    image_ids: list[int]
    image_sizes: list[tuple[int, int]]
    category_ids: list[int]
    category_names: list[str]
    labels: LabelMode
    iou_type: tuple[str, ...]
    box_format: str
    target: Sequence[dict[str, Tensor]]
    _category_array: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    _image_array: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    _arrays: GtArrays | None = field(repr=False, default=None)

    def __repr__(self) -> str:
        n_ann = len(self._arrays.label) if self._arrays is not None else "?"
        return (
            f"CocoGroundTruth(images={len(self.image_ids)}, categories={len(self.category_ids)}, "
            f"annotations={n_ann}, iou_type={self.iou_type!r}, labels={self.labels!r}, "
            f"box_format={self.box_format!r})"
        )

    def label_of(self, category_ids: Any) -> Tensor:
        """Labels (as in ``target``) of COCO category ids; unknown ids raise ValueError."""
        ids = np.asarray(category_ids, dtype=np.int64).reshape(-1)
        pos = locate(ids, self._category_array, "category_ids", "category_id", "GT categories")
        return torch.from_numpy(pos if self.labels == "contiguous" else ids)

    def category_of(self, labels: Tensor) -> Tensor:
        """COCO category ids of labels (as in ``target`` / ``preds``)."""
        labels = labels.detach().cpu().to(torch.int64)
        if self.labels == "category_id":
            return labels
        return torch.from_numpy(self._category_array)[labels]


def load_coco_gt(
    source: str | os.PathLike | dict,
    iou_type: IouTypes = "bbox",
    labels: LabelMode = "category_id",
    box_format: str = "xywh",
    device: torch.device | str | None = None,
) -> CocoGroundTruth:
    """Read a COCO annotation file (path or the loaded dict) into per-image targets.

    Args:
        source: path of the JSON file, or its content as a dict.
        iou_type: "bbox" (needs every annotation's ``bbox``), "segm" (needs ``segmentation``),
            "keypoints" (needs ``keypoints`` and ``bbox``; ``num_keypoints`` is read where
            given, else counted from the visibilities) or a tuple of them.
        labels: "category_id" (keep COCO's ids as labels) or "contiguous" (0..K-1).
        box_format: format of the returned ``boxes`` ("xywh", COCO's, by default; the metric
            defaults to "xyxy": create it with ``box_format=gt.box_format``).
        device: where the returned tensors go (default CPU).

    An empty ``annotations`` list gives a :class:`~objdet.io.coco_arrays.CocoInputWarning`.

    Example:
        >>> gt = load_coco_gt({
        ...     "images": [{"id": 7, "height": 4, "width": 5}],
        ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2],
        ...                      "area": 4.0, "iscrowd": 0,
        ...                      "segmentation": {"size": [4, 5], "counts": [5, 2, 2, 2, 9]}}],
        ...     "categories": [{"id": 3, "name": "cat"}],
        ... }, iou_type=("bbox", "segm"))
        >>> gt  # doctest: +NORMALIZE_WHITESPACE
        CocoGroundTruth(images=1, categories=1, annotations=1, iou_type=('bbox', 'segm'),
                        labels='category_id', box_format='xywh')
        >>> gt.image_ids, gt.category_names, gt.target[0]["boxes"]
        ([7], ['cat'], tensor([[1., 1., 2., 2.]], dtype=torch.float64))
        >>> gt.target[0]["masks"].int()
        tensor([[[0, 0, 0, 0, 0],
                 [0, 1, 1, 0, 0],
                 [0, 1, 1, 0, 0],
                 [0, 0, 0, 0, 0]]], dtype=torch.int32)
    """
    types = _iou_types(iou_type)
    if labels not in ("category_id", "contiguous"):
        raise ValueError(f"`labels` must be 'category_id' or 'contiguous', got {labels!r}")
    if box_format not in BOX_FORMATS:
        raise ValueError(f"`box_format` must be one of {BOX_FORMATS}, got {box_format!r}")
    arrays = read_gt_arrays(source, types)
    sorted_imgs, sorted_cats = arrays.image_ids, arrays.category_ids
    label_values = arrays.label if labels == "contiguous" else arrays.category
    bounds = _bounds(arrays.counts)
    sizes = arrays.image_sizes
    dev = torch.device(device) if device is not None else torch.device("cpu")
    # every field in image order; an image is then a slice (a view)
    fields = {
        "labels": label_values,
        "iscrowd": arrays.crowd,
        "area": arrays.area,
        "annotation_ids": arrays.ann_id,
    }
    columns = {key: torch.from_numpy(v) for key, v in fields.items()}
    if arrays.boxes is not None:
        columns["boxes"] = _convert_boxes(arrays.boxes, box_format)
    if arrays.keypoints is not None and arrays.num_keypoints is not None:
        columns["keypoints"] = torch.from_numpy(arrays.keypoints)
        columns["num_keypoints"] = torch.from_numpy(arrays.num_keypoints)
    rles: list[dict] = arrays.rles or []

    def build(i: int) -> dict[str, Tensor]:
        a, b = bounds[i]
        out = {key: col[a:b] for key, col in columns.items()}
        if "segm" in types:
            h, w = sizes[i]
            if not h and b > a:
                h, w = rles[a]["size"]
            out["masks"] = _decode(rles[a:b], h, w, f"annotations of image {int(sorted_imgs[i])}")
        return {k: v.to(dev) for k, v in out.items()}

    return CocoGroundTruth(
        image_ids=sorted_imgs.tolist(),
        image_sizes=sizes,
        category_ids=sorted_cats.tolist(),
        category_names=arrays.category_names,
        labels=labels,
        iou_type=types,
        box_format=box_format,
        target=LazyImages(len(sorted_imgs), build),
        _category_array=sorted_cats,
        _image_array=sorted_imgs,
        _arrays=arrays,
    )


# ------------------------------------------------------------------------------ detections
def load_coco_dt(
    source: str | os.PathLike | list,
    gt: CocoGroundTruth,
    iou_type: IouTypes | None = None,
    device: torch.device | str | None = None,
    skip_unknown_categories: bool = False,
) -> Sequence[dict[str, Tensor]]:
    """Read a COCO results file (path or the loaded list) into ``preds``, one dict per image of ``gt``.

    Every result needs ``image_id``, ``category_id`` and ``score``, plus ``bbox`` for "bbox" (a
    result without one takes its segmentation's bounding box, as pycocotools) and
    ``segmentation`` for "segm". Detections keep the file's order within an image. Images of
    ``gt`` without detections get empty tensors. With "keypoints" each result needs
    ``keypoints`` (3 K numbers; they come as ``keypoints`` (N, K, 3)), and a result without
    ``bbox`` takes the box its keypoints span, as pycocotools' ``loadRes`` (whose area is then
    the detection's ``area``). ``iou_type`` defaults to ``gt.iou_type``;
    boxes come in ``gt.box_format`` and labels follow ``gt.labels``. Every dict also holds
    ``area`` (N,): the detection areas pycocotools' ``loadRes`` would set (the box area where
    the result has a box, else the mask's pixel count), which
    :class:`~objdet.training.metrics.MeanAveragePrecision` uses for the area ranges.

    A result whose ``category_id`` is not in ``gt`` is an error
    (:class:`~objdet.io.coco_arrays.UnknownCategoryError`); with
    ``skip_unknown_categories=True`` such results are left out, as pycocotools ignores them,
    with a :class:`~objdet.io.coco_arrays.CocoInputWarning` giving their number and ids. An
    empty results list also gives that warning.

    Example:
        >>> gt = load_coco_gt({"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 5}],
        ...                    "annotations": [{"image_id": 2, "category_id": 5, "bbox": [1, 0, 3, 3]}]})
        >>> preds = load_coco_dt([{"image_id": 2, "category_id": 5, "bbox": [0, 0, 4, 3], "score": 0.5}], gt)
        >>> [len(p["scores"]) for p in preds], preds[1]["boxes"].tolist(), preds[1]["labels"].tolist()
        ([0, 1], [[0.0, 0.0, 4.0, 3.0]], [5])
        >>> from objdet.training.metrics import MeanAveragePrecision
        >>> metric = MeanAveragePrecision(box_format=gt.box_format)  # "xywh", as the files
        >>> metric.update(list(preds), list(gt.target))
        >>> round(metric.compute()["map_50"].item(), 3)  # one detection, IoU 9 / 12 = 0.75
        1.0
    """
    types = gt.iou_type if iou_type is None else _iou_types(iou_type)
    arrays = read_dt_arrays(
        source, gt._arrays if gt._arrays is not None else _arrays_of(gt), types, skip_unknown_categories
    )
    label_values = arrays.label if gt.labels == "contiguous" else arrays.category
    bounds = _bounds(arrays.counts)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    fields = {"scores": arrays.score, "labels": label_values, "area": arrays.area}
    columns = {key: torch.from_numpy(v) for key, v in fields.items()}
    if "bbox" in types:
        columns["boxes"] = _convert_boxes(arrays.boxes, gt.box_format)
    if arrays.keypoints is not None:
        columns["keypoints"] = torch.from_numpy(arrays.keypoints)
    sorted_rles = arrays.rles or []

    def build(i: int) -> dict[str, Tensor]:
        a, b = bounds[i]
        out = {key: col[a:b] for key, col in columns.items()}
        if "segm" in types:
            h, w = gt.image_sizes[i]
            if not h and b > a:
                h, w = sorted_rles[a]["size"]
            out["masks"] = _decode(sorted_rles[a:b], h, w, f"results of image {gt.image_ids[i]}")
        return {k: v.to(dev) for k, v in out.items()}

    return LazyImages(len(gt.image_ids), build)


def _arrays_of(gt: CocoGroundTruth) -> GtArrays:
    """The image and category columns of a CocoGroundTruth made by hand (no annotations)."""
    sizes = np.array(gt.image_sizes, np.int64).reshape(-1, 2)
    empty = np.zeros(0, np.int64)
    return GtArrays(
        iou_type=gt.iou_type,
        image_ids=np.asarray(gt.image_ids, np.int64),
        heights=sizes[:, 0],
        widths=sizes[:, 1],
        category_ids=np.asarray(gt.category_ids, np.int64),
        category_names=list(gt.category_names),
        img=empty,
        label=empty,
        category=empty,
        crowd=empty,
        area=np.zeros(0),
        ann_id=empty,
        boxes=None,
        rles=None,
        index=empty,
        counts=np.zeros(len(gt.image_ids), np.int64),
    )


# ------------------------------------------------------------------------------ writing
def _encode(masks: Tensor) -> list[dict]:
    """Compressed RLEs (ASCII counts) of (n, H, W) masks."""
    if masks.shape[0] == 0:
        return []
    m = masks.detach().cpu().to(torch.uint8).numpy()
    rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def _xywh_lists(boxes: Tensor, box_format: str) -> list[list[float]]:
    boxes = boxes.detach().cpu().reshape(-1, 4)
    if box_format != "xywh":
        boxes = box_convert(boxes, box_format, "xywh")
    return boxes.to(torch.float64).tolist()


def _ids(image_ids: Sequence[int] | None, n: int) -> list[int]:
    if image_ids is None:
        return list(range(n))
    ids = [int(i) for i in image_ids]
    if len(ids) != n:
        raise ValueError(f"`image_ids` must have one id per image ({n}), got {len(ids)}")
    return ids


def _category(labels: Tensor, category_ids: Sequence[int] | None) -> list[int]:
    values = labels.detach().cpu().to(torch.int64)
    if category_ids is None:
        return values.tolist()
    table = torch.tensor([int(c) for c in category_ids], dtype=torch.int64)
    if values.numel() and (values.min() < 0 or values.max() >= len(table)):
        raise ValueError(
            f"labels must lie in [0, {len(table) - 1}] to index `category_ids`, got {values.tolist()}"
        )
    return table[values].tolist()


def to_coco_results(
    preds: Sequence[dict[str, Tensor]],
    image_ids: Sequence[int] | None = None,
    iou_type: IouTypes = "bbox",
    box_format: str = "xyxy",
    category_ids: Sequence[int] | None = None,
) -> list[dict]:
    """COCO results (a JSON-ready list) from ``preds`` in torchmetrics format.

    Args:
        preds: one dict per image with ``scores``, ``labels`` and ``boxes`` (for "bbox") and/or
            ``masks`` (for "segm", written as compressed RLE).
        image_ids: the COCO image id of every image (default 0, 1, ...).
        iou_type: which of ``bbox`` / ``segmentation`` to write.
        box_format: the format of ``preds``' boxes (written as COCO's xywh).
        category_ids: ``category_ids[label]`` is written as ``category_id`` (default: the label).

    Example:
        >>> import torch
        >>> to_coco_results([{"boxes": torch.tensor([[1.0, 2.0, 4.0, 6.0]]), "scores": torch.tensor([0.5]),
        ...                   "labels": torch.tensor([3])}], image_ids=[42])
        [{'image_id': 42, 'category_id': 3, 'score': 0.5, 'bbox': [1.0, 2.0, 3.0, 4.0]}]
    """
    types = _iou_types(iou_type)
    ids = _ids(image_ids, len(preds))
    out = []
    for i, (image_id, p) in enumerate(zip(ids, preds, strict=True)):
        for key in (
            "scores",
            "labels",
            *(["boxes"] if "bbox" in types else []),
            *(["masks"] if "segm" in types else []),
        ):
            if key not in p:
                raise ValueError(f"preds[{i}] has no key '{key}' (keys seen: {sorted(p)})")
        scores = p["scores"].detach().cpu().to(torch.float64).tolist()
        cats = _category(p["labels"], category_ids)
        boxes = _xywh_lists(p["boxes"], box_format) if "bbox" in types else None
        rles = _encode(p["masks"]) if "segm" in types else None
        for j, (s, c) in enumerate(zip(scores, cats, strict=True)):
            r: dict[str, Any] = {"image_id": image_id, "category_id": c, "score": s}
            if boxes is not None:
                r["bbox"] = boxes[j]
            if rles is not None:
                r["segmentation"] = rles[j]
            out.append(r)
    return out


def to_coco_gt(
    target: Sequence[dict[str, Tensor]],
    image_ids: Sequence[int] | None = None,
    iou_type: IouTypes = "bbox",
    box_format: str = "xyxy",
    category_ids: Sequence[int] | None = None,
    category_names: Sequence[str] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> dict:
    """A COCO ground-truth dataset (a JSON-ready dict) from ``target`` in torchmetrics format.

    ``area`` is written as given where positive, else as the mask's pixel count (with masks)
    or the box area, which is what the metric uses; ``iscrowd`` defaults to 0. Annotation ids
    run from 1. Images get their ``height`` / ``width`` from ``image_sizes`` or their masks.
    Categories: every label that occurs (mapped through ``category_ids`` if given, which then
    lists every category, with ``category_names``).

    Example:
        >>> import torch
        >>> gt = to_coco_gt([{"boxes": torch.tensor([[0.0, 0.0, 2.0, 3.0]]), "labels": torch.tensor([1])}])
        >>> gt["annotations"]
        [{'id': 1, 'image_id': 0, 'category_id': 1, 'iscrowd': 0, 'area': 6.0, 'bbox': [0.0, 0.0, 2.0, 3.0]}]
    """
    types = _iou_types(iou_type)
    ids = _ids(image_ids, len(target))
    images: list[dict] = []
    anns: list[dict] = []
    seen: set[int] = set()
    for i, (image_id, t) in enumerate(zip(ids, target, strict=True)):
        for key in (
            "labels",
            *(["boxes"] if "bbox" in types else []),
            *(["masks"] if "segm" in types else []),
        ):
            if key not in t:
                raise ValueError(f"target[{i}] has no key '{key}' (keys seen: {sorted(t)})")
        n = int(t["labels"].numel())
        cats = _category(t["labels"], category_ids)
        seen.update(cats)
        crowd = t["iscrowd"].detach().cpu().to(torch.int64).tolist() if "iscrowd" in t else [0] * n
        given = t["area"].detach().cpu().to(torch.float64).tolist() if "area" in t else [0.0] * n
        boxes = _xywh_lists(t["boxes"], box_format) if "bbox" in types else None
        rles = _encode(t["masks"]) if "segm" in types else None
        image: dict[str, Any] = {"id": image_id}
        if image_sizes is not None:
            image["height"], image["width"] = (int(s) for s in image_sizes[i])
        elif "segm" in types and t["masks"].ndim == 3:
            image["height"], image["width"] = (int(s) for s in t["masks"].shape[1:])
        images.append(image)
        if rles:
            mask_area = rle_area(rles).tolist()
        for j in range(n):
            a: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": cats[j],
                "iscrowd": crowd[j],
            }
            if given[j] > 0:
                a["area"] = given[j]
            elif rles is not None:
                a["area"] = float(mask_area[j])
            else:
                assert boxes is not None
                a["area"] = boxes[j][2] * boxes[j][3]
            if boxes is not None:
                a["bbox"] = boxes[j]
            if rles is not None:
                a["segmentation"] = rles[j]
            anns.append(a)
    if category_ids is not None:
        names = list(category_names) if category_names is not None else [str(int(c)) for c in category_ids]
        categories = [{"id": int(c), "name": name} for c, name in zip(category_ids, names, strict=True)]
    else:
        categories = [{"id": c, "name": str(c)} for c in sorted(seen)]
    return {"images": images, "annotations": anns, "categories": categories}
