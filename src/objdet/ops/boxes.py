"""Box formats and areas.

Formats: ``xyxy`` (x1, y1, x2, y2), ``xywh`` (x, y, width, height) and ``cxcywh``
(centre x, centre y, width, height). Every function takes (..., 4) tensors and works
on any device and floating dtype.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")


def _check_format(fmt: str, name: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"`{name}` must be one of {BOX_FORMATS}, got {fmt!r}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes (..., 4) from ``in_fmt`` to ``out_fmt``.

    Integer boxes are converted to float32 first (a centre is not an integer).

    Example:
        >>> import torch
        >>> box_convert(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "xyxy", "xywh")
        tensor([[10., 20., 20., 40.]])
    """
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"`boxes` must have shape (..., 4), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    else:
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xyxy":
        return torch.stack((x1, y1, x2, y2), -1)
    if in_fmt == "cxcywh" and out_fmt == "xywh":
        return torch.stack((x1, y1, c, d), -1)
    if in_fmt == "xywh" and out_fmt == "cxcywh":
        return torch.stack((a + c / 2, b + d / 2, c, d), -1)
    w, h = x2 - x1, y2 - y1
    if out_fmt == "xywh":
        return torch.stack((x1, y1, w, h), -1)
    return torch.stack((x1 + w / 2, y1 + h / 2, w, h), -1)


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of boxes (..., 4) -> (...). Degenerate boxes (x2 <= x1) have area 0."""
    _check_format(fmt, "fmt")
    if fmt != "xyxy":
        boxes = box_convert(boxes, fmt, "xyxy")
    elif not boxes.is_floating_point():
        boxes = boxes.float()
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return w * h


# --------------------------------------------------------------------------------------
# The box IoU family: IoU, GIoU, DIoU, CIoU; pairwise (N,4)x(M,4) -> (N,M) and
# elementwise (N,4)x(N,4) -> (N,).
#
# Conventions shared by every function below:
# - widths and heights are clamped at 0, so a box with x2 <= x1 or y2 <= y1 has area 0
#   (as ``box_area``);
# - a ratio whose denominator is 0 is 0: IoU of two zero-area boxes is 0, and the GIoU,
#   DIoU and CIoU penalty terms vanish where the enclosing box is empty; nothing is NaN
#   unless an input coordinate is;
# - float16/bfloat16 are computed in float32 and returned in the input dtype; integer
#   boxes give float32; two different floating dtypes give their promoted type.
# --------------------------------------------------------------------------------------

_Kind = Literal["iou", "giou", "diou", "ciou"]

# Elements of the (rows, M) working tensors per chunk of the pairwise kernels. On CPU a
# chunk should stay in cache while a dozen elementwise passes run over it, and it grows
# with the thread count so that every thread gets work. Each pass is a parallel region,
# and on a busy machine every region waits for a descheduled thread, so chunks are not
# made smaller than needed. On 2 cores (4000 x 5000 boxes), 2^17 to 2^20 per thread took
# 31 to 37 ms when idle; with one competing busy process 2^19 took 73 ms, 2^17 178 ms.
# On CUDA chunks only bound temporary memory (each pass is a kernel launch, so fewer,
# bigger chunks are better): 2^24 float32 elements are 64 MiB per temporary.
_CPU_CHUNK_ELEMENTS_PER_THREAD = 1 << 19
_CUDA_CHUNK_ELEMENTS = 1 << 24


class _Prepared(NamedTuple):
    """Per-box quantities, computed once in O(N) and broadcast in the pairwise kernels."""

    x1: Tensor
    y1: Tensor
    x2: Tensor
    y2: Tensor
    area: Tensor
    cx: Tensor
    cy: Tensor
    angle: Tensor  # atan(w / h) in [0, pi/2]; pi/2 for h = 0 < w, 0 for w = h = 0

    def rows(self, start: int, stop: int) -> _Prepared:
        return _Prepared(*(t[start:stop] for t in self))


def _result_dtypes(boxes1: Tensor, boxes2: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(dtype to compute in, dtype to return)."""
    out = torch.promote_types(boxes1.dtype, boxes2.dtype)
    if not out.is_floating_point:
        out = torch.float32
    compute = torch.float32 if out in (torch.float16, torch.bfloat16) else out
    return compute, out


def _validate(boxes1: Tensor, boxes2: Tensor, fmt: str, elementwise: bool) -> None:
    _check_format(fmt, "fmt")
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(boxes, Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(boxes).__name__}")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"`{name}` must have shape (N, 4), got {tuple(boxes.shape)}")
    if boxes1.device != boxes2.device:
        raise ValueError(
            f"`boxes1` and `boxes2` must be on the same device, got {boxes1.device} and {boxes2.device}"
        )
    if elementwise and boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(
            "`boxes1` and `boxes2` must have the same number of boxes for an elementwise IoU, "
            f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        )


def _prepare(boxes: Tensor, fmt: str, dtype: torch.dtype, column: bool) -> _Prepared:
    """xyxy coordinates and per-box terms in ``dtype``; as (N, 1) columns if ``column``."""
    boxes = boxes.to(dtype)
    if fmt != "xyxy":
        boxes = box_convert(boxes, fmt, "xyxy")
    x1, y1, x2, y2 = boxes.unbind(-1)
    w = (x2 - x1).clamp(min=0)
    h = (y2 - y1).clamp(min=0)
    # Not atan2(w, h): its gradient at (0, 0) is NaN.
    tall = h > 0
    angle = torch.where(tall, torch.atan(w / torch.where(tall, h, 1.0)), (w > 0).to(w.dtype) * (math.pi / 2))
    terms = (x1, y1, x2, y2, w * h, (x1 + x2) / 2, (y1 + y2) / 2, angle)
    # The (M,) side runs along the rows of every (rows, M) pass: make it contiguous, as a
    # strided view into the (M, 4) tensor is slower to broadcast.
    return _Prepared(*(t.unsqueeze(1) if column else t.contiguous() for t in terms))


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den == 0 (den >= 0 here). Gradients stay finite there too."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, 1.0), 0.0)


def _kernel(a: _Prepared, b: _Prepared, kind: _Kind) -> Tensor:
    """The IoU family on broadcasting per-box terms: (r, 1) with (M,) or (N,) with (N,)."""
    inter_w = (torch.minimum(a.x2, b.x2) - torch.maximum(a.x1, b.x1)).clamp(min=0)
    inter_h = (torch.minimum(a.y2, b.y2) - torch.maximum(a.y1, b.y1)).clamp(min=0)
    inter = inter_w * inter_h
    union = a.area + b.area - inter
    iou = _safe_ratio(inter, union)
    if kind == "iou":
        return iou
    # Smallest box enclosing both.
    enc_w = (torch.maximum(a.x2, b.x2) - torch.minimum(a.x1, b.x1)).clamp(min=0)
    enc_h = (torch.maximum(a.y2, b.y2) - torch.minimum(a.y1, b.y1)).clamp(min=0)
    if kind == "giou":
        enc_area = enc_w * enc_h
        return iou - _safe_ratio(enc_area - union, enc_area)
    centre_dist2 = (a.cx - b.cx) ** 2 + (a.cy - b.cy) ** 2
    diag2 = enc_w**2 + enc_h**2
    diou = iou - _safe_ratio(centre_dist2, diag2)
    if kind == "diou":
        return diou
    v = (4 / math.pi**2) * (b.angle - a.angle) ** 2
    # alpha is a weight, not a function to differentiate (CIoU paper, torchvision).
    alpha = _safe_ratio(v, 1 - iou + v).detach()
    return diou - alpha * v


def _chunk_rows(n_cols: int, device: torch.device) -> int:
    if device.type == "cpu":
        elements = _CPU_CHUNK_ELEMENTS_PER_THREAD * max(2, torch.get_num_threads())
    else:
        elements = _CUDA_CHUNK_ELEMENTS
    return max(1, elements // max(1, n_cols))


def _pairwise_iou_no_grad(a: _Prepared, b: _Prepared, out: Tensor) -> None:
    """Pairwise IoU written into ``out`` (N, M), row chunk by row chunk, in place.

    Same arithmetic, in the same order, as ``_kernel(..., "iou")`` and the plain
    broadcasting formula, so float32 results are the same; but instead of a fresh (N, M)
    tensor per operation, three (rows, M) buffers allocated once are updated in place for
    every chunk (``out=`` and in-place ops): the working set stays in cache, no memory is
    allocated (and page-faulted in) per chunk, and the output is written once.
    Not differentiable; used only when no gradient is needed.
    """
    n, m = out.shape
    step = min(n, _chunk_rows(m, out.device))
    # inter <= union, so where union == 0 inter is 0 and the clamp turns 0/0 into 0 (what
    # _safe_ratio does, without its extra passes; they differ only for subnormal unions).
    tiny = torch.finfo(out.dtype).tiny
    width, height, tmp = (out.new_empty((step, m)) for _ in range(3))
    for start in range(0, n, step):
        r = a.rows(start, start + step)
        k = r.x1.shape[0]  # step, or fewer in the last chunk
        w, h, t = width[:k], height[:k], tmp[:k]
        torch.minimum(r.x2, b.x2, out=w).sub_(torch.maximum(r.x1, b.x1, out=t)).clamp_(min=0)
        torch.minimum(r.y2, b.y2, out=h).sub_(torch.maximum(r.y1, b.y1, out=t)).clamp_(min=0)
        inter = w.mul_(h)
        union = torch.add(r.area, b.area, out=h).sub_(inter).clamp_(min=tiny)
        torch.div(inter, union, out=out[start : start + k])


def _pairwise(boxes1: Tensor, boxes2: Tensor, fmt: str, kind: _Kind) -> Tensor:
    _validate(boxes1, boxes2, fmt, elementwise=False)
    compute, out_dtype = _result_dtypes(boxes1, boxes2)
    a = _prepare(boxes1, fmt, compute, column=True)
    b = _prepare(boxes2, fmt, compute, column=False)
    n, m = boxes1.shape[0], boxes2.shape[0]
    needs_grad = torch.is_grad_enabled() and (boxes1.requires_grad or boxes2.requires_grad)
    if needs_grad:
        step = _chunk_rows(m, boxes1.device)
        parts = [_kernel(a.rows(s, s + step), b, kind) for s in range(0, n, step)]
        out = torch.cat(parts) if parts else a.x1.new_zeros((0, m))
        return out.to(out_dtype)
    out = torch.empty((n, m), dtype=compute, device=boxes1.device)
    if n and m:
        if kind == "iou":
            _pairwise_iou_no_grad(a, b, out)
        else:
            step = _chunk_rows(m, boxes1.device)
            for s in range(0, n, step):
                out[s : s + step] = _kernel(a.rows(s, s + step), b, kind)
    return out.to(out_dtype)


def _elementwise(boxes1: Tensor, boxes2: Tensor, fmt: str, kind: _Kind) -> Tensor:
    _validate(boxes1, boxes2, fmt, elementwise=True)
    compute, out_dtype = _result_dtypes(boxes1, boxes2)
    a = _prepare(boxes1, fmt, compute, column=False)
    b = _prepare(boxes2, fmt, compute, column=False)
    return _kernel(a, b, kind).to(out_dtype)


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Intersection over union of every pair: (N, 4) x (M, 4) -> (N, M).

    IoU = area(a ∩ b) / area(a ∪ b), in [0, 1]; 0 for two zero-area boxes. Without autograd
    this runs a row-chunked in-place kernel (several times faster than the broadcasting
    formula on CPU, same values); with inputs that require grad it is differentiable.

    Args:
        boxes1: (N, 4) boxes in ``fmt``.
        boxes2: (M, 4) boxes in ``fmt``.
        fmt: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0]])
        >>> box_iou(a, b)
        tensor([[0.1429, 0.0000]])
    """
    return _pairwise(boxes1, boxes2, fmt, "iou")


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Generalized IoU of every pair: (N, 4) x (M, 4) -> (N, M).

    GIoU = IoU - (area(C) - area(a ∪ b)) / area(C), with C the smallest box enclosing both;
    in [-1, 1]. The penalty is 0 where C has zero area.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0]])
        >>> generalized_box_iou(a, b)
        tensor([[-0.0794, -0.8000]])
    """
    return _pairwise(boxes1, boxes2, fmt, "giou")


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Distance IoU of every pair: (N, 4) x (M, 4) -> (N, M).

    DIoU = IoU - d² / c², with d the distance between the box centres and c the diagonal of
    the smallest enclosing box; in [-1, 1]. The penalty is 0 where c = 0. Unlike torchvision
    no epsilon is added to c², so values are exact.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 4.0, 5.0, 5.0]])
        >>> distance_box_iou(a, b)
        tensor([[ 0.0317, -0.4900]])
    """
    return _pairwise(boxes1, boxes2, fmt, "diou")


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Complete IoU of every pair: (N, 4) x (M, 4) -> (N, M).

    CIoU = DIoU - α·v, with v = 4/π² · (atan(w₂/h₂) - atan(w₁/h₁))² the aspect-ratio term
    and α = v / (1 - IoU + v) (0 where that is 0/0). α is detached from autograd, as in the
    CIoU paper and torchvision; no epsilons are added.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 1.0]])
        >>> complete_box_iou(a, b)
        tensor([[0.0317, 0.2530]])
    """
    return _pairwise(boxes1, boxes2, fmt, "ciou")


def elementwise_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """IoU of paired boxes: (N, 4) x (N, 4) -> (N,); the diagonal of ``box_iou``.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
        >>> elementwise_box_iou(a, b)
        tensor([0.1429, 1.0000])
    """
    return _elementwise(boxes1, boxes2, fmt, "iou")


def elementwise_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """GIoU of paired boxes: (N, 4) x (N, 4) -> (N,); the diagonal of ``generalized_box_iou``.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
        >>> elementwise_generalized_box_iou(a, b)
        tensor([-0.0794, -0.3333])
    """
    return _elementwise(boxes1, boxes2, fmt, "giou")


def elementwise_distance_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """DIoU of paired boxes: (N, 4) x (N, 4) -> (N,); the diagonal of ``distance_box_iou``.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
        >>> elementwise_distance_box_iou(a, b)
        tensor([ 0.0317, -0.4000])
    """
    return _elementwise(boxes1, boxes2, fmt, "diou")


def elementwise_complete_box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """CIoU of paired boxes: (N, 4) x (N, 4) -> (N,); the diagonal of ``complete_box_iou``.

    A common regression loss is ``1 - elementwise_complete_box_iou(pred, target)``.

    Example:
        >>> import torch
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
        >>> b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 1.0]])
        >>> elementwise_complete_box_iou(a, b)
        tensor([0.0317, 0.2530])
    """
    return _elementwise(boxes1, boxes2, fmt, "ciou")
