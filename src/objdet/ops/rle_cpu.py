"""Compressed COCO RLE strings read without dense masks: checks, areas, boxes and pair IoU (numba; numpy in).

The strings are read as pycocotools' ``rleFrString`` reads them (5 bits per character from
'0', 0x20 continues a number, 0x10 in a number's last character makes it negative, from the
third run on each number is a difference to the run two before, runs kept as C uints), one
string at a time into a buffer of its runs: no masks, and no runs of other strings, are
stored, so a file's 300k results cost their strings and nothing more.

* :func:`rle_string_valid` / :meth:`RleStrings.first_invalid`: pycocotools refuses to decode
  (``Invalid RLE mask representation``) an RLE whose runs add up to more than height * width;
  its ``area``, ``toBbox`` and ``iou`` read such strings without a word, so files are checked
  here first.
* :func:`strings_area_bbox` and :func:`strings_pair_iou` give what pycocotools' ``area``,
  ``toBbox`` and ``iou`` give, value for value, many strings per call (:class:`RleStrings`
  holds them one after the other) instead of a Python call per (image, class) block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

import numpy as np
from numba import njit

__all__ = [
    "RleStrings",
    "rle_string_valid",
    "rle_strings",
    "strings_area_bbox",
    "strings_pair_iou",
]

_U32 = 0xFFFFFFFF


@njit(cache=True, nogil=True)
def _decode(s: np.ndarray, p: int, end: int, runs: np.ndarray) -> tuple[int, bool]:
    """The runs of the string ``s[p:end]`` (it also ends at a NUL byte) into ``runs``: (count, read in full).

    Not read in full: the string ends inside a number, or a number is longer than 12
    characters; the runs before it are written. Each run takes one character at least, so
    ``end - p`` places are enough.
    """
    m = 0
    while p < end and s[p] != 0:
        x = 0
        k = 0
        more = True
        while more:
            if p >= end or s[p] == 0:
                return m, False
            c = np.int64(s[p])
            if c > 127:  # a C char is signed
                c -= 256
            c -= 48
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if k > 12:
                return m, False
            if not more and (c & 0x10) != 0:
                x |= np.int64(-1) << (5 * k)
        if m > 2:
            x += runs[m - 2]
        runs[m] = x & _U32  # stored as a C uint
        m += 1
    return m, True


def _longest(offsets: np.ndarray) -> int:
    return int(np.diff(offsets).max()) + 1 if offsets.shape[0] > 1 else 1


@njit(cache=True, nogil=True)
def _decodes(runs: np.ndarray, m: int, read_in_full: bool, n_pixels: int) -> bool:
    """pycocotools' decoder rule on the ``m`` runs :func:`_decode` read: in full, and no more
    pixels than the image has."""
    return read_in_full and runs[:m].sum() <= n_pixels


@njit(cache=True, nogil=True)
def rle_string_valid(counts: np.ndarray, n_pixels: int) -> bool:
    """Whether pycocotools decodes the compressed RLE ``counts`` (uint8) of an image of ``n_pixels``.

    Example:
        >>> import numpy as np
        >>> [rle_string_valid(np.frombuffer(s, np.uint8), 16) for s in (b"`0", b"!!!!", b"d0")]
        [True, False, False]
    """
    runs = np.empty(counts.shape[0] + 1, np.int64)
    m, ok = _decode(counts, 0, counts.shape[0], runs)
    return _decodes(runs, m, ok, n_pixels)


@njit(cache=True, nogil=True)
def _area(runs: np.ndarray, m: int) -> int:
    a = 0
    for j in range(1, m, 2):
        a += runs[j]
    return a & _U32


@njit(cache=True, nogil=True)
def strings_area_bbox(
    counts: np.ndarray, offsets: np.ndarray, heights: np.ndarray, widths: np.ndarray, longest: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(n,) float64 areas and (n, 4) float64 xywh boxes: pycocotools' ``area`` and ``toBbox``;
    and the first string :func:`rle_string_valid` refuses (-1: none), from the same pass.

    The area is the sum of the odd runs (a C uint, as ``rleArea``). The box is ``rleToBbox``'s as
    pycocotools 2.0.11 computes it (older releases differ where runs are empty): an even number
    of runs is read (a last run of 0s is not); each non-empty run of 1s spans from the column
    of its first pixel to that of its last, and the rows of those two pixels, or every row
    when it crosses a column; the sizes are C uints (a mask whose runs of 1s are all empty gets
    1 - w and 1 - h, wrapped). Strings as in :class:`RleStrings`, ``longest`` > the
    longest string's length; a string that is not read in full counts up to where it stops.
    """
    n = heights.shape[0]
    area = np.zeros(n, np.float64)
    box = np.zeros((n, 4), np.float64)
    runs = np.empty(longest, np.int64)
    bad = -1
    for i in range(n):
        m, ok = _decode(counts, offsets[i], offsets[i + 1], runs)
        if bad < 0 and not _decodes(runs, m, ok, heights[i] * widths[i]):
            bad = i
        area[i] = _area(runs, m)
        h, w = heights[i], widths[i]
        m = m // 2 * 2
        if m == 0 or h == 0:
            continue
        xs, ys, xe, ye, cc = w, h, 0, 0, 0
        for j in range(m):
            first = cc  # the run's first pixel (column-major index)
            cc = (cc + runs[j]) & _U32
            if j % 2 == 0 or runs[j] == 0:  # a run of 0s, or an empty run of 1s
                continue
            last = (cc - 1) & _U32
            y0 = first % h
            x0 = (first - y0) // h
            y1 = last % h
            x1 = (last - y1) // h
            xs = min(xs, x0)
            xe = max(xe, x1)
            if x0 < x1:  # the run crosses a column: every row
                ys = 0
                ye = h - 1
            else:
                ys = min(ys, y0)
                ye = max(ye, y1)
        box[i, 0] = xs
        box[i, 1] = ys
        box[i, 2] = (xe - xs + 1) & _U32
        box[i, 3] = (ye - ys + 1) & _U32
    return area, box, bad


@njit(cache=True, nogil=True)
def _walk(da: np.ndarray, ka: int, db: np.ndarray, kb: int) -> tuple[int, int]:
    """Intersection and union of two RLEs of one image size: ``rleIou``'s walk over both run lists."""
    ca, cb = da[0], db[0]
    va, vb = False, False
    a, b = 1, 1
    inter, union, ct = 0, 0, 1
    while ct > 0:
        c = min(ca, cb)
        if va or vb:
            union += c
            if va and vb:
                inter += c
        ca -= c
        if ca == 0 and a < ka:
            ca = da[a]
            a += 1
            va = not va
        cb -= c
        if cb == 0 and b < kb:
            cb = db[b]
            b += 1
            vb = not vb
        ct = ca + cb
    return inter & _U32, union & _U32


@njit(cache=True, nogil=True)
def strings_pair_iou(
    det_counts: np.ndarray,
    det_offsets: np.ndarray,
    det_hw: np.ndarray,
    det_box: np.ndarray,
    gt_counts: np.ndarray,
    gt_offsets: np.ndarray,
    gt_hw: np.ndarray,
    gt_box: np.ndarray,
    gt_crowd: np.ndarray,
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    longest: int,
) -> np.ndarray:
    """pycocotools' mask ``iou`` of each (detection, GT) pair: (P,) float64.

    ``*_hw`` (n, 2) image sizes; ``*_box`` the :func:`strings_area_bbox` boxes: as in
    ``rleIou``, pairs whose boxes do not overlap are 0 without a walk, and pairs of different
    image sizes are -1. A crowd GT's IoU divides by the detection's area; 0 where nothing
    overlaps. The strings must be valid (:meth:`RleStrings.first_invalid`); ``longest`` > the
    longest string's length. A detection's runs are decoded once for consecutive pairs.
    """
    n = pair_det.shape[0]
    out = np.zeros(n, np.float64)
    d_runs = np.empty(longest, np.int64)
    g_runs = np.empty(longest, np.int64)
    last, kd = -1, 0
    for q in range(n):
        d, g = pair_det[q], pair_gt[q]
        # bbIou's test: the boxes overlap with positive width and height
        w = min(det_box[d, 0] + det_box[d, 2], gt_box[g, 0] + gt_box[g, 2]) - max(det_box[d, 0], gt_box[g, 0])
        if w <= 0:
            continue
        h = min(det_box[d, 1] + det_box[d, 3], gt_box[g, 1] + gt_box[g, 3]) - max(det_box[d, 1], gt_box[g, 1])
        if h <= 0:
            continue
        if det_hw[d, 0] != gt_hw[g, 0] or det_hw[d, 1] != gt_hw[g, 1]:
            out[q] = -1.0
            continue
        if d != last:
            kd, _ = _decode(det_counts, det_offsets[d], det_offsets[d + 1], d_runs)
            last = d
        kg, _ = _decode(gt_counts, gt_offsets[g], gt_offsets[g + 1], g_runs)
        inter, union = _walk(d_runs, kd, g_runs, kg)
        if inter == 0:
            continue
        out[q] = inter / (_area(d_runs, kd) if gt_crowd[g] else union)
    return out


@dataclass
class RleStrings:
    """n compressed RLE strings one after the other: string i is ``counts[offsets[i]:offsets[i + 1]]``
    (uint8), of an image ``heights[i]`` x ``widths[i]``. Their areas, boxes and validity come
    from one pass, made on first use and kept."""

    counts: np.ndarray
    offsets: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    _read: tuple[np.ndarray, np.ndarray, int] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return self.heights.shape[0]

    @property
    def sizes(self) -> np.ndarray:
        """(n, 2) int64 [height, width]."""
        return np.stack([self.heights, self.widths], 1)

    @property
    def longest(self) -> int:
        """Room for the runs of any one string (one more than the longest string's length)."""
        return _longest(self.offsets)

    def _pass(self) -> tuple[np.ndarray, np.ndarray, int]:
        if self._read is None:
            self._read = strings_area_bbox(self.counts, self.offsets, self.heights, self.widths, self.longest)
        return self._read

    def first_invalid(self) -> int:
        """The first string pycocotools refuses to decode (:func:`rle_string_valid`), -1 if none."""
        return int(self._pass()[2])

    def area_bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """(n,) float64 areas and (n, 4) float64 xywh boxes: pycocotools' ``mask.area``, ``mask.toBbox``."""
        area, box, _ = self._pass()
        return area, box

    def pair_iou(
        self, gt: RleStrings, gt_crowd: np.ndarray, pair_det: np.ndarray, pair_gt: np.ndarray
    ) -> np.ndarray:
        """pycocotools' mask IoU of the pairs (these strings the detections, ``gt`` the GTs):
        :func:`strings_pair_iou` with both sides' mask boxes and sizes."""
        return strings_pair_iou(
            self.counts, self.offsets, self.sizes, self.area_bbox()[1],
            gt.counts, gt.offsets, gt.sizes, gt.area_bbox()[1],
            np.asarray(gt_crowd, np.bool_), pair_det, pair_gt, max(self.longest, gt.longest),
        )  # fmt: skip


def rle_strings(rles: Sequence[dict]) -> RleStrings:
    """Compressed RLE dicts (``{"size": [h, w], "counts": bytes or str}``) as :class:`RleStrings`.

    Example:
        >>> r = rle_strings([{"size": [4, 4], "counts": b"529"}, {"size": [4, 4], "counts": "`0"}])
        >>> area, box = r.area_bbox()
        >>> area.tolist(), box.tolist()
        ([2.0, 0.0], [[1.0, 1.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    """
    strings = list(map(itemgetter("counts"), rles))
    try:
        joined = b"".join(strings)
    except TypeError:
        try:  # str counts, as files give them: one encode (ASCII: as many bytes as characters)
            joined = "".join(strings).encode("ascii")
        except TypeError:  # str and bytes
            strings = [c if isinstance(c, bytes) else c.encode("ascii") for c in strings]
            joined = b"".join(strings)
    offsets = np.zeros(len(strings) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, strings), np.int64, len(strings)), out=offsets[1:])
    sizes = np.fromiter(chain.from_iterable(map(itemgetter("size"), rles)), np.int64, 2 * len(strings))
    sizes = sizes.reshape(-1, 2)
    counts = np.frombuffer(joined, np.uint8) if joined else np.zeros(0, np.uint8)
    return RleStrings(counts, offsets, np.ascontiguousarray(sizes[:, 0]), np.ascontiguousarray(sizes[:, 1]))
