"""Object keypoint similarity (OKS), COCO's keypoint IoU, as torch ops on any device.

The rules are pycocotools' ``computeOks`` (see :mod:`objdet.ops.keypoints_cpu`, the compiled
CPU version the metric's CPU engine uses): per keypoint ``e = d**2 / (2 sigma)**2 / (area + eps)
/ 2``, OKS the mean of ``exp(-e)`` over the GT's labelled keypoints (visibility > 0); a GT with
none is compared through its box enlarged by its own size on every side. Sums here run in
torch's order, so values may differ from pycocotools' in the last bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from objdet.ops.keypoints_cpu import COCO_PERSON_SIGMAS

__all__ = ["COCO_PERSON_SIGMAS", "KeypointBatch", "keypoint_extent_area", "keypoint_oks", "pair_keypoint_oks"]

_EPS = float(np.spacing(1))


def _sigmas(sigmas: Tensor | np.ndarray | list[float] | None, k: int, device: torch.device) -> Tensor:
    if sigmas is None:
        if k != COCO_PERSON_SIGMAS.size:
            raise ValueError(
                f"`sigmas` are needed for {k} keypoints (the default is COCO's {COCO_PERSON_SIGMAS.size} "
                "person sigmas)"
            )
        sigmas = COCO_PERSON_SIGMAS
    out = torch.as_tensor(sigmas, dtype=torch.float64, device=device).reshape(-1)
    if out.numel() != k:
        raise ValueError(f"`sigmas` must have one value per keypoint ({k}), got {out.numel()}")
    if not bool(torch.isfinite(out).all()) or bool((out <= 0).any()):
        raise ValueError(f"`sigmas` must be finite and > 0, got {out.tolist()}")
    return out


def pair_keypoint_oks(
    det_keypoints: Tensor,
    gt_keypoints: Tensor,
    gt_area: Tensor,
    sigmas: Tensor,
    gt_xywh: Tensor | None = None,
    gt_has_box: Tensor | None = None,
) -> Tensor:
    """OKS of matched rows: ``det_keypoints[p]`` against ``gt_keypoints[p]``, (P,) float64.

    ``det_keypoints`` (P, K, >= 2), ``gt_keypoints`` (P, K, 3), ``gt_area`` (P,), ``sigmas``
    (K,) float64, ``gt_xywh`` (P, 4) the GT boxes (xywh) for GTs without labelled keypoints
    (OKS 0 for such a GT without a box, or where ``gt_has_box`` is False).
    """
    f64 = torch.float64
    if det_keypoints.shape[0] == 0:
        return torch.zeros(0, dtype=f64, device=det_keypoints.device)
    d = det_keypoints[..., :2].to(f64)
    g = gt_keypoints.to(f64)
    var = (sigmas.to(f64) * 2) ** 2
    denom = (gt_area.to(f64) + _EPS)[:, None]
    visible = g[..., 2] > 0  # (P, K)
    n_visible = visible.sum(1)
    dist2 = ((d - g[..., :2]) ** 2).sum(-1)
    near = torch.exp(-(dist2 / var / denom / 2))
    oks_visible = torch.where(visible, near, 0.0).sum(1) / n_visible.clamp(min=1)
    if gt_xywh is None:
        return torch.where(n_visible > 0, oks_visible, 0.0)
    box = gt_xywh.to(f64)
    lo = box[:, None, :2] - box[:, None, 2:]  # (P, 1, 2): x - w, y - h
    hi = box[:, None, :2] + box[:, None, 2:] * 2
    zero = torch.zeros((), dtype=f64, device=d.device)
    out_of_box = torch.maximum(zero, lo - d) + torch.maximum(zero, d - hi)  # (P, K, 2)
    far = torch.exp(-((out_of_box**2).sum(-1) / var / denom / 2)).mean(1)
    has_box = torch.ones_like(n_visible, dtype=torch.bool) if gt_has_box is None else gt_has_box.bool()
    return torch.where(n_visible > 0, oks_visible, torch.where(has_box, far, 0.0))


def keypoint_oks(
    det_keypoints: Tensor,
    gt_keypoints: Tensor,
    gt_area: Tensor,
    sigmas: Tensor | np.ndarray | list[float] | None = None,
    gt_boxes: Tensor | None = None,
) -> Tensor:
    """Pairwise OKS of N detected and M ground-truth poses, (N, M) float64 on their device.

    Args:
        det_keypoints: (N, K, 2) or (N, K, 3) (x, y[, score]); the third value is not read.
        gt_keypoints: (M, K, 3) (x, y, visibility); keypoints with visibility 0 are unlabelled.
        gt_area: (M,) object areas (COCO's ``area``; OKS scales distances by its square root).
        sigmas: (K,) per-keypoint sigmas; default COCO's 17 person sigmas (K must be 17).
        gt_boxes: (M, 4) xywh GT boxes, used for GTs without labelled keypoints (pycocotools'
            rule: distance to the box enlarged by its size on every side); without boxes such
            GTs have OKS 0.

    Example:
        >>> import torch
        >>> gt = torch.tensor([[[10.0, 10.0, 2.0], [20.0, 20.0, 2.0], [0.0, 0.0, 0.0]]])
        >>> det = gt.clone()
        >>> det[0, 1, 0] += 1.0  # one of the two labelled keypoints is off by one pixel
        >>> oks = keypoint_oks(det, gt, torch.tensor([100.0]), sigmas=[0.5, 0.5, 0.5])
        >>> round(oks.item(), 4)  # (exp(0) + exp(-1 / 1 / 100 / 2)) / 2
        0.9975
    """
    for name, x, last in (("det_keypoints", det_keypoints, (2, 3)), ("gt_keypoints", gt_keypoints, (3,))):
        if x.ndim != 3 or x.shape[2] not in last:
            shapes = " or ".join(f"(N, K, {n})" for n in last)
            raise ValueError(f"`{name}` must have shape {shapes}, got {tuple(x.shape)}")
    n, m, k = det_keypoints.shape[0], gt_keypoints.shape[0], gt_keypoints.shape[1]
    if det_keypoints.shape[1] != k:
        raise ValueError(
            f"`det_keypoints` have {det_keypoints.shape[1]} keypoints per pose, `gt_keypoints` {k}"
        )
    if gt_area.shape != (m,):
        raise ValueError(f"`gt_area` must have shape ({m},), got {tuple(gt_area.shape)}")
    if gt_boxes is not None and gt_boxes.shape != (m, 4):
        raise ValueError(f"`gt_boxes` must have shape ({m}, 4), got {tuple(gt_boxes.shape)}")
    device = det_keypoints.device
    s = _sigmas(sigmas, k, device)
    i = torch.arange(n, device=device).repeat_interleave(m)
    j = torch.arange(m, device=device).repeat(n)
    oks = pair_keypoint_oks(
        det_keypoints[i], gt_keypoints[j], gt_area[j], s, gt_boxes[j] if gt_boxes is not None else None
    )
    return oks.reshape(n, m)


class KeypointBatch:
    """The poses of a batch, prepared for COCO matching: OKS of (detection, GT) pairs on request.

    The OKS counterpart of the masks' ``MaskBatch`` (:mod:`objdet.ops.masks`) for the matching kernels:
    :meth:`pair_iou` (torch, any device) serves :func:`objdet.ops.coco.coco_match`,
    :meth:`pair_iou_np` (compiled, pycocotools' summation order) the CPU engine. Detections and
    GTs are numbered across the batch in input order; crowd GTs need no special rule (OKS has
    none in pycocotools).
    """

    def __init__(
        self,
        det_kpts: Tensor,
        gt_kpts: Tensor,
        gt_area: Tensor,
        sigmas: Tensor,
        gt_xywh: Tensor | None = None,
        gt_has_box: Tensor | None = None,
    ) -> None:
        self.det_kpts = det_kpts.to(torch.float64)
        self.gt_kpts = gt_kpts.to(torch.float64)
        self.gt_area = gt_area.to(torch.float64)
        self.sigmas = sigmas.to(device=det_kpts.device, dtype=torch.float64)
        n_gt = gt_kpts.shape[0]
        self.gt_xywh = (
            gt_xywh.to(torch.float64)
            if gt_xywh is not None
            else torch.zeros(n_gt, 4, dtype=torch.float64, device=gt_kpts.device)
        )
        has_box = gt_has_box if gt_has_box is not None else torch.full((n_gt,), gt_xywh is not None)
        self.gt_has_box = has_box.to(device=gt_kpts.device, dtype=torch.bool)

    def pair_iou(self, det_index: Tensor, gt_index: Tensor, gt_crowd: Tensor | None = None) -> Tensor:
        """OKS of the pairs (P,) of detection and GT indices, (P,) float64 (torch ops)."""
        return pair_keypoint_oks(
            self.det_kpts[det_index],
            self.gt_kpts[gt_index],
            self.gt_area[gt_index],
            self.sigmas,
            self.gt_xywh[gt_index],
            self.gt_has_box[gt_index],
        )

    def pair_iou_np(self, pair_det: np.ndarray, pair_gt: np.ndarray) -> np.ndarray:
        """:meth:`pair_iou` on CPU by the compiled loop (pycocotools' ``computeOks`` to 1e-15)."""
        from objdet.ops.keypoints_cpu import pair_oks

        return pair_oks(
            pair_det,
            pair_gt,
            self.det_kpts.numpy(),
            self.gt_kpts.numpy(),
            self.gt_area.numpy(),
            self.gt_xywh.numpy(),
            self.gt_has_box.numpy(),
            self.sigmas.numpy(),
        )


def keypoint_extent_area(keypoints: Tensor) -> Tensor:
    """(N,) float64 area of the box spanned by all K keypoints of each pose (pycocotools' ``loadRes``).

    Every keypoint counts, whatever its visibility, as pycocotools computes a result's ``area``.
    """
    if keypoints.shape[0] == 0 or keypoints.shape[1] == 0:
        return torch.zeros(keypoints.shape[0], dtype=torch.float64, device=keypoints.device)
    xy = keypoints[..., :2].to(torch.float64)
    size = xy.amax(1) - xy.amin(1)
    return size[:, 0] * size[:, 1]
