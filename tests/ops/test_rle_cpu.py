"""Compressed-RLE kernels (objdet.ops.rle_cpu) against pycocotools' area, toBbox and iou, value for value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from objdet.ops.rle_cpu import rle_string_valid, rle_strings


def _mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Noise, a rectangle (often crossing columns), a full or an empty mask."""
    kind = int(rng.integers(0, 5))
    out = np.zeros((h, w), np.uint8)
    if kind == 0:
        out[:] = rng.random((h, w)) < rng.uniform(0, 1)
    elif kind in (1, 2):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        out[y0 : y0 + int(rng.integers(0, h + 1)), x0 : x0 + int(rng.integers(0, w + 1))] = 1
    elif kind == 3:
        out[:] = 1
    return out


def _encode(masks: list[np.ndarray]) -> list[dict]:
    return [mask_utils.encode(np.asfortranarray(m)) for m in masks]


def _pycocotools_pair_iou(dt: list[dict], gt: list[dict], crowd: np.ndarray, pd: np.ndarray, pg: np.ndarray):
    return np.array(
        [mask_utils.iou([dt[d]], [gt[g]], [int(crowd[g])])[0, 0] for d, g in zip(pd, pg, strict=True)]
    )


def _pairs_iou(
    dt: list[dict], gt: list[dict], crowd: np.ndarray, pd: np.ndarray, pg: np.ndarray
) -> np.ndarray:
    return rle_strings(dt).pair_iou(rle_strings(gt), crowd, pd, pg)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 40), w=st.integers(1, 40), n=st.integers(0, 12))
def test_area_bbox_and_iou_equal_pycocotools(seed: int, h: int, w: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    dt, gt = _encode([_mask(rng, h, w) for _ in range(n)]), _encode([_mask(rng, h, w) for _ in range(n)])
    strings = rle_strings(dt)
    assert strings.first_invalid() == -1
    if n:
        area, box = strings.area_bbox()
        np.testing.assert_array_equal(area, mask_utils.area(dt).astype(np.float64))
        np.testing.assert_array_equal(box, mask_utils.toBbox(dt))
    crowd = rng.random(n) < 0.3
    pd, pg = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    got = _pairs_iou(dt, gt, crowd, pd, pg)
    want = _pycocotools_pair_iou(dt, gt, crowd, pd, pg) if n else np.zeros(0)
    np.testing.assert_array_equal(got, want)  # bit for bit
    if n:  # and the block form pycocotools' callers use
        block = mask_utils.iou(dt, gt, crowd.astype(int).tolist())
        np.testing.assert_array_equal(got.reshape(n, n), block)


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    data=st.data(),
)
def test_runs_with_empty_ones_equal_pycocotools(h: int, w: int, data: st.DataObject) -> None:
    """Uncompressed RLEs with runs of length 0 anywhere (frPyObjects keeps them): the box rule
    of pycocotools' rleToBbox skips empty runs of 1s, a mask of only empty ones wraps its size."""

    def counts() -> list[int]:
        runs = data.draw(st.lists(st.integers(0, h * w), min_size=1, max_size=12))
        out, left = [], h * w
        for r in runs:
            out.append(min(r, left))
            left -= out[-1]
        out.append(left)  # they add up to h * w
        return out

    rles = [mask_utils.frPyObjects({"size": [h, w], "counts": counts()}, h, w) for _ in range(6)]
    area, box = rle_strings(rles).area_bbox()
    np.testing.assert_array_equal(area, mask_utils.area(rles).astype(np.float64))
    np.testing.assert_array_equal(box, mask_utils.toBbox(rles))
    crowd = np.array([False, True, False, True, False, False])
    pd, pg = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    got = _pairs_iou(rles, rles[::-1], crowd, pd, pg)
    np.testing.assert_array_equal(
        got.reshape(6, 6), mask_utils.iou(rles, rles[::-1], crowd.astype(int).tolist())
    )


def test_strings_and_sizes_pycocotools_reads_as_such() -> None:
    """str counts, a string of runs that cross columns, an image of one row or column, other sizes."""
    rng = np.random.default_rng(1)
    masks = [_mask(rng, 1, 30), _mask(rng, 30, 1), np.ones((7, 5), np.uint8), np.zeros((3, 3), np.uint8)]
    rles = _encode(masks)
    as_str = [{"size": r["size"], "counts": r["counts"].decode()} for r in rles]
    area, box = rle_strings(as_str).area_bbox()
    np.testing.assert_array_equal(area, [m.sum() for m in masks])
    np.testing.assert_array_equal(box, mask_utils.toBbox(rles))
    # different image sizes: pycocotools gives -1 where the boxes overlap
    other = _encode([np.ones((7, 6), np.uint8)])
    got = _pairs_iou(rles[2:3], other, np.zeros(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64))
    assert got.tolist() == mask_utils.iou(rles[2:3], other, [0]).reshape(-1).tolist() == [-1.0]


def test_invalid_strings_are_found() -> None:
    good = mask_utils.encode(np.asfortranarray(np.eye(4, dtype=np.uint8)))
    rles = [good, {"size": [4, 4], "counts": b"d0"}, {"size": [4, 4], "counts": b"!!!!"}]
    assert rle_strings(rles).first_invalid() == 1
    assert rle_strings([good, good]).first_invalid() == -1
    for r in rles[1:]:
        assert not rle_string_valid(np.frombuffer(r["counts"], np.uint8), 16)
        with pytest.raises(ValueError, match="Invalid RLE"):
            mask_utils.decode(r)


def test_invalid_strings_read_in_full_give_pycocotools_area_and_box() -> None:
    """Runs adding up to more than h * w: pycocotools' area and toBbox still read them."""
    rles = [{"size": [4, 4], "counts": c} for c in (b"d0", b"33307", b"0d0", b"1d02")]
    strings = rle_strings(rles)
    area, box = strings.area_bbox()
    assert strings.first_invalid() == 0
    np.testing.assert_array_equal(area, mask_utils.area(rles).astype(np.float64))
    np.testing.assert_array_equal(box, mask_utils.toBbox(rles))
    assert area.tolist() == [0.0, 6.0, 20.0, 20.0]


def test_no_rles() -> None:
    strings = rle_strings([])
    area, box = strings.area_bbox()
    assert len(strings) == 0 and strings.first_invalid() == -1 and area.shape == (0,) and box.shape == (0, 4)
