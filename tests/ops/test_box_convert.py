import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.ops import box_area, box_convert

coord = st.floats(-1e4, 1e4, allow_nan=False, width=64)
size = st.floats(0, 1e4, allow_nan=False, width=64)


@given(x=coord, y=coord, w=size, h=size)
def test_round_trip_all_formats(x: float, y: float, w: float, h: float) -> None:
    xywh = torch.tensor([[x, y, w, h]], dtype=torch.float64)
    for fmt in ("xyxy", "cxcywh"):
        back = box_convert(box_convert(xywh, "xywh", fmt), fmt, "xywh")
        torch.testing.assert_close(back, xywh, rtol=1e-12, atol=1e-8)
    xyxy = box_convert(xywh, "xywh", "xyxy")
    expected = torch.tensor([w * h], dtype=torch.float64)
    torch.testing.assert_close(box_area(xyxy), expected, rtol=1e-9, atol=1e-6)


def test_known_values() -> None:
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert box_convert(b, "xyxy", "xywh").tolist() == [[10.0, 20.0, 20.0, 40.0]]
    assert box_convert(b, "xyxy", "cxcywh").tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert box_area(torch.tensor([[5.0, 5.0, 4.0, 9.0]])).tolist() == [0.0]


def test_empty_and_int_inputs() -> None:
    assert box_convert(torch.zeros(0, 4), "xyxy", "cxcywh").shape == (0, 4)
    out = box_convert(torch.tensor([[0, 0, 3, 3]]), "xyxy", "cxcywh")
    assert out.dtype == torch.float32 and out.tolist() == [[1.5, 1.5, 3.0, 3.0]]


def test_bad_format_and_shape() -> None:
    with pytest.raises(ValueError, match="in_fmt"):
        box_convert(torch.zeros(1, 4), "xyzz", "xyxy")
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_convert(torch.zeros(1, 5), "xyxy", "xywh")
