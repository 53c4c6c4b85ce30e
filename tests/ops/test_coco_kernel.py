"""objdet.ops.coco: sort keys, lane packing and the pycocotools IoU formula."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from objdet.ops.coco import coco_pair_iou, descending_order_key, pack_lanes, unpack_lanes

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    arrays(
        np.float64,
        st.integers(0, 200),
        elements=st.one_of(finite, st.sampled_from([0.0, -0.0, 0.5, -0.5, 1e-300, -1e-300])),
    )
)
def test_descending_key_sorts_like_a_stable_descending_float_sort(x: np.ndarray) -> None:
    ours = torch.sort(descending_order_key(torch.from_numpy(x)), stable=True).indices.numpy()
    np.testing.assert_array_equal(ours, np.argsort(-x, kind="stable"))


@given(st.integers(1, 90), st.integers(0, 50), st.integers(0, 2**31 - 1))
def test_pack_unpack_round_trip(lanes: int, n: int, seed: int) -> None:
    bits = torch.rand(lanes, n, generator=torch.Generator().manual_seed(seed)) < 0.5
    packed = pack_lanes(bits)
    assert packed.dtype == torch.uint8 and packed.shape == (n, (lanes + 7) // 8)
    assert torch.equal(unpack_lanes(packed, lanes), bits)


def _bb_iou_reference(d: list[float], g: list[float], crowd: bool) -> float:
    """pycocotools' bbIou (maskApi.c) written out for one pair."""
    w = min(d[2] + d[0], g[2] + g[0]) - max(d[0], g[0])
    if w <= 0:
        return 0.0
    h = min(d[3] + d[1], g[3] + g[1]) - max(d[1], g[1])
    if h <= 0:
        return 0.0
    i = w * h
    u = d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - i
    return i / u


box = st.tuples(st.floats(-100, 100), st.floats(-100, 100), st.floats(0, 100), st.floats(0, 100)).map(list)


@given(st.lists(st.tuples(box, box, st.booleans()), min_size=1, max_size=30))
def test_pair_iou_is_bit_identical_to_pycocotools_formula(pairs: list) -> None:
    d = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    g = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    crowd = torch.tensor([p[2] for p in pairs])
    ours = coco_pair_iou(d, g, crowd).tolist()
    assert ours == [_bb_iou_reference(*p) for p in pairs]
