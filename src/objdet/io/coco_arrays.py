"""COCO JSON files as numpy columns, checked, without torch: what :mod:`objdet.io.coco` and the CLI build on.

:func:`read_gt_arrays` reads a COCO annotation file into :class:`GtArrays` and
:func:`read_dt_arrays` a COCO results file into :class:`DtArrays`: one array per field, every
annotation or result in image order (images by increasing id, file order inside an image),
segmentations as compressed RLE dicts (pycocotools' form), never decoded to dense masks here.

Parsing: files are decoded by msgspec straight into typed records (``msgspec.Struct``): the
types (integer ids, numeric scores, 4-number boxes, RLE sizes and counts) are checked in C
while parsing and no dict is built per annotation; for "bbox" alone the GT's segmentations
are skipped and the results' kept as raw JSON, parsed only for results without a box. The
columns are then taken from the records with ``numpy.fromiter`` and checked as arrays;
compressed RLEs are taken as they are. A file that fails any of these strict checks (or one
given as an already loaded dict / list) goes through the generic reader instead: the
standard library's ``json`` (which also reads ``NaN``) and per-field checks that accept what
pycocotools accepts (ids written as ``3.0``) and name the first bad entry. Both readers give
identical arrays for any file the strict one accepts.

Rules are those of :mod:`objdet.io.coco` (its module docstring): detection areas as
pycocotools' ``loadRes`` sets them (the box's area where a result has a ``bbox``, else the
mask's pixel count), results without a box get their mask's bounding box.

Numbers written as strings (``"bbox": ["1", "2", "3", "4"]``, ``"score": "0.9"``) are an error
naming the field: pycocotools fails on such files, and a converter that quotes numbers may
have mangled them (a locale's ``"0,9"``). Suspicious but valid input gives a
:class:`CocoInputWarning` naming the file and the field: a ground truth whose ``annotations``
is empty, an empty results list, and results skipped with ``skip_unknown_categories=True``
(their ``category_id`` is not in the ground truth's ``categories``; pycocotools evaluates only
the ground truth's categories, so it ignores them). Without that option such results are an
:class:`UnknownCategoryError` (a ValueError).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

if TYPE_CHECKING:
    from objdet.ops.rle_cpu import RleStrings

__all__ = [
    "CocoInputWarning",
    "DtArrays",
    "GtArrays",
    "UnknownCategoryError",
    "iou_types",
    "locate",
    "read_dt_arrays",
    "read_gt_arrays",
    "rle_area",
    "rle_area_bbox",
    "rle_bbox",
    "to_rle",
]

IouTypes = str | tuple[str, ...]
_IOU_TYPES = ("bbox", "segm", "keypoints")

#: ids listed in a message, at most
_IDS_SHOWN = 10
_STRING_HINT = " (numbers written as strings; pycocotools cannot read them either: write them unquoted)"


class CocoInputWarning(UserWarning):
    """Valid but suspicious COCO input: an empty list of annotations or results, skipped results."""


class UnknownCategoryError(ValueError):
    """Results whose ``category_id`` is not in the ground truth's ``categories``.

    ``detail`` says which (the first result, how many, which ids); the message adds how to
    skip them (``skip_unknown_categories=True``), which is what pycocotools does with them.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"{detail}; skip_unknown_categories=True skips such results (pycocotools ignores them)"
        )
        self.detail = detail


def _ids_text(ids: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:_IDS_SHOWN])
    return f"[{shown}{', ...' if len(ids) > _IDS_SHOWN else ''}]"


def _warn(message: str) -> None:
    """A CocoInputWarning attributed to the first caller outside objdet."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 2, sys._getframe(1)  # stacklevel 2: the caller of _warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, CocoInputWarning, stacklevel=level)


def _prefix(source: Any) -> str:
    """``"PATH: "`` where ``source`` is a path (a message then names the file), else ``""``."""
    return f"{os.fspath(source)}: " if isinstance(source, str | os.PathLike) else ""


def _numeric(values: Sequence[Any]) -> bool:
    """Every value a JSON number (int, float; bool, which pycocotools also takes as one)."""
    kinds = set(map(type, values))
    if kinds <= {int, float, bool}:
        return True
    return all(isinstance(v, int | float | np.integer | np.floating) for v in values)


# ------------------------------------------------------------------------------ helpers
def iou_types(iou_type: IouTypes) -> tuple[str, ...]:
    """``iou_type`` as a tuple of "bbox" / "segm" / "keypoints" (ValueError otherwise)."""
    types = (iou_type,) if isinstance(iou_type, str) else tuple(iou_type)
    if not types or any(t not in _IOU_TYPES for t in types) or len(set(types)) != len(types):
        raise ValueError(
            f"`iou_type` must be 'bbox', 'segm', 'keypoints' or a tuple of them, got {iou_type!r}"
        )
    return types


def rle_area_bbox(rles: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(n,) float64 pixel counts and (n, 4) float64 xywh boxes of compressed RLEs: pycocotools'
    ``mask.area`` and ``mask.toBbox``, value for value, read from the strings in one compiled
    call (:mod:`objdet.ops.rle_cpu`), for any number of RLEs (pycocotools' ``mask.area`` fails
    on more than 255 under numpy 2: it builds its output with ``np.array((n,), dtype=np.uint8)``)."""
    from objdet.ops.rle_cpu import rle_strings

    return rle_strings(rles).area_bbox()


def rle_area(rles: Sequence[dict]) -> np.ndarray:
    """Pixel counts (float64) of compressed RLEs, as pycocotools' ``mask.area`` (:func:`rle_area_bbox`)."""
    return rle_area_bbox(rles)[0]


def rle_bbox(rles: Sequence[dict]) -> np.ndarray:
    """(n, 4) float64 xywh bounding boxes of compressed RLEs, as pycocotools' ``mask.toBbox``."""
    return rle_area_bbox(rles)[1]


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
    if ok:  # numpy also converts strings ("0.9") and None (NaN): only JSON numbers count
        ok = all(_integral(v) for v in values) if dtype is np.int64 else _numeric(values)
    if not ok:
        kind = "an integer" if dtype is np.int64 else "a number"
        for k, v in enumerate(values):
            good = _integral(v) if dtype is np.int64 else _numeric([v])
            if not good:
                hint = _STRING_HINT if isinstance(v, str) else ""
                raise ValueError(f"{what}[{k}]['{key}'] must be {kind}, got {v!r}{hint}")
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
        # numpy also converts strings ("12.5"): only JSON numbers count
        numeric = _numeric(list(itertools.chain.from_iterable(values)))
    except (TypeError, ValueError):
        arr, numeric = np.zeros((0, 0)), False
    bad = (
        np.ones(len(values), bool)
        if arr.shape != (len(values), 4) or not numeric
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
                strings = isinstance(v, list | tuple) and any(isinstance(x, str) for x in v)
                raise ValueError(
                    f"{what}[{k}]['bbox'] must be 4 finite numbers [x, y, width, height] with width and "
                    f"height >= 0, got {v!r}{_STRING_HINT if strings else ''}"
                )
    return arr.reshape(len(values), 4)


def keypoint_rows(entries: list[dict], what: str, rows: Sequence[int] | None = None) -> np.ndarray:
    """(N, K, 3) float64 keypoints of the entries: each a list of 3 K finite numbers, one K for all."""
    idx = list(range(len(entries))) if rows is None else list(rows)
    try:
        values = [entries[k]["keypoints"] for k in idx]
    except KeyError:
        k = next(k for k in idx if "keypoints" not in entries[k])
        raise ValueError(
            f"{what}[{k}] has no key 'keypoints' (iou_type 'keypoints'; keys seen: {sorted(entries[k])})"
        ) from None
    try:  # the usual file: one numeric array (strings, None, ragged lists make numpy refuse or give objects)
        arr = np.asarray(values)
        if (
            arr.ndim == 2
            and arr.dtype.kind in "fiu"
            and arr.shape[1] % 3 == 0
            and arr.shape[1]
            and np.isfinite(arr).all()
        ):
            return arr.astype(np.float64).reshape(len(values), arr.shape[1] // 3, 3)
    except (ValueError, TypeError):
        pass
    n_values = None  # something is wrong: find the first bad entry
    for j, v in enumerate(values):
        ok = (
            isinstance(v, list | tuple)
            and len(v) % 3 == 0
            and len(v) > 0
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            and all(np.isfinite(v))
        )
        if not ok:
            strings = isinstance(v, list | tuple) and any(isinstance(x, str) for x in v)
            raise ValueError(
                f"{what}[{idx[j]}]['keypoints'] must be a list of 3 K finite numbers [x1, y1, v1, ...], "
                f"got {v!r}{_STRING_HINT if strings else ''}"
            )
        if n_values is None:
            n_values = len(v)
        elif len(v) != n_values:
            raise ValueError(
                f"{what}[{idx[j]}]['keypoints'] has {len(v) // 3} keypoints, {what}[{idx[0]}] "
                f"{n_values // 3}: every pose of a file needs the same number"
            )
    return np.asarray(values, np.float64).reshape(len(values), (n_values or 0) // 3, 3)


def keypoint_extent(kpts: np.ndarray) -> np.ndarray:
    """(N, 4) xywh boxes spanned by all keypoints of each pose (pycocotools' ``loadRes``)."""
    if not kpts.shape[0] or not kpts.shape[1]:
        return np.zeros((kpts.shape[0], 4), np.float64)
    lo, hi = kpts[..., :2].min(1), kpts[..., :2].max(1)
    return np.concatenate([lo, hi - lo], 1)


def locate(values: np.ndarray, known: np.ndarray, what: str, key: str, owner: str) -> np.ndarray:
    """Index of every value in the sorted ``known`` ids; an unknown value raises ValueError."""
    pos = np.searchsorted(known, values)
    pos_c = np.minimum(pos, max(len(known) - 1, 0))
    bad = (pos >= len(known)) | (known[pos_c] != values) if len(known) else np.ones(len(values), bool)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}[{k}]['{key}'] = {int(values[k])} is not in the {owner}")
    return pos_c


def to_rle(segm: Any, height: int | None, width: int | None, what: str) -> dict:
    """One segmentation (polygons, uncompressed or compressed RLE) as compressed RLE, as pycocotools does."""
    from pycocotools import mask as mask_utils

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
    if isinstance(counts, str) and not counts.isascii():
        raise ValueError(f"{what}['segmentation']['counts'] (compressed RLE) must be an ASCII string")
    if isinstance(counts, str | bytes):
        return {"size": list(size), "counts": counts}
    raise ValueError(
        f"{what}['segmentation']['counts'] must be a list or a string, got {type(counts).__name__}"
    )


# ------------------------------------------------------------------------------ typed records
Box = tuple[float, float, float, float]


class _Image(msgspec.Struct, gc=False):
    id: int
    height: int = 0
    width: int = 0


class _Category(msgspec.Struct, gc=False):
    id: int
    name: Any = UNSET


class _Rle(msgspec.Struct, gc=False):
    size: tuple[int, int]
    counts: str | list[int]


#: a segmentation as the strict reader takes it: an RLE, or polygons
_Segmentation = _Rle | list[list[float]]


class _Annotation(msgspec.Struct, gc=False):
    image_id: int
    category_id: int
    id: int | UnsetType = UNSET
    iscrowd: int = 0
    area: float = 0.0
    bbox: Box | UnsetType = UNSET
    segmentation: _Segmentation | UnsetType = UNSET


class _AnnotationBox(msgspec.Struct, gc=False):
    """An annotation for "bbox" alone: its segmentation is skipped by the parser."""

    image_id: int
    category_id: int
    id: int | UnsetType = UNSET
    iscrowd: int = 0
    area: float = 0.0
    bbox: Box | UnsetType = UNSET


class _GtFile(msgspec.Struct):
    images: list[_Image]
    annotations: list[_Annotation]
    categories: list[_Category]


class _GtFileBoxes(msgspec.Struct):
    images: list[_Image]
    annotations: list[_AnnotationBox]
    categories: list[_Category]


class _Result(msgspec.Struct, gc=False):
    image_id: int
    category_id: int
    score: float
    bbox: Box | UnsetType = UNSET
    segmentation: _Segmentation | UnsetType = UNSET


class _ResultBox(msgspec.Struct, gc=False):
    """A result for "bbox" alone: its segmentation is parsed only where it has no box."""

    image_id: int
    category_id: int
    score: float
    bbox: Box | UnsetType = UNSET
    segmentation: msgspec.Raw | UnsetType = UNSET


class _AnnotationPose(msgspec.Struct, gc=False):
    """An annotation for "keypoints" (its segmentation is skipped by the parser)."""

    image_id: int
    category_id: int
    id: int | UnsetType = UNSET
    iscrowd: int = 0
    area: float = 0.0
    bbox: Box | UnsetType = UNSET
    keypoints: list[float] | UnsetType = UNSET
    num_keypoints: int | UnsetType = UNSET


class _GtFilePoses(msgspec.Struct):
    images: list[_Image]
    annotations: list[_AnnotationPose]
    categories: list[_Category]


class _ResultPose(msgspec.Struct, gc=False):
    """A result for "keypoints" (its segmentation is skipped by the parser)."""

    image_id: int
    category_id: int
    score: float
    bbox: Box | UnsetType = UNSET
    keypoints: list[float] | UnsetType = UNSET


def _strict_keypoints(items: Sequence[Any]) -> np.ndarray:
    """(N, K, 3) float64 of the entries' typed ``keypoints`` lists; _Strict on anything unusual.

    A missing list or lists of other lengths send the file to the generic reader, which names
    the entry (msgspec has already refused non-numbers and non-finite values).
    """
    lists = [it.keypoints for it in items]
    if not lists:
        return np.zeros((0, 0, 3), np.float64)
    if any(x is UNSET for x in lists):
        raise _Strict
    try:
        values = np.asarray(lists, np.float64)
    except ValueError:  # lists of different lengths
        raise _Strict from None
    if values.ndim != 2 or not values.shape[1] or values.shape[1] % 3:
        raise _Strict
    return values.reshape(len(lists), values.shape[1] // 3, 3)


_GT_SEGM, _GT_BOXES = msgspec.json.Decoder(_GtFile), msgspec.json.Decoder(_GtFileBoxes)
_GT_POSES, _DT_POSES = msgspec.json.Decoder(_GtFilePoses), msgspec.json.Decoder(list[_ResultPose])
_DT_SEGM, _DT_BOXES = msgspec.json.Decoder(list[_Result]), msgspec.json.Decoder(list[_ResultBox])
_SEGMENTATION = msgspec.json.Decoder(_Segmentation)


class _Strict(Exception):
    """The strict reader does not take this file: read it with the generic one."""


def _read_bytes(source: str | os.PathLike) -> bytes:
    with open(source, "rb") as f:
        return f.read()


def _generic(source: Any, data: bytes | None, kind: type, what: str, fast: bool = False) -> Any:
    """The file's content as Python objects (stdlib ``json``, as ``json.load``), checked to be a ``kind``.

    ``fast``: parse with msgspec's untyped decoder (the same objects, several times faster), and
    with ``json`` only what msgspec refuses (``NaN``, ``Infinity``, which ``json`` reads).
    """
    if data is not None:
        try:
            if not fast:
                raise msgspec.DecodeError
            source = msgspec.json.decode(data)
        except msgspec.DecodeError:
            source = json.loads(data.decode("utf-8"))
    if not isinstance(source, kind):
        raise ValueError(
            f"{what} must be a JSON {kind.__name__} (or a path to one), got {type(source).__name__}"
        )
    return source


def _ints(items: Sequence[Any], name: str) -> np.ndarray:
    return np.fromiter(map(attrgetter(name), items), np.int64, len(items))


def _floats(items: Sequence[Any], name: str) -> np.ndarray:
    return np.fromiter(map(attrgetter(name), items), np.float64, len(items))


def _strict_boxes(items: Sequence[Any]) -> np.ndarray:
    """(N, 4) boxes of records that all have one (TypeError otherwise)."""
    flat = itertools.chain.from_iterable(map(attrgetter("bbox"), items))
    return np.fromiter(flat, np.float64, 4 * len(items)).reshape(len(items), 4)


def _boxes_ok(boxes: np.ndarray) -> bool:
    return bool(np.isfinite(boxes).all() and (boxes[:, 2:] >= 0).all())


def _strict_rles(
    segms: list[Any], heights: np.ndarray, widths: np.ndarray, what: str, index: np.ndarray
) -> list[dict]:
    """Typed segmentations as compressed RLE dicts; _Strict where the generic reader must speak.

    Compressed RLEs (the bulk of result files) are taken as they are, their sizes checked
    against the images' as arrays; polygons and uncompressed RLEs go through :func:`to_rle`.
    """
    out: list[dict] = []
    try:
        for k, s in enumerate(segms):
            if type(s) is _Rle and type(s.counts) is str:
                if not s.counts.isascii():
                    raise _Strict
                out.append({"size": list(s.size), "counts": s.counts})
            elif type(s) is _Rle:
                h, w = int(heights[k]), int(widths[k])
                obj = {"size": list(s.size), "counts": s.counts}
                out.append(to_rle(obj, h or None, w or None, f"{what}[{int(index[k])}]"))
            elif isinstance(s, list):
                h, w = int(heights[k]), int(widths[k])
                out.append(to_rle(s, h or None, w or None, f"{what}[{int(index[k])}]"))
            else:  # no segmentation
                raise _Strict
    except ValueError:  # the generic reader names the entry, in its own order
        raise _Strict from None
    if out:
        sizes = np.fromiter(itertools.chain.from_iterable(r["size"] for r in out), np.int64, 2 * len(out))
        sizes = sizes.reshape(-1, 2)
        known = (heights > 0) & (widths > 0)
        if (sizes < 0).any() or (known & ((sizes[:, 0] != heights) | (sizes[:, 1] != widths))).any():
            raise _Strict
    return out


# ------------------------------------------------------------------------------ ground truth
@dataclass
class GtArrays:
    """A COCO annotation file as columns; annotations in image order (images by id, file order inside).

    ``img`` is each annotation's image position in ``image_ids``, ``label`` its category's
    position in ``category_ids``; ``area`` is the file's (0 where none); ``boxes`` float64
    xywh (with "bbox"); ``rles`` compressed RLE dicts (with "segm"; ``counts`` a str as the file
    gives it, bytes where polygons or uncompressed RLEs were encoded); ``index`` the annotation's
    position in the file; ``counts`` the annotations per image; ``image_file_order[k]`` the
    position in the file's ``images`` of the k-th image of ``image_ids``.
    """

    iou_type: tuple[str, ...]
    image_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    category_ids: np.ndarray
    category_names: list[str]
    img: np.ndarray
    label: np.ndarray
    category: np.ndarray
    crowd: np.ndarray
    area: np.ndarray
    ann_id: np.ndarray
    boxes: np.ndarray | None
    rles: list[dict] | None
    index: np.ndarray
    counts: np.ndarray
    image_file_order: np.ndarray | None = None
    keypoints: np.ndarray | None = None  # (G, K, 3) float64 with "keypoints"
    num_keypoints: np.ndarray | None = None  # (G,) int64: the file's, else the labelled keypoints

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        return list(zip(self.heights.tolist(), self.widths.tolist(), strict=True))


def read_gt_arrays(source: str | os.PathLike | dict, iou_type: IouTypes = "bbox") -> GtArrays:
    """Read a COCO annotation file (a path, or its content as a dict) into :class:`GtArrays`.

    "bbox" needs every annotation's ``bbox``, "segm" its ``segmentation`` (polygons, or
    uncompressed or compressed RLE). Bad content raises ValueError naming the entry; an empty
    ``annotations`` list gives a :class:`CocoInputWarning` (no class has ground truth).
    """
    types = iou_types(iou_type)
    prefix = _prefix(source)
    arrays = None
    if isinstance(source, str | os.PathLike):
        data = _read_bytes(source)
        try:
            if "keypoints" in types:
                if "segm" in types:  # no typed reader for both: the generic one
                    raise _Strict
                poses = _GT_POSES.decode(data)
                kpts = _strict_keypoints(poses.annotations)
                given = np.array(
                    [-1 if a.num_keypoints is UNSET else a.num_keypoints for a in poses.annotations], np.int64
                ).reshape(-1)
                num = np.where(given >= 0, given, (kpts[..., 2] > 0).sum(1)) if len(given) else given
                pose_arrays = _gt_strict(poses, (*types, "bbox") if "bbox" not in types else types)
                pose_arrays.iou_type = types
                pose_arrays.keypoints = np.ascontiguousarray(kpts[pose_arrays.index])
                pose_arrays.num_keypoints = np.ascontiguousarray(num[pose_arrays.index])
                arrays = pose_arrays  # only once every check has passed
            else:
                file = _GT_SEGM.decode(data) if "segm" in types else _GT_BOXES.decode(data)
                arrays = _gt_strict(file, types)
        except (msgspec.DecodeError, _Strict, OverflowError, TypeError):
            source = _generic(None, data, dict, "the COCO ground truth", fast="keypoints" in types)
    if arrays is None:
        arrays = _gt_generic(_generic(source, None, dict, "the COCO ground truth"), types)
    if not len(arrays.label):
        _warn(
            f"{prefix}the ground truth's 'annotations' is empty: no class has ground truth, so every AP "
            "and AR will be -1"
        )
    return arrays


def _gt_strict(file: _GtFile | _GtFileBoxes | _GtFilePoses, types: tuple[str, ...]) -> GtArrays:
    """Columns of a typed file; any failed check raises _Strict (the generic reader names it)."""
    images, anns, cats = file.images, file.annotations, file.categories
    img_ids, heights, widths = _ints(images, "id"), _ints(images, "height"), _ints(images, "width")
    cat_ids = _ints(cats, "id")
    ann_img, ann_cat = _ints(anns, "image_id"), _ints(anns, "category_id")
    ids = [a.id for a in anns]
    has_id = np.fromiter((i is not UNSET for i in ids), bool, len(ids))
    ann_ids = np.fromiter((0 if i is UNSET else i for i in ids), np.int64, len(ids))
    crowd, area = _ints(anns, "iscrowd"), _floats(anns, "area")
    boxes = _strict_boxes(anns) if "bbox" in types else None  # TypeError where one has none
    img_order, cat_order = np.argsort(img_ids, kind="stable"), np.argsort(cat_ids, kind="stable")
    sorted_imgs, sorted_cats = img_ids[img_order], cat_ids[cat_order]
    img_pos, cat_pos = np.searchsorted(sorted_imgs, ann_img), np.searchsorted(sorted_cats, ann_cat)
    if (
        _repeats(img_ids)
        or _repeats(cat_ids)
        or _repeats(ann_ids[has_id])
        or ((crowd != 0) & (crowd != 1)).any()
        or not (np.isfinite(area) & (area >= 0)).all()
        or not _found(img_pos, sorted_imgs, ann_img)
        or not _found(cat_pos, sorted_cats, ann_cat)
        or (boxes is not None and not _boxes_ok(boxes))
    ):
        raise _Strict
    rles: list[dict] | None = None
    if "segm" in types:
        h_of, w_of = heights[img_order][img_pos], widths[img_order][img_pos]
        segms = [getattr(a, "segmentation", UNSET) for a in anns]
        rles = _strict_rles(segms, h_of, w_of, "annotations", np.arange(len(anns)))
    names = [str(cat_ids[k] if cats[k].name is UNSET else cats[k].name) for k in cat_order.tolist()]
    return _gt_assemble(
        types, img_order, sorted_imgs, heights, widths, sorted_cats, names, img_pos, cat_pos, ann_cat,
        ann_ids, crowd, area, boxes, [], rles,
    )  # fmt: skip


def _repeats(ids: np.ndarray) -> bool:
    return bool(ids.size and (np.diff(np.sort(ids)) == 0).any())


def _found(pos: np.ndarray, known: np.ndarray, values: np.ndarray) -> bool:
    if not values.size:
        return True
    return bool(
        known.size and (pos < known.size).all() and (known[np.minimum(pos, known.size - 1)] == values).all()
    )


def _gt_generic(data: dict, types: tuple[str, ...]) -> GtArrays:
    """Columns of loaded JSON, every check in order, the first failure a ValueError naming the entry."""
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
    img_pos = locate(ann_img, sorted_imgs, "annotations", "image_id", "GT 'images'")
    cat_pos = locate(ann_cat, sorted_cats, "annotations", "category_id", "GT 'categories'")
    # keypoints: pycocotools reads every GT's box (the rule of GTs without labelled keypoints)
    boxes = _boxes(anns, "annotations") if "bbox" in types or "keypoints" in types else None
    kpts = num_kpts = None
    if "keypoints" in types:
        kpts = keypoint_rows(anns, "annotations")
        labelled = (kpts[..., 2] > 0).sum(1).astype(np.int64)
        num_kpts = _column(anns, "num_keypoints", "annotations", np.int64, required=False, default=-1)
        num_kpts = np.where(num_kpts >= 0, num_kpts, labelled)
    segms: list[Any] = []
    if "segm" in types:
        try:
            segms = [a["segmentation"] for a in anns]
        except KeyError:
            k = next(i for i, a in enumerate(anns) if "segmentation" not in a)
            raise ValueError(f"annotations[{k}] has no key 'segmentation' (iou_type 'segm')") from None
    arrays = _gt_assemble(
        types, img_order, sorted_imgs, heights, widths, sorted_cats, names, img_pos, cat_pos, ann_cat,
        ann_ids, crowd, area, boxes, segms,
    )  # fmt: skip
    if kpts is not None and num_kpts is not None:
        arrays.keypoints = np.ascontiguousarray(kpts[arrays.index])
        arrays.num_keypoints = np.ascontiguousarray(num_kpts[arrays.index])
    return arrays


def _gt_assemble(
    types: tuple[str, ...],
    img_order: np.ndarray,
    sorted_imgs: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    sorted_cats: np.ndarray,
    names: list[str],
    img_pos: np.ndarray,
    cat_pos: np.ndarray,
    ann_cat: np.ndarray,
    ann_ids: np.ndarray,
    crowd: np.ndarray,
    area: np.ndarray,
    boxes: np.ndarray | None,
    segms: list[Any],
    file_rles: list[dict] | None = None,
) -> GtArrays:
    """Image-ordered columns of checked fields; segmentations to compressed RLE (checked here)."""
    order = np.argsort(img_pos, kind="stable")  # file order within an image, as pycocotools
    h_sorted, w_sorted = heights[img_order], widths[img_order]
    img_sorted = np.ascontiguousarray(img_pos[order])
    rles: list[dict] | None = None
    if file_rles is not None:
        rles = [file_rles[k] for k in order.tolist()]
    elif "segm" in types:
        rles = []
        for k, i in zip(order.tolist(), img_sorted.tolist(), strict=True):
            h, w = int(h_sorted[i]), int(w_sorted[i])
            rles.append(to_rle(segms[k], h or None, w or None, f"annotations[{k}]"))
    return GtArrays(
        iou_type=types,
        image_ids=sorted_imgs,
        heights=h_sorted,
        widths=w_sorted,
        category_ids=sorted_cats,
        category_names=names,
        img=img_sorted,
        label=np.ascontiguousarray(cat_pos[order]),
        category=np.ascontiguousarray(ann_cat[order]),
        crowd=np.ascontiguousarray(crowd[order]),
        area=np.ascontiguousarray(area[order]),
        ann_id=np.ascontiguousarray(ann_ids[order]),
        boxes=None if boxes is None else np.ascontiguousarray(boxes[order]),
        rles=rles,
        index=order,
        counts=np.bincount(img_pos, minlength=len(sorted_imgs)),
        image_file_order=np.asarray(img_order, np.int64),
    )


# ------------------------------------------------------------------------------ detections
@dataclass
class DtArrays:
    """A COCO results file as columns, in image order (the GT's images, file order inside).

    ``img`` / ``label``: positions in the GT's ``image_ids`` / ``category_ids``; ``boxes``
    (N, 4) float64 xywh: the result's ``bbox``, else its mask's bounding box; ``area``: the box's
    area where the result has a ``bbox``, else the mask's pixel count (pycocotools' ``loadRes``);
    ``rles``: compressed RLE dicts (with "segm"; ``counts`` as in :class:`GtArrays`) and
    ``strings`` the same as one :class:`~objdet.ops.rle_cpu.RleStrings` (their masks' areas and
    boxes already read: pycocotools' ``area`` and ``toBbox``, whatever ``bbox`` a result gives;
    made from ``rles`` by the reader, not kept in step if ``rles`` is changed later);
    ``index``: position in the file; ``counts``: results per GT image; ``skipped``: file
    positions of the results left out by ``skip_unknown_categories`` (their ``category_id`` is
    not in the GT), in file order, and ``skipped_category`` their ``category_id``.
    """

    iou_type: tuple[str, ...]
    img: np.ndarray
    label: np.ndarray
    category: np.ndarray
    score: np.ndarray
    boxes: np.ndarray
    area: np.ndarray
    rles: list[dict] | None
    index: np.ndarray
    counts: np.ndarray
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    skipped_category: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    keypoints: np.ndarray | None = None  # (N, K, 3) float64 with "keypoints"
    strings: RleStrings | None = None


def read_dt_arrays(
    source: str | os.PathLike | list,
    gt: GtArrays,
    iou_type: IouTypes | None = None,
    skip_unknown_categories: bool = False,
) -> DtArrays:
    """Read a COCO results file (a path, or the loaded list) into :class:`DtArrays` against ``gt``.

    Every result needs ``image_id`` and ``category_id`` of ``gt`` and a finite ``score``; a
    ``bbox`` (or a ``segmentation`` to take it from); with "segm" a ``segmentation``.
    ``iou_type`` defaults to ``gt.iou_type``. Bad content raises ValueError naming the entry.
    A ``category_id`` not in ``gt`` raises :class:`UnknownCategoryError`; with
    ``skip_unknown_categories=True`` such results are checked like the others, then left out
    (as pycocotools ignores them) with a :class:`CocoInputWarning` giving their number and
    ids, and listed in ``skipped``. An empty results list gives a :class:`CocoInputWarning`.
    """
    types = gt.iou_type if iou_type is None else iou_types(iou_type)
    prefix = _prefix(source)
    arrays = None
    if isinstance(source, str | os.PathLike):
        data = _read_bytes(source)
        try:
            if "keypoints" in types:
                if "segm" in types:  # no typed reader for both: the generic one
                    raise _Strict
                poses = _DT_POSES.decode(data)
                kpts = _strict_keypoints(poses)
                pose_results = _dt_strict(poses, gt, types, skip_unknown_categories, kpts)
                pose_results.keypoints = np.ascontiguousarray(kpts[pose_results.index])
                arrays = pose_results  # only once every check has passed
            else:
                results = _DT_SEGM.decode(data) if "segm" in types else _DT_BOXES.decode(data)
                arrays = _dt_strict(results, gt, types, skip_unknown_categories)
        except (msgspec.DecodeError, _Strict, OverflowError):
            source = _generic(None, data, list, "the COCO results", fast="keypoints" in types)
    if arrays is None:
        results_list = _generic(source, None, list, "the COCO results")
        arrays = _dt_generic(results_list, gt, types, skip_unknown_categories)
    if not len(arrays.score) and not len(arrays.skipped):
        _warn(
            f"{prefix}the results list is empty: no detections, so every class with ground truth gets "
            "AP and AR 0"
        )
    if len(arrays.skipped):
        dropped = np.unique(arrays.skipped_category)  # sorted
        _warn(
            f"{prefix}skipped {len(arrays.skipped)} of {len(arrays.skipped) + len(arrays.score)} results "
            f"whose 'category_id' is not in the GT 'categories': ids {_ids_text(dropped)}"
        )
    return arrays


def _known(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Which values are in the sorted ``known`` ids (a bool mask)."""
    if not known.size:
        return np.zeros(values.size, bool)
    pos = np.minimum(np.searchsorted(known, values), known.size - 1)
    return known[pos] == values


def _unknown_categories(cat: np.ndarray, known: np.ndarray) -> UnknownCategoryError:
    bad = np.flatnonzero(~known)
    k = int(bad[0])
    ids = np.unique(cat[bad])
    return UnknownCategoryError(
        f"results[{k}]['category_id'] = {int(cat[k])} is not in the GT 'categories' ({len(bad)} of "
        f"{len(cat)} results have such a category_id: ids {_ids_text(ids)})"
    )


def _dt_strict(
    results: list[_Result] | list[_ResultBox] | list[_ResultPose],
    gt: GtArrays,
    types: tuple[str, ...],
    skip: bool = False,
    kpts: np.ndarray | None = None,
) -> DtArrays:
    """Columns of typed results; any failed check raises _Strict (the generic reader names it).

    ``kpts``: the results' keypoints; a result without a box then takes the box they span.
    """
    n = len(results)
    img, cat, score = _ints(results, "image_id"), _ints(results, "category_id"), _floats(results, "score")
    img_pos, cat_pos = np.searchsorted(gt.image_ids, img), np.searchsorted(gt.category_ids, cat)
    known_cat = _known(cat, gt.category_ids)
    if not (np.isfinite(score).all() and _found(img_pos, gt.image_ids, img) and (skip or known_cat.all())):
        raise _Strict
    try:
        boxes = _strict_boxes(results)
        has_box = np.ones(n, bool)
    except TypeError:  # some results have no box
        has_box = np.fromiter((r.bbox is not UNSET for r in results), bool, n)
        boxes = np.zeros((n, 4), np.float64)
        boxes[has_box] = _strict_boxes([results[k] for k in np.flatnonzero(has_box).tolist()])
    if not _boxes_ok(boxes):
        raise _Strict
    if kpts is not None:  # pycocotools' loadRes: the keypoints' box
        boxes[~has_box] = keypoint_extent(kpts[~has_box])
        has_box[:] = True
    need = np.arange(n) if "segm" in types else np.flatnonzero(~has_box)
    idx, pos = need.tolist(), img_pos[need]
    segms = [results[k].segmentation for k in idx]
    if "segm" not in types:  # raw JSON of the few results without a box
        segms = [s if isinstance(s, UnsetType) else _SEGMENTATION.decode(s) for s in segms]
    rles = dict(zip(idx, _strict_rles(segms, gt.heights[pos], gt.widths[pos], "results", need), strict=True))
    return _dt_assemble(types, gt, img_pos, cat_pos, cat, score, boxes, has_box, rles, known_cat)


def _dt_generic(results: list, gt: GtArrays, types: tuple[str, ...], skip: bool = False) -> DtArrays:
    """Columns of loaded JSON, every check in order, the first failure a ValueError naming the entry."""
    img = _column(results, "image_id", "results", np.int64)
    cat = _column(results, "category_id", "results", np.int64)
    score = _column(results, "score", "results", np.float64)
    if (~np.isfinite(score)).any():
        k = int(np.flatnonzero(~np.isfinite(score))[0])
        raise ValueError(f"results[{k}]['score'] must be a finite number, got {score[k]}")
    img_pos = locate(img, gt.image_ids, "results", "image_id", "GT 'images'")
    known_cat = _known(cat, gt.category_ids)
    if not skip and not known_cat.all():
        raise _unknown_categories(cat, known_cat)
    cat_pos = np.minimum(np.searchsorted(gt.category_ids, cat), max(len(gt.category_ids) - 1, 0))
    if "segm" in types:
        missing = [k for k, r in enumerate(results) if "segmentation" not in r]
        if missing:
            raise ValueError(f"results[{missing[0]}] has no key 'segmentation' (iou_type 'segm')")
    # boxes where given (an empty list counts as none, as in pycocotools), else the mask's box
    has_box = np.array([r.get("bbox", []) != [] for r in results], dtype=bool)
    boxes = np.zeros((len(results), 4), dtype=np.float64)
    boxes[has_box] = _boxes(results, "results", np.flatnonzero(has_box))
    kpts = None
    if "keypoints" in types:  # a result without a box takes its keypoints' (pycocotools' loadRes)
        kpts = keypoint_rows(results, "results")
        no_box = ~has_box
        boxes[no_box] = keypoint_extent(kpts[no_box])
        has_box[:] = True  # every result has a box now; its area: the box's, as in loadRes
    need = range(len(results)) if "segm" in types else np.flatnonzero(~has_box).tolist()
    rles = {}
    for k in need:  # polygons and uncompressed RLE to compressed RLE (checks them)
        if "segmentation" not in results[k]:
            raise ValueError(f"results[{k}] has no key 'bbox' (keys seen: {sorted(results[k])})")
        rles[k] = _dt_rle(results[k]["segmentation"], k, img_pos, gt)
    arrays = _dt_assemble(types, gt, img_pos, cat_pos, cat, score, boxes, has_box, rles, known_cat)
    if kpts is not None:
        arrays.keypoints = np.ascontiguousarray(kpts[arrays.index])
    return arrays


def _dt_rle(segm: Any, k: int, img_pos: np.ndarray, gt: GtArrays) -> dict:
    i = int(img_pos[k])
    h, w = int(gt.heights[i]), int(gt.widths[i])
    return to_rle(segm, h or None, w or None, f"results[{k}]")


def _dt_assemble(
    types: tuple[str, ...],
    gt: GtArrays,
    img_pos: np.ndarray,
    cat_pos: np.ndarray,
    cat: np.ndarray,
    score: np.ndarray,
    boxes: np.ndarray,
    has_box: np.ndarray,
    rles: dict[int, dict],
    keep: np.ndarray,
) -> DtArrays:
    """Boxes and areas of the results without a box; the kept results' columns in image order."""
    rows = np.flatnonzero(keep)  # file positions of the kept results
    order = rows[np.argsort(img_pos[rows], kind="stable")]
    skipped = np.flatnonzero(~keep)
    boxes, has_box = boxes[order], has_box[order]
    area = boxes[:, 2] * boxes[:, 3]
    no_box = np.flatnonzero(~has_box)
    kept_rles, strings = None, None
    if "segm" in types:  # every result has an RLE: read once, in image order, for all
        from objdet.ops.rle_cpu import rle_strings

        kept_rles = [rles[k] for k in order.tolist()]
        strings = rle_strings(kept_rles)
        mask_area, mask_box = strings.area_bbox()
        area[no_box], boxes[no_box] = mask_area[no_box], mask_box[no_box]
    elif len(no_box):
        area[no_box], boxes[no_box] = rle_area_bbox([rles[k] for k in order[no_box].tolist()])
    return DtArrays(
        iou_type=types,
        img=np.ascontiguousarray(img_pos[order]),
        label=np.ascontiguousarray(cat_pos[order]),
        category=np.ascontiguousarray(cat[order]),
        score=np.ascontiguousarray(score[order]),
        boxes=boxes,
        area=area,
        rles=kept_rles,
        strings=strings,
        index=order,
        counts=np.bincount(img_pos[rows], minlength=len(gt.image_ids)),
        skipped=skipped,
        skipped_category=cat[skipped],
    )
