"""Box IoU family: values against a plain float64 reference, properties, dtypes, edge cases."""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import objdet.ops.boxes as boxes_module
from objdet.ops import (
    box_convert,
    box_iou,
    complete_box_iou,
    distance_box_iou,
    elementwise_box_iou,
    elementwise_complete_box_iou,
    elementwise_distance_box_iou,
    elementwise_generalized_box_iou,
    generalized_box_iou,
)

Fn = Callable[..., torch.Tensor]
KINDS = ("iou", "giou", "diou", "ciou")
PAIRWISE: dict[str, Fn] = {
    "iou": box_iou,
    "giou": generalized_box_iou,
    "diou": distance_box_iou,
    "ciou": complete_box_iou,
}
ELEMENTWISE: dict[str, Fn] = {
    "iou": elementwise_box_iou,
    "giou": elementwise_generalized_box_iou,
    "diou": elementwise_distance_box_iou,
    "ciou": elementwise_complete_box_iou,
}
ALL_FNS = [*PAIRWISE.values(), *ELEMENTWISE.values()]


# ---------------------------------------------------------------------------------------
# Reference: one pair at a time, Python floats (float64), straight from the definitions.
# ---------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _aspect_angle(w: float, h: float) -> float:
    if h > 0:
        return math.atan(w / h)
    return math.pi / 2 if w > 0 else 0.0


def ref_pair(a: list[float], b: list[float], kind: str) -> float:
    """IoU/GIoU/DIoU/CIoU of two xyxy boxes; widths clamped at 0, x/0 := 0."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    aw, ah = max(ax2 - ax1, 0.0), max(ay2 - ay1, 0.0)
    bw, bh = max(bx2 - bx1, 0.0), max(by2 - by1, 0.0)
    iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
    ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    iou = _ratio(inter, union)
    if kind == "iou":
        return iou
    cw = max(max(ax2, bx2) - min(ax1, bx1), 0.0)
    ch = max(max(ay2, by2) - min(ay1, by1), 0.0)
    if kind == "giou":
        return iou - _ratio(cw * ch - union, cw * ch)
    dx = (ax1 + ax2) / 2 - (bx1 + bx2) / 2
    dy = (ay1 + ay2) / 2 - (by1 + by2) / 2
    diou = iou - _ratio(dx * dx + dy * dy, cw * cw + ch * ch)
    if kind == "diou":
        return diou
    v = 4 / math.pi**2 * (_aspect_angle(bw, bh) - _aspect_angle(aw, ah)) ** 2
    return diou - _ratio(v, 1 - iou + v) * v


def ref_pairwise(b1: torch.Tensor, b2: torch.Tensor, kind: str) -> torch.Tensor:
    rows1, rows2 = b1.double().tolist(), b2.double().tolist()
    out = [[ref_pair(a, b, kind) for b in rows2] for a in rows1]
    return torch.tensor(out, dtype=torch.float64).reshape(len(rows1), len(rows2))


def ref_elementwise(b1: torch.Tensor, b2: torch.Tensor, kind: str) -> torch.Tensor:
    pairs = zip(b1.double().tolist(), b2.double().tolist(), strict=True)
    return torch.tensor([ref_pair(a, b, kind) for a, b in pairs], dtype=torch.float64)


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------

coord = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
# Sizes are 0 (degenerate) or well above underflow, so relative comparisons are meaningful.
size = st.one_of(st.just(0.0), st.floats(1e-3, 1e3))
box_xywh = st.tuples(coord, coord, size, size)
# Quarter-pixel grid: float32 represents these coordinates, widths and areas exactly.
grid_coord = st.integers(-4000, 4000).map(lambda i: i / 4)
grid_size = st.integers(0, 1600).map(lambda i: i / 4)
grid_box_xywh = st.tuples(grid_coord, grid_coord, grid_size, grid_size)
nondegenerate_xywh = st.tuples(coord, coord, st.floats(1e-2, 1e3), st.floats(1e-2, 1e3))


def xyxy(rows: list[tuple[float, float, float, float]], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    xywh = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)
    return box_convert(xywh, "xywh", "xyxy").to(dtype)


boxes_list = st.lists(box_xywh, min_size=0, max_size=6)
boxes_list_1 = st.lists(box_xywh, min_size=1, max_size=6)
grid_boxes_list_1 = st.lists(grid_box_xywh, min_size=1, max_size=6)


# ---------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------


def test_hand_computed_values() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0], [0.0, 0.0, 4.0, 1.0]])
    # pair 0: inter 1, union 7, enclosing [0,0,3,3]: area 9, diagonal² 18, centre distance² 2.
    # pair 1: disjoint, enclosing [0,0,5,5]: area 25, diagonal² 50, centre distance² 24.5.
    # pair 2: inter 2, union 6, enclosing [0,0,4,2]: diagonal² 20, centre distance² 1.25.
    v = 4 / math.pi**2 * (math.atan(4.0) - math.atan(1.0)) ** 2
    expected = {
        "iou": [1 / 7, 0.0, 1 / 3],
        "giou": [1 / 7 - 2 / 9, -20 / 25, 1 / 3 - 2 / 8],
        "diou": [1 / 7 - 2 / 18, -24.5 / 50, 1 / 3 - 1.25 / 20],
        "ciou": [1 / 7 - 2 / 18, -24.5 / 50, 1 / 3 - 1.25 / 20 - v * v / (1 - 1 / 3 + v)],
    }
    for kind in KINDS:
        want = torch.tensor([expected[kind]], dtype=torch.float64)
        torch.testing.assert_close(PAIRWISE[kind](a.double(), b.double()), want, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(PAIRWISE[kind](a, b), want.float(), rtol=1e-6, atol=1e-7)
        got = ELEMENTWISE[kind](a.expand(3, 4).double(), b.double())
        torch.testing.assert_close(got, want[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
@given(rows1=boxes_list, rows2=boxes_list)
def test_pairwise_matches_reference(kind: str, rows1: list, rows2: list) -> None:
    b1, b2 = xyxy(rows1), xyxy(rows2)
    got = PAIRWISE[kind](b1, b2)
    assert got.shape == (len(rows1), len(rows2)) and got.dtype == torch.float64
    torch.testing.assert_close(got, ref_pairwise(b1, b2, kind), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@given(pairs=st.lists(st.tuples(box_xywh, box_xywh), max_size=8))
def test_elementwise_matches_reference(kind: str, pairs: list) -> None:
    b1, b2 = xyxy([p[0] for p in pairs]), xyxy([p[1] for p in pairs])
    got = ELEMENTWISE[kind](b1, b2)
    assert got.shape == (len(pairs),) and got.dtype == torch.float64
    torch.testing.assert_close(got, ref_elementwise(b1, b2, kind), rtol=1e-6, atol=1e-12)


@given(rows1=grid_boxes_list_1, rows2=grid_boxes_list_1)
def test_float32_matches_float64_reference(rows1: list, rows2: list) -> None:
    b1, b2 = xyxy(rows1, torch.float32), xyxy(rows2, torch.float32)
    for kind in KINDS:
        got = PAIRWISE[kind](b1, b2)
        assert got.dtype == torch.float32
        # IoU is one rounded division of exact float32 quantities; the others subtract terms.
        rtol, atol = (1e-6, 1e-30) if kind == "iou" else (1e-6, 2e-6)
        torch.testing.assert_close(got.double(), ref_pairwise(b1, b2, kind), rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_many_row_chunks(monkeypatch: pytest.MonkeyPatch, kind: str, requires_grad: bool) -> None:
    # Tiny chunks: 37 rows in chunks of 3 rows (80 elements / 23 columns), the last one partial.
    monkeypatch.setattr(boxes_module, "_CPU_CHUNK_ELEMENTS_PER_THREAD", 40)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert boxes_module._chunk_rows(23, torch.device("cpu")) == 3
    g = torch.Generator().manual_seed(1)
    xy1, xy2 = torch.rand(37, 2, generator=g) * 50, torch.rand(23, 2, generator=g) * 50
    b1 = torch.cat([xy1, xy1 + torch.rand(37, 2, generator=g) * 30], 1).double()
    b2 = torch.cat([xy2, xy2 + torch.rand(23, 2, generator=g) * 30], 1).double()
    b1.requires_grad_(requires_grad)
    got = PAIRWISE[kind](b1, b2)
    assert got.requires_grad == requires_grad
    torch.testing.assert_close(got.detach(), ref_pairwise(b1.detach(), b2, kind), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------


@given(rows1=boxes_list, rows2=boxes_list)
def test_symmetry_and_ranges(rows1: list, rows2: list) -> None:
    b1, b2 = xyxy(rows1), xyxy(rows2)
    values = {}
    for kind in KINDS:
        values[kind] = PAIRWISE[kind](b1, b2)
        torch.testing.assert_close(values[kind], PAIRWISE[kind](b2, b1).T, rtol=1e-12, atol=1e-12)
        assert torch.isfinite(values[kind]).all()
    eps = 1e-12
    assert ((values["iou"] >= 0) & (values["iou"] <= 1)).all()
    assert ((values["giou"] >= -1) & (values["giou"] <= values["iou"] + eps)).all()
    assert ((values["diou"] >= -1 - eps) & (values["diou"] <= values["iou"] + eps)).all()
    # α·v <= v/(1+v) <= 1/2 where IoU = 0, so CIoU >= -1.5.
    assert ((values["ciou"] >= -1.5) & (values["ciou"] <= values["diou"] + eps)).all()


@given(rows=st.lists(nondegenerate_xywh, min_size=1, max_size=6))
def test_self_iou_is_one(rows: list) -> None:
    b = xyxy(rows)
    for kind in KINDS:
        torch.testing.assert_close(PAIRWISE[kind](b, b).diagonal(), torch.ones(len(rows), dtype=b.dtype))
        torch.testing.assert_close(ELEMENTWISE[kind](b, b), torch.ones(len(rows), dtype=b.dtype))


# On the grid, translating is exact; with arbitrary floats it can merge two distinct points
# into one and flip a 0/0 penalty, which is rounding, not a lack of invariance.
@given(rows1=grid_boxes_list_1, rows2=grid_boxes_list_1, dx=grid_coord, dy=grid_coord)
def test_translation_invariance(rows1: list, rows2: list, dx: float, dy: float) -> None:
    b1, b2 = xyxy(rows1), xyxy(rows2)
    shift = torch.tensor([dx, dy, dx, dy], dtype=torch.float64)
    for kind in KINDS:
        torch.testing.assert_close(
            PAIRWISE[kind](b1 + shift, b2 + shift), PAIRWISE[kind](b1, b2), rtol=1e-9, atol=1e-12
        )


@given(rows1=boxes_list_1, rows2=st.lists(box_xywh, min_size=1, max_size=6))
def test_elementwise_is_diagonal_of_pairwise(rows1: list, rows2: list) -> None:
    k = min(len(rows1), len(rows2))
    b1, b2 = xyxy(rows1), xyxy(rows2)
    for kind in KINDS:
        diag = PAIRWISE[kind](b1, b2).diagonal()
        torch.testing.assert_close(ELEMENTWISE[kind](b1[:k], b2[:k]), diag, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
@given(rows1=boxes_list, rows2=boxes_list)
def test_format_invariance(fmt: str, rows1: list, rows2: list) -> None:
    b1, b2 = xyxy(rows1), xyxy(rows2)
    c1, c2 = box_convert(b1, "xyxy", fmt), box_convert(b2, "xyxy", fmt)
    k = min(len(rows1), len(rows2))
    for kind in KINDS:
        # The conversion round trip rounds, so compare to the reference with an absolute margin.
        torch.testing.assert_close(
            PAIRWISE[kind](c1, c2, fmt=fmt), ref_pairwise(b1, b2, kind), rtol=1e-6, atol=1e-9
        )
        torch.testing.assert_close(
            ELEMENTWISE[kind](c1[:k], c2[:k], fmt=fmt),
            ref_elementwise(b1[:k], b2[:k], kind),
            rtol=1e-6,
            atol=1e-9,
        )


# ---------------------------------------------------------------------------------------
# Dtypes, empty and degenerate inputs, errors, autograd
# ---------------------------------------------------------------------------------------

# Overlapping boxes with integer coordinates, exact in every dtype. Their areas (up to
# 1e6) and enclosing diagonals overflow float16 (max 65504): half inputs must be upcast.
B1 = torch.tensor([[0, 0, 10, 10], [5, 5, 20, 15], [2, 3, 4, 9], [30, 30, 40, 60], [0, 0, 1000, 1000]])
B2 = torch.tensor([[1, 1, 9, 12], [6, 4, 19, 16], [0, 0, 40, 60], [100, 0, 1024, 960]])


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_half_types_keep_dtype(dtype: torch.dtype, atol: float, requires_grad: bool) -> None:
    b1, b2 = B1.to(dtype).requires_grad_(requires_grad), B2.to(dtype)
    for kind in KINDS:
        got = PAIRWISE[kind](b1, b2).detach()
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), ref_pairwise(B1, B2, kind), rtol=0, atol=atol)
        got = ELEMENTWISE[kind](b1[:4], b2).detach()
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), ref_elementwise(B1[:4], B2, kind), rtol=0, atol=atol)


def test_integer_and_mixed_dtypes() -> None:
    for fn in ALL_FNS:
        assert fn(B1[:4], B2).dtype == torch.float32
        assert fn(B1[:4].double(), B2.float()).dtype == torch.float64
        assert fn(B1[:4].half(), B2).dtype == torch.float16
    torch.testing.assert_close(box_iou(B1, B2).double(), ref_pairwise(B1, B2, "iou"), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64])
def test_empty_inputs(dtype: torch.dtype) -> None:
    out_dtype = torch.float32 if dtype == torch.int64 else dtype
    some, none = B1.to(dtype), torch.zeros(0, 4, dtype=dtype)
    for fn in PAIRWISE.values():
        for b1, b2, shape in ((none, some, (0, 5)), (some, none, (5, 0)), (none, none, (0, 0))):
            out = fn(b1, b2)
            assert out.shape == shape and out.dtype == out_dtype, (fn.__name__, shape)
    for fn in ELEMENTWISE.values():
        out = fn(none, none)
        assert out.shape == (0,) and out.dtype == out_dtype
    out = box_iou(none.float().requires_grad_(), some.float())
    assert out.shape == (0, 5)


def test_degenerate_boxes_give_zero_iou_and_finite_values() -> None:
    boxes = torch.tensor(
        [
            [1.0, 1.0, 1.0, 1.0],  # a point
            [1.0, 1.0, 1.0, 1.0],  # the same point
            [0.0, 2.0, 5.0, 2.0],  # a horizontal segment
            [3.0, 0.0, 3.0, 4.0],  # a vertical segment crossing it
            [4.0, 4.0, 2.0, 6.0],  # inverted: x2 < x1
            [0.0, 0.0, 4.0, 4.0],  # a proper box containing the point
        ]
    )
    degenerate = boxes[:5]
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for kind in KINDS:
            out = PAIRWISE[kind](boxes.to(dtype), boxes.to(dtype))
            assert torch.isfinite(out).all(), (kind, dtype, out)
            torch.testing.assert_close(out.double(), ref_pairwise(boxes, boxes, kind), rtol=0, atol=1e-2)
            out = ELEMENTWISE[kind](degenerate.to(dtype), degenerate.flip(0).to(dtype))
            assert torch.isfinite(out).all(), (kind, dtype, out)
        assert (box_iou(boxes.to(dtype), degenerate.to(dtype)) == 0).all()
        assert (elementwise_box_iou(degenerate.to(dtype), degenerate.to(dtype)) == 0).all()
    # Two identical points: every penalty term is 0/0 and defined as 0.
    point = boxes[:1]
    for kind in KINDS:
        assert PAIRWISE[kind](point, point).item() == 0.0


@pytest.mark.parametrize("fn", ALL_FNS)
def test_bad_shapes_name_the_argument(fn: Fn) -> None:
    good = torch.zeros(3, 4)
    for bad in (torch.zeros(3, 5), torch.zeros(4), torch.zeros(2, 3, 4)):
        with pytest.raises(ValueError, match="boxes1"):
            fn(bad, good)
        with pytest.raises(ValueError, match="boxes2"):
            fn(good, bad)
    with pytest.raises(ValueError, match="fmt"):
        fn(good, good, fmt="xyzw")
    with pytest.raises(ValueError, match="same device"):
        fn(good, torch.zeros(3, 4, device="meta"))
    with pytest.raises(TypeError, match="boxes1"):
        fn([[0.0, 0.0, 1.0, 1.0]], good)


@pytest.mark.parametrize("fn", list(ELEMENTWISE.values()))
def test_elementwise_length_mismatch(fn: Fn) -> None:
    with pytest.raises(ValueError, match=r"same number of boxes.*\(3, 4\).*\(2, 4\)"):
        fn(torch.zeros(3, 4), torch.zeros(2, 4))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou"])
def test_gradients_match_finite_differences(kind: str) -> None:
    b1 = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.5, 4.0, 3.0]], dtype=torch.float64)
    b2 = torch.tensor([[1.0, 1.0, 3.0, 3.5], [0.2, 0.1, 1.5, 2.5], [5.0, 5.0, 6.0, 8.0]], dtype=torch.float64)
    b1.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: PAIRWISE[kind](x, b2), (b1,))
    assert torch.autograd.gradcheck(lambda x: ELEMENTWISE[kind](x, b2[:2]), (b1,))


def test_gradients_finite_for_degenerate_boxes() -> None:
    b = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 5.0, 2.0]], requires_grad=True)
    for fn in ALL_FNS:
        b.grad = None
        fn(b, b.detach().clone()).sum().backward()
        assert b.grad is not None and torch.isfinite(b.grad).all(), fn.__name__


def test_ciou_alpha_is_detached() -> None:
    # d CIoU = d DIoU - α·dv with α held constant (torchvision, CIoU paper).
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.0, 0.0, 4.0, 1.0]], dtype=torch.float64)
    (g_ciou,) = torch.autograd.grad(elementwise_complete_box_iou(a, b).sum(), a)
    (g_diou,) = torch.autograd.grad(elementwise_distance_box_iou(a, b).sum(), a)
    iou = 1 / 3
    wa, ha = 2.0, 2.0
    v = 4 / math.pi**2 * (math.atan(4.0) - math.atan(wa / ha)) ** 2
    alpha = v / (1 - iou + v)
    # dv/dw_a and dv/dh_a of v = 4/π²(atan(w_b/h_b) - atan(w_a/h_a))².
    diff = math.atan(4.0) - math.atan(wa / ha)
    dv_dw = 4 / math.pi**2 * 2 * diff * -(ha / (wa * wa + ha * ha))
    dv_dh = 4 / math.pi**2 * 2 * diff * (wa / (wa * wa + ha * ha))
    expected = g_diou - alpha * torch.tensor([[-dv_dw, -dv_dh, dv_dw, dv_dh]], dtype=torch.float64)
    torch.testing.assert_close(g_ciou, expected)


def test_docstring_examples() -> None:
    result = doctest.testmod(boxes_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 9 and result.failed == 0


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_matches_reference(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    xy1, xy2 = torch.rand(120, 2, generator=g) * 100, torch.rand(90, 2, generator=g) * 100
    b1 = torch.cat([xy1, xy1 + torch.rand(120, 2, generator=g) * 40], 1)
    b2 = torch.cat([xy2, xy2 + torch.rand(90, 2, generator=g) * 40], 1)
    b1[:5, 2:] = b1[:5, :2]  # some degenerate boxes
    atol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-5)
    c1, c2 = b1.to("cuda", dtype), b2.to("cuda", dtype)
    r1, r2 = c1.double().cpu(), c2.double().cpu()  # the rounded inputs actually used
    for kind in KINDS:
        out = PAIRWISE[kind](c1, c2)
        assert out.device.type == "cuda" and out.dtype == dtype
        torch.testing.assert_close(out.cpu().double(), ref_pairwise(r1, r2, kind), rtol=0, atol=atol)
        out = ELEMENTWISE[kind](c1[:90], c2)
        assert out.device.type == "cuda" and out.dtype == dtype
        torch.testing.assert_close(out.cpu().double(), ref_elementwise(r1[:90], r2, kind), rtol=0, atol=atol)
    assert not torch.isnan(box_iou(c1[:5], c1[:5])).any()
