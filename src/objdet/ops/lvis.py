"""LVIS federated selection kernels: the per-image detection cap and (image, category) membership.

Pure tensor functions on any device, used by
:class:`~objdet.training.metrics.LVISMeanAveragePrecision` in ``update()``:

* :func:`top_per_image`: the LVIS API keeps at most ``max_det`` (300) detections per image,
  across categories, the highest scored; on equal scores the earlier detection (input order)
  wins, as Python's stable ``sorted(..., reverse=True)`` in ``LVISResults`` does;
* :func:`pairs_in`: whether each (image, category) pair is in a set of pairs, e.g. the
  categories with GT on an image, or its ``neg_category_ids``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objdet.ops.coco import descending_order_key


def top_per_image(det_img: Tensor, det_score: Tensor, max_det: int) -> Tensor:
    """(D,) bool: the detection is among the ``max_det`` best scored of its image.

    Args:
        det_img: (D,) int64 image index of each detection.
        det_score: (D,) float scores.
        max_det: detections kept per image (all categories together).

    Ties in score keep input order: of equal scores the earlier detection ranks first.

    Example:
        >>> top_per_image(torch.tensor([0, 0, 0, 1]), torch.tensor([0.5, 0.9, 0.5, 0.1]), 2).tolist()
        [True, True, False, True]
    """
    n = det_img.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=det_img.device)
    by_score = torch.sort(descending_order_key(det_score), stable=True).indices
    order = by_score[torch.sort(det_img[by_score], stable=True).indices]  # by image, then score desc
    img_sorted = det_img[order]
    position = torch.arange(n, device=det_img.device)
    first = torch.ones(n, dtype=torch.bool, device=det_img.device)
    first[1:] = img_sorted[1:] != img_sorted[:-1]
    start = torch.cummax(torch.where(first, position, 0), 0).values  # first row of each image's run
    keep = torch.zeros(n, dtype=torch.bool, device=det_img.device)
    keep[order] = position - start < max_det
    return keep


def _pair_keys(img: Tensor, label: Tensor) -> Tensor:
    """int64 keys of (image, label) pairs; labels fit in int32 (checked by the input layer)."""
    return (img.to(torch.int64) << 32) | (label.to(torch.int64) & 0xFFFFFFFF)


def pairs_in(img: Tensor, label: Tensor, set_img: Tensor, set_label: Tensor) -> Tensor:
    """(N,) bool: (img[i], label[i]) is one of the pairs (set_img[j], set_label[j]).

    Example:
        >>> pairs_in(torch.tensor([0, 0, 1]), torch.tensor([3, 4, 3]),
        ...          torch.tensor([0, 1]), torch.tensor([4, 4])).tolist()
        [False, True, False]
    """
    if set_img.numel() == 0 or img.numel() == 0:
        return torch.zeros(img.shape[0], dtype=torch.bool, device=img.device)
    return torch.isin(_pair_keys(img, label), _pair_keys(set_img, set_label).to(img.device))
