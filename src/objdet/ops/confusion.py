"""One-to-one greedy matching of detections to ground truth, vectorised over a batch.

This is the matching behind the detection confusion matrix. Within each image, every
(detection, non-crowd GT) pair with IoU >= ``iou_threshold`` is a candidate. Candidates are
ranked by descending IoU, then by higher detection score, then lower detection index, then
lower GT index (a strict total order, so the result never depends on sort stability or
the device), and accepted greedily: a pair is taken when neither its detection nor its GT
is taken yet. With ``matching="agnostic"`` (the default) labels play no part in the matching.
With ``matching="class_first"`` the walk is done twice: first over the candidates whose
detection and GT have the same label, then, over the candidates whose detection and GT are
both still free (necessarily of different labels), the same walk again. So a detection takes
a GT of its own class when one overlaps it enough, even if a GT of another class overlaps it
more, and only detections and GTs left over are paired across classes.

The sequential walk down the ranked list is run in rounds instead: in a round every pair
that is the best remaining pair of both its detection and its GT is accepted (it would be
accepted by the sequential walk too, since every better pair sharing its detection or GT
has already been removed), then pairs touching a taken detection or GT are removed. The
best remaining pair overall is always accepted, so the rounds end; in practice there are
as many as the longest chain of pairs competing for each other, a handful.

Crowd GTs are never matched. A detection left unmatched whose intersection with a crowd GT
of its image covers at least ``iou_threshold`` of the detection's own area is marked
``crowd_covered`` (COCO's crowd rule: such a detection is not a false positive).

IoU is pycocotools' formula (:func:`objdet.ops.coco.coco_pair_iou`) on float64 xywh boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from objdet.ops.coco import coco_pair_iou, descending_order_key

__all__ = ["MATCHING_MODES", "GreedyMatch", "greedy_match"]

#: the values of ``matching``
MATCHING_MODES = ("agnostic", "class_first")


@dataclass
class GreedyMatch:
    """Result of :func:`greedy_match`, in the detections' and GTs' input order.

    ``det_to_gt`` (D,) int64: index of the matched GT, -1 if unmatched. ``gt_to_det`` (G,)
    int64: index of the matching detection, -1 if unmatched (always -1 for crowd GTs).
    ``crowd_covered`` (D,) bool: unmatched and covered by a crowd GT (see the module docstring).
    """

    det_to_gt: Tensor
    gt_to_det: Tensor
    crowd_covered: Tensor


def _image_pairs(det_img: Tensor, gt_img: Tensor) -> tuple[Tensor, Tensor]:
    """Every (detection, GT) pair of the same image, as index tensors (P,), in (det, GT) input order."""
    device = det_img.device
    gorder = torch.sort(gt_img, stable=True).indices  # GTs of an image keep their input order
    g_sorted = gt_img[gorder]
    start = torch.searchsorted(g_sorted, det_img, side="left")
    count = torch.searchsorted(g_sorted, det_img, side="right") - start
    pair_det = torch.repeat_interleave(torch.arange(det_img.numel(), device=device), count)
    first_pair = torch.cumsum(count, 0) - count
    offset = torch.arange(pair_det.numel(), device=device) - first_pair[pair_det]
    return pair_det, gorder[start[pair_det] + offset]


def _accept_greedy(
    pair_det: Tensor, pair_gt: Tensor, position: Tensor, det_to_gt: Tensor, gt_to_det: Tensor
) -> None:
    """Walk ranked candidates (``position`` 0 = best) in rounds, writing accepted pairs in place.

    Candidates touching a detection or GT already taken in ``det_to_gt`` / ``gt_to_det`` are
    dropped first, so this can continue a previous walk.
    """
    n_det, n_gt = det_to_gt.numel(), gt_to_det.numel()
    device = det_to_gt.device
    alive = (det_to_gt[pair_det] < 0) & (gt_to_det[pair_gt] < 0)
    pair_det, pair_gt, position = pair_det[alive], pair_gt[alive], position[alive]
    last = torch.iinfo(torch.int64).max
    while pair_det.numel():
        best_of_det = torch.full((n_det,), last, dtype=torch.int64, device=device)
        best_of_det.scatter_reduce_(0, pair_det, position, reduce="amin")
        best_of_gt = torch.full((n_gt,), last, dtype=torch.int64, device=device)
        best_of_gt.scatter_reduce_(0, pair_gt, position, reduce="amin")
        accept = (best_of_det[pair_det] == position) & (best_of_gt[pair_gt] == position)
        det_to_gt[pair_det[accept]] = pair_gt[accept]
        gt_to_det[pair_gt[accept]] = pair_det[accept]
        alive = (det_to_gt[pair_det] < 0) & (gt_to_det[pair_gt] < 0)
        pair_det, pair_gt, position = pair_det[alive], pair_gt[alive], position[alive]


def greedy_match(
    det_img: Tensor,
    det_score: Tensor,
    det_xywh: Tensor,
    gt_img: Tensor,
    gt_xywh: Tensor,
    gt_crowd: Tensor,
    iou_threshold: float,
    *,
    matching: str = "agnostic",
    det_label: Tensor | None = None,
    gt_label: Tensor | None = None,
) -> GreedyMatch:
    """One-to-one greedy matching by IoU, class-agnostic or same class first (rules in the module docstring).

    Args:
        det_img: (D,) int64 image index of each detection (any order, any device).
        det_score: (D,) float scores; higher wins a tie in IoU.
        det_xywh: (D, 4) float64 boxes, xywh.
        gt_img: (G,) int64 image index of each GT.
        gt_xywh: (G, 4) float64 boxes, xywh.
        gt_crowd: (G,) bool crowd flags.
        iou_threshold: a pair is a candidate when its IoU >= this value (in (0, 1]).
        matching: "agnostic" (labels ignored) or "class_first" (same-label pairs first).
        det_label, gt_label: (D,) and (G,) integer labels; required with "class_first".

    Returns:
        :class:`GreedyMatch`.

    Example:
        >>> import torch
        >>> from objdet.ops.confusion import greedy_match
        >>> det = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 10, 10]], dtype=torch.float64)
        >>> gt = torch.tensor([[0.0, 0, 10, 10]], dtype=torch.float64)
        >>> m = greedy_match(torch.tensor([0, 0]), torch.tensor([0.5, 0.9]), det,
        ...                  torch.tensor([0]), gt, torch.tensor([False]), 0.5)
        >>> m.det_to_gt.tolist(), m.gt_to_det.tolist()  # the exact box wins over the higher score
        ([0, -1], [0])
        >>> m = greedy_match(torch.tensor([0, 0]), torch.tensor([0.5, 0.9]), det,
        ...                  torch.tensor([0]), gt, torch.tensor([False]), 0.5, matching="class_first",
        ...                  det_label=torch.tensor([1, 0]), gt_label=torch.tensor([0]))
        >>> m.det_to_gt.tolist()  # the detection of the GT's class wins
        [-1, 0]
    """
    if matching not in MATCHING_MODES:
        raise ValueError(f"`matching` must be one of {MATCHING_MODES}, got {matching!r}")
    if matching == "class_first" and (det_label is None or gt_label is None):
        raise ValueError("`det_label` and `gt_label` are required with matching='class_first'")
    device = det_score.device
    n_det, n_gt = det_score.numel(), gt_img.numel()
    det_to_gt = torch.full((n_det,), -1, dtype=torch.int64, device=device)
    gt_to_det = torch.full((n_gt,), -1, dtype=torch.int64, device=device)
    pair_det, pair_gt = _image_pairs(det_img, gt_img)
    pair_crowd = gt_crowd[pair_gt]
    iou = coco_pair_iou(det_xywh[pair_det], gt_xywh[pair_gt], pair_crowd)
    hit = iou >= iou_threshold

    # crowd rule: intersection / detection area (coco_pair_iou's crowd formula) >= threshold
    covered = torch.zeros(n_det, dtype=torch.bool, device=device)
    covered[pair_det[hit & pair_crowd]] = True

    cand = hit & ~pair_crowd
    pair_det, pair_gt, iou = pair_det[cand], pair_gt[cand], iou[cand]
    # Rank candidates: IoU desc, score desc, det asc, GT asc. Pairs are in (det, GT) order, so two
    # stable sorts (score, then IoU) leave the index tie-breaks in place.
    by_score = torch.sort(descending_order_key(det_score[pair_det]), stable=True).indices
    by_iou = by_score[torch.sort(descending_order_key(iou[by_score]), stable=True).indices]
    pair_det, pair_gt = pair_det[by_iou], pair_gt[by_iou]
    position = torch.arange(pair_det.numel(), device=device)  # 0 = best

    if matching == "class_first":
        assert det_label is not None and gt_label is not None
        same = det_label.to(device)[pair_det].long() == gt_label.to(device)[pair_gt].long()
        _accept_greedy(pair_det[same], pair_gt[same], position[same], det_to_gt, gt_to_det)
    _accept_greedy(pair_det, pair_gt, position, det_to_gt, gt_to_det)

    return GreedyMatch(det_to_gt=det_to_gt, gt_to_det=gt_to_det, crowd_covered=covered & (det_to_gt < 0))
