"""COCO JSON <-> torchmetrics-format tensors (boxes, labels, scores, crowd flags, areas, masks).

Reading: :func:`~objdet.io.load_coco_gt` reads a COCO annotation file (or the dict) and returns a
:class:`~objdet.io.CocoGroundTruth` whose ``target`` holds one dict per image, ordered by image id;
:func:`~objdet.io.load_coco_dt` reads a COCO results file (or the list) and returns the matching
``preds`` list, one dict per GT image in the same order. Both feed
:class:`objdet.training.metrics.MeanAveragePrecision` directly (``box_format="xywh"``, COCO's
own box format, unless another ``box_format`` is asked for).

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

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor

from objdet.ops.boxes import BOX_FORMATS, box_convert

IouTypes = str | tuple[str, ...]
LabelMode = Literal["category_id", "contiguous"]
_IOU_TYPES = ("bbox", "segm")


# ------------------------------------------------------------------------------ helpers
def _iou_types(iou_type: IouTypes) -> tuple[str, ...]:
    types = (iou_type,) if isinstance(iou_type, str) else tuple(iou_type)
    if not types or any(t not in _IOU_TYPES for t in types) or len(set(types)) != len(types):
        raise ValueError(f"`iou_type` must be 'bbox', 'segm' or a tuple of both, got {iou_type!r}")
    return types


def _read_json(source: Any, kind: type, what: str) -> Any:
    if isinstance(source, str | os.PathLike):
        with open(source) as f:
            source = json.load(f)
    if not isinstance(source, kind):
        raise ValueError(
            f"{what} must be a JSON {kind.__name__} (or a path to one), got {type(source).__name__}"
        )
    return source


def _column(
    entries: list[dict], key: str, what: str, dtype: type, required: bool = True, default: Any = None
) -> np.ndarray:
    """One field of every entry as a numpy array; a missing or malformed value raises ValueError."""
    try:
        values = [e[key] for e in entries] if required else [e.get(key, default) for e in entries]
    except KeyError:
        k = next(i for i, e in enumerate(entries) if key not in e)
        raise ValueError(f"{what}[{k}] has no key '{key}' (keys seen: {sorted(entries[k])})") from None
    except (TypeError, AttributeError):
        k = next(i for i, e in enumerate(entries) if not isinstance(e, dict))
        raise ValueError(f"{what}[{k}] must be a JSON object, got {type(entries[k]).__name__}") from None
    arr: np.ndarray | None
    try:
        arr = np.array(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        arr = None
    ok = arr is not None and arr.shape == (len(entries),)
    if ok and dtype is np.int64:
        ok = all(_integral(v) for v in values)
    if not ok:
        kind = "an integer" if dtype is np.int64 else "a number"
        for k, v in enumerate(values):
            good = _integral(v) if dtype is np.int64 else isinstance(v, int | float)
            if not good or isinstance(v, bool):
                raise ValueError(f"{what}[{k}]['{key}'] must be {kind}, got {v!r}")
        k = next(k for k, v in enumerate(values) if abs(v) >= 2**63)
        raise ValueError(f"{what}[{k}]['{key}'] must fit in 64 bits, got {values[k]!r}")
    assert arr is not None
    return arr


def _integral(v: Any) -> bool:
    """An integer, or a float with an integral value (JSON has one number type: 3.0 is 3)."""
    if isinstance(v, float):
        return v.is_integer()
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _boxes(entries: list[dict], what: str, rows: np.ndarray | None = None) -> np.ndarray:
    """(N, 4) float64 xywh boxes of the entries; each must be 4 finite numbers with w, h >= 0."""
    idx = range(len(entries)) if rows is None else rows.tolist()
    try:
        values = [entries[k]["bbox"] for k in idx]
    except KeyError:
        k = next(k for k in idx if "bbox" not in entries[k])
        raise ValueError(f"{what}[{k}] has no key 'bbox' (keys seen: {sorted(entries[k])})") from None
    try:
        arr = np.array(values, dtype=np.float64).reshape(len(values), -1)
    except (TypeError, ValueError):
        arr = np.zeros((0, 0))
    bad = (
        np.ones(len(values), bool)
        if arr.shape != (len(values), 4)
        else ~np.isfinite(arr).all(1) | (arr[:, 2:] < 0).any(1)
    )
    if bad.any():
        for j, v in enumerate(values):
            ok = (
                isinstance(v, list | tuple)
                and len(v) == 4
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
                and all(np.isfinite(v))
                and v[2] >= 0
                and v[3] >= 0
            )
            if not ok:
                k = list(idx)[j]
                raise ValueError(
                    f"{what}[{k}]['bbox'] must be 4 finite numbers [x, y, width, height] with width and "
                    f"height >= 0, got {v!r}"
                )
    return arr.reshape(len(values), 4)


def _locate(values: np.ndarray, known: np.ndarray, what: str, key: str, owner: str) -> np.ndarray:
    """Index of every value in the sorted ``known`` ids; an unknown value raises ValueError."""
    pos = np.searchsorted(known, values)
    pos_c = np.minimum(pos, max(len(known) - 1, 0))
    bad = (pos >= len(known)) | (known[pos_c] != values) if len(known) else np.ones(len(values), bool)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}[{k}]['{key}'] = {int(values[k])} is not in the {owner}")
    return pos_c


def _rle(segm: Any, height: int | None, width: int | None, what: str) -> dict:
    """One segmentation (polygons, uncompressed or compressed RLE) as compressed RLE, as pycocotools does."""
    if isinstance(segm, list):
        if not segm or not all(isinstance(p, list) and len(p) >= 4 for p in segm):
            raise ValueError(
                f"{what}['segmentation'] must be a non-empty list of polygons [x0, y0, x1, y1, ...]"
            )
        if not height or not width:
            raise ValueError(f"{what}: polygon 'segmentation' needs the image's 'height' and 'width'")
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        raise ValueError(
            f"{what}['segmentation'] must be polygons or an RLE dict with 'size' and 'counts', "
            f"got {segm!r:.80}"
        )
    size = segm["size"]
    if not (
        isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(s, int) and s >= 0 for s in size)
    ):
        raise ValueError(f"{what}['segmentation']['size'] must be [height, width], got {size!r}")
    if height is not None and width is not None and height and width and list(size) != [height, width]:
        raise ValueError(
            f"{what}['segmentation']['size'] is {list(size)} but the image is "
            f"[height, width] = {[height, width]}"
        )
    counts = segm["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        if not all(_integral(c) and c >= 0 for c in counts):
            raise ValueError(
                f"{what}['segmentation']['counts'] (uncompressed RLE) must be integers >= 0, "
                f"got {counts!r:.80}"
            )
        if sum(counts) != size[0] * size[1]:
            raise ValueError(
                f"{what}['segmentation']['counts'] (uncompressed RLE) must sum to height * width = "
                f"{size[0] * size[1]}, got {sum(counts)}"
            )
        return mask_utils.frPyObjects(segm, size[0], size[1])
    if isinstance(counts, str | bytes):
        return {"size": list(size), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise ValueError(
        f"{what}['segmentation']['counts'] must be a list or a string, got {type(counts).__name__}"
    )


def _mask_areas(rles: list[dict]) -> np.ndarray:
    """Pixel counts of compressed RLEs, 255 at a time: pycocotools' ``area`` overflows past 255 (numpy 2)."""
    chunks = [
        np.asarray(mask_utils.area(rles[i : i + 255]), dtype=np.float64) for i in range(0, len(rles), 255)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float64)


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
        target: one dict per image: ``boxes`` (M, 4) (with bbox), ``masks`` (M, H, W) bool (with
            segm, decoded when read), ``labels`` (M,) int64, ``iscrowd`` (M,) int64, ``area``
            (M,) float64 (0 where the file has none) and ``annotation_ids`` (M,) int64.
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

    def label_of(self, category_ids: Any) -> Tensor:
        """Labels (as in ``target``) of COCO category ids; unknown ids raise ValueError."""
        ids = np.asarray(category_ids, dtype=np.int64).reshape(-1)
        pos = _locate(ids, self._category_array, "category_ids", "category_id", "GT categories")
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
        iou_type: "bbox" (needs every annotation's ``bbox``), "segm" (needs ``segmentation``)
            or both as a tuple.
        labels: "category_id" (keep COCO's ids as labels) or "contiguous" (0..K-1).
        box_format: format of the returned ``boxes`` ("xywh", COCO's, by default).
        device: where the returned tensors go (default CPU).

    Example:
        >>> gt = load_coco_gt({
        ...     "images": [{"id": 7, "height": 4, "width": 5}],
        ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2],
        ...                      "area": 4.0, "iscrowd": 0,
        ...                      "segmentation": {"size": [4, 5], "counts": [5, 2, 2, 2, 9]}}],
        ...     "categories": [{"id": 3, "name": "cat"}],
        ... }, iou_type=("bbox", "segm"))
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
    data = _read_json(source, dict, "the COCO ground truth")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"the COCO ground truth has no key '{key}' (keys seen: {sorted(data)})")
        if not isinstance(data[key], list):
            raise ValueError(
                f"the COCO ground truth's '{key}' must be a list, got {type(data[key]).__name__}"
            )
    images, anns, cats = data["images"], data["annotations"], data["categories"]

    img_ids = _column(images, "id", "images", np.int64)
    heights = _column(images, "height", "images", np.int64, required=False, default=0)
    widths = _column(images, "width", "images", np.int64, required=False, default=0)
    cat_ids = _column(cats, "id", "categories", np.int64)
    for what, ids in (("images", img_ids), ("categories", cat_ids)):
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{what} has the 'id' {int(uniq[counts > 1][0])} more than once")
    img_order, cat_order = np.argsort(img_ids, kind="stable"), np.argsort(cat_ids, kind="stable")
    sorted_imgs, sorted_cats = img_ids[img_order], cat_ids[cat_order]
    names = [str(cats[k].get("name", cat_ids[k])) for k in cat_order.tolist()]

    ann_img = _column(anns, "image_id", "annotations", np.int64)
    ann_cat = _column(anns, "category_id", "annotations", np.int64)
    ann_ids = _column(anns, "id", "annotations", np.int64, required=False, default=0)
    has_id = np.array([isinstance(a, dict) and "id" in a for a in anns], dtype=bool)
    uniq, counts = np.unique(ann_ids[has_id], return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"annotations has the 'id' {int(uniq[counts > 1][0])} more than once")
    crowd = _column(anns, "iscrowd", "annotations", np.int64, required=False, default=0)
    if ((crowd != 0) & (crowd != 1)).any():
        k = int(np.flatnonzero((crowd != 0) & (crowd != 1))[0])
        raise ValueError(f"annotations[{k}]['iscrowd'] must be 0 or 1, got {int(crowd[k])}")
    area = _column(anns, "area", "annotations", np.float64, required=False, default=0.0)
    if (~np.isfinite(area) | (area < 0)).any():
        k = int(np.flatnonzero(~np.isfinite(area) | (area < 0))[0])
        raise ValueError(f"annotations[{k}]['area'] must be a finite number >= 0, got {area[k]}")
    img_pos = _locate(ann_img, sorted_imgs, "annotations", "image_id", "GT 'images'")
    cat_pos = _locate(ann_cat, sorted_cats, "annotations", "category_id", "GT 'categories'")
    boxes = _boxes(anns, "annotations") if "bbox" in types else None
    segms: list[Any] = []
    if "segm" in types:
        try:
            segms = [a["segmentation"] for a in anns]
        except KeyError:
            k = next(i for i, a in enumerate(anns) if "segmentation" not in a)
            raise ValueError(f"annotations[{k}] has no key 'segmentation' (iou_type 'segm')") from None

    label_values = cat_pos if labels == "contiguous" else ann_cat
    order = np.argsort(img_pos, kind="stable")  # file order within an image, as pycocotools
    bounds = _bounds(np.bincount(img_pos, minlength=len(sorted_imgs)))
    sizes = [(int(heights[k]), int(widths[k])) for k in img_order.tolist()]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    # every field permuted once into image order; an image is then a slice (a view)
    fields = {"labels": label_values, "iscrowd": crowd, "area": area, "annotation_ids": ann_ids}
    columns = {key: torch.from_numpy(np.ascontiguousarray(v[order])) for key, v in fields.items()}
    if boxes is not None:
        columns["boxes"] = _convert_boxes(np.ascontiguousarray(boxes[order]), box_format)
    rles: list[dict] = []
    if "segm" in types:  # every segmentation to compressed RLE now (checks it), decoded when an image is read
        image_of = np.repeat(np.arange(len(sizes)), np.diff([0, *[e for _, e in bounds]]))
        for k, i in zip(order.tolist(), image_of.tolist(), strict=True):
            h, w = sizes[i]
            rles.append(_rle(segms[k], h or None, w or None, f"annotations[{k}]"))

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
        category_names=names,
        labels=labels,
        iou_type=types,
        box_format=box_format,
        target=LazyImages(len(sorted_imgs), build),
        _category_array=sorted_cats,
        _image_array=sorted_imgs,
    )


# ------------------------------------------------------------------------------ detections
def load_coco_dt(
    source: str | os.PathLike | list,
    gt: CocoGroundTruth,
    iou_type: IouTypes | None = None,
    device: torch.device | str | None = None,
) -> Sequence[dict[str, Tensor]]:
    """Read a COCO results file (path or the loaded list) into ``preds``, one dict per image of ``gt``.

    Every result needs ``image_id``, ``category_id`` and ``score``, plus ``bbox`` for "bbox" (a
    result without one takes its segmentation's bounding box, as pycocotools) and
    ``segmentation`` for "segm". Detections keep the file's order within an image. Images of
    ``gt`` without detections get empty tensors. ``iou_type`` defaults to ``gt.iou_type``;
    boxes come in ``gt.box_format`` and labels follow ``gt.labels``. Every dict also holds
    ``area`` (N,): the detection areas pycocotools' ``loadRes`` would set (the box area where
    the result has a box, else the mask's pixel count), which
    :class:`~objdet.training.metrics.MeanAveragePrecision` uses for the area ranges.

    Example:
        >>> gt = load_coco_gt({"images": [{"id": 1}, {"id": 2}], "annotations": [],
        ...                    "categories": [{"id": 5}]})
        >>> preds = load_coco_dt([{"image_id": 2, "category_id": 5, "bbox": [0, 0, 4, 3], "score": 0.5}], gt)
        >>> [len(p["scores"]) for p in preds], preds[1]["boxes"].tolist(), preds[1]["labels"].tolist()
        ([0, 1], [[0.0, 0.0, 4.0, 3.0]], [5])
    """
    types = gt.iou_type if iou_type is None else _iou_types(iou_type)
    results = _read_json(source, list, "the COCO results")
    img = _column(results, "image_id", "results", np.int64)
    cat = _column(results, "category_id", "results", np.int64)
    score = _column(results, "score", "results", np.float64)
    if (~np.isfinite(score)).any():
        k = int(np.flatnonzero(~np.isfinite(score))[0])
        raise ValueError(f"results[{k}]['score'] must be a finite number, got {score[k]}")
    img_pos = _locate(img, gt._image_array, "results", "image_id", "GT 'images'")
    cat_pos = _locate(cat, gt._category_array, "results", "category_id", "GT 'categories'")
    if "segm" in types:
        missing = [k for k, r in enumerate(results) if "segmentation" not in r]
        if missing:
            raise ValueError(f"results[{missing[0]}] has no key 'segmentation' (iou_type 'segm')")
    # boxes where given (an empty list counts as none, as in pycocotools), else the mask's box
    has_box = np.array([r.get("bbox", []) != [] for r in results], dtype=bool)
    boxes = np.zeros((len(results), 4), dtype=np.float64)
    boxes[has_box] = _boxes(results, "results", np.flatnonzero(has_box))
    rles: list[dict] = [{}] * len(results)
    need_rle = range(len(results)) if "segm" in types else np.flatnonzero(~has_box).tolist()
    for k in need_rle:  # polygons and uncompressed RLE to compressed RLE (checks them), decoded when read
        if "segmentation" not in results[k]:
            raise ValueError(f"results[{k}] has no key 'bbox' (keys seen: {sorted(results[k])})")
        h, w = gt.image_sizes[int(img_pos[k])]
        rles[k] = _rle(results[k]["segmentation"], h or None, w or None, f"results[{k}]")
    no_box = np.flatnonzero(~has_box)
    if len(no_box):
        boxes[no_box] = mask_utils.toBbox([rles[k] for k in no_box.tolist()]).reshape(-1, 4)
    # detection areas as pycocotools' loadRes sets them: the box area where a box is given, else the mask's
    area = boxes[:, 2] * boxes[:, 3]
    if len(no_box):
        area[no_box] = _mask_areas([rles[k] for k in no_box.tolist()])
    label_values = cat_pos if gt.labels == "contiguous" else cat
    order = np.argsort(img_pos, kind="stable")
    bounds = _bounds(np.bincount(img_pos, minlength=len(gt.image_ids)))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    fields = {"scores": score, "labels": label_values, "area": area}
    columns = {key: torch.from_numpy(np.ascontiguousarray(v[order])) for key, v in fields.items()}
    if "bbox" in types:
        columns["boxes"] = _convert_boxes(np.ascontiguousarray(boxes[order]), gt.box_format)
    sorted_rles = [rles[k] for k in order.tolist()] if "segm" in types else []

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
            mask_area = _mask_areas(
                [{"size": r["size"], "counts": r["counts"].encode()} for r in rles]
            ).tolist()
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
