"""COCO matching kernel: pycocotools' ``evaluateImg`` greedy matching, vectorised.

The kernel takes every detection and ground truth (GT) of a batch of images as flat
tensors and returns, for each detection, whether it is a true positive or ignored at
every (IoU threshold, area range) "lane", with the rules of pycocotools COCOeval:

* detections are matched per (image, class) group in descending score order (stable:
  ties keep input order) and only the first ``max_det`` of a group take part;
* a detection takes the best still-available GT with IoU >= ``min(t, 1 - 1e-10)``:
  non-ignored GTs are preferred to ignored ones, then the higher IoU, and on equal IoU
  the GT that comes later in input order (pycocotools' loop keeps the last of equals);
* crowd GTs are ignored, use IoU = intersection / detection area and can be matched any
  number of times; a GT outside the area range is ignored (matched at most once);
* a detection matched to an ignored GT is ignored; an unmatched detection whose own area
  is outside the range is ignored.

Greedy matching is sequential in pycocotools; here it runs in rounds over all groups and
lanes at once. In a round every undecided detection proposes its best available GT. The
proposal is final when no undecided detection ranked above it in its group still has that
GT as a candidate (then nothing decided above can take it, and removing other GTs cannot
change a maximum that remains available). The top undecided detection of every group is
always final, so the rounds end; in practice they are as many as the longest chain of
detections competing for the same GTs, a handful, not the number of detections.

IoU is computed as pycocotools' C code does (``bbIou``), in float64 on xywh boxes, so
that decisions at a threshold are bit-identical. Any other IoU (masks: ``segm``) plugs in
through ``pair_iou``, a function that gives the IoU of the candidate (detection, GT) pairs;
everything else (ordering, greedy rounds, flags) is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: pycocotools caps every IoU threshold at this value (so IoU = 1 matches at t = 1).
IOU_CAP = 1.0 - 1e-10


def descending_order_key(scores: Tensor) -> Tensor:
    """int64 keys whose ascending order is the scores' descending order, ties kept as ties.

    Sorting integers is several times faster than sorting floats on CPU (radix sort). Finite
    float64 values map to int64 monotonically by flipping the magnitude bits of negatives;
    ``+ 0.0`` turns -0.0 into 0.0 first so that the two stay a tie, as in pycocotools.
    """
    bits = (scores.to(torch.float64) + 0.0).view(torch.int64)
    ascending = bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)
    return ~ascending


def coco_pair_iou(det_xywh: Tensor, gt_xywh: Tensor, gt_crowd: Tensor) -> Tensor:
    """IoU of paired boxes (P,4) x (P,4) -> (P,), xywh, exactly as pycocotools' ``bbIou``.

    ``gt_crowd`` (P,) bool: for crowd GTs the union is the detection's area. Pairs whose
    intersection has zero width or height give 0 (so degenerate boxes never give NaN).
    Compute in float64 for results identical to pycocotools.
    """
    dx, dy, dw, dh = det_xywh.unbind(-1)
    gx, gy, gw, gh = gt_xywh.unbind(-1)
    w = torch.minimum(dx + dw, gx + gw) - torch.maximum(dx, gx)
    h = torch.minimum(dy + dh, gy + gh) - torch.maximum(dy, gy)
    overlap = (w > 0) & (h > 0)
    inter = w * h
    det_area = dw * dh
    union = torch.where(gt_crowd, det_area, det_area + gw * gh - inter)
    return torch.where(overlap, inter / torch.where(overlap, union, torch.ones_like(union)), 0.0)


def outside_area_ranges(area: Tensor, area_ranges: Tensor) -> Tensor:
    """(A, N) bool: area n lies outside range a (ranges are inclusive at both ends, as in pycocotools)."""
    return (area[None, :] < area_ranges[:, 0:1]) | (area[None, :] > area_ranges[:, 1:2])


def coco_gt_ignored(gt_crowd: Tensor, gt_area: Tensor, area_ranges: Tensor) -> Tensor:
    """(A, G) bool: GT g is ignored in area range a (a crowd GT, or its area outside the range)."""
    return gt_crowd[None, :] | outside_area_ranges(gt_area, area_ranges)


def pack_lanes(bits: Tensor) -> Tensor:
    """Pack bool flags (L, N) into bytes (N, ceil(L / 8)) uint8: lane l is bit l % 8 of byte l // 8."""
    lanes, n = bits.shape
    n_bytes = (lanes + 7) // 8
    padded = torch.zeros(n_bytes * 8, n, dtype=torch.uint8, device=bits.device)
    padded[:lanes] = bits
    weights = (1 << torch.arange(8, device=bits.device, dtype=torch.uint8)).view(1, 8, 1)
    return (padded.view(n_bytes, 8, n) * weights).sum(1, dtype=torch.uint8).T.contiguous()


def unpack_lanes(packed: Tensor, n_lanes: int) -> Tensor:
    """Inverse of :func:`pack_lanes`: (N, B) uint8 -> (n_lanes, N) bool."""
    shifts = torch.arange(8, device=packed.device, dtype=torch.uint8)
    bits = (packed.unsqueeze(-1) >> shifts) & 1  # (N, B, 8)
    return bits.reshape(packed.shape[0], packed.shape[1] * 8)[:, :n_lanes].T.bool()


@dataclass
class MatchResult:
    """Per kept detection (in input order): its rank in its (image, class) group and packed flags.

    ``keep`` (D,) bool marks the detections within the group's ``max_det`` best; the other
    fields hold one row per kept detection. Lane ``l = t * A + a`` is IoU threshold t, area range a.
    ``tp`` is "matched to a non-ignored GT"; ``ignored`` is pycocotools' dtIgnore. Everything else
    is a false positive.
    """

    keep: Tensor
    rank: Tensor
    tp: Tensor
    ignored: Tensor
    #: with ``return_ious``: (Q, 4) int64 rows (image, label, n_det, n_gt) for every (image, class)
    #: with detections and GT, and the IoUs of each as a row-major (n_det, n_gt) block, detections
    #: by descending score and GTs in input order (pycocotools' ``computeIoU`` layout).
    iou_groups: Tensor | None = None
    iou_values: Tensor | None = None


def _group_keys(
    det_img: Tensor, det_label: Tensor, gt_img: Tensor, gt_label: Tensor
) -> tuple[Tensor, Tensor]:
    """One int64 key per (image, label), shared by detections and GTs, increasing with the image."""
    labels = torch.cat([det_label, gt_label])
    if labels.numel() == 0:
        return det_img.clone(), gt_img.clone()
    lo, hi = torch.aminmax(labels)
    span = int(hi - lo) + 1
    n_images = int(max(det_img.max() if det_img.numel() else 0, gt_img.max() if gt_img.numel() else 0)) + 1
    if span * n_images < 2**62:
        return det_img * span + (det_label - lo), gt_img * span + (gt_label - lo)
    _, inverse = torch.unique(labels, return_inverse=True)  # labels too far apart for arithmetic keys
    span = int(inverse.max()) + 1
    return det_img * span + inverse[: det_label.numel()], gt_img * span + inverse[det_label.numel() :]


#: ``pair_iou(det_index, gt_index, gt_crowd)``: IoU (P,) float64 of P pairs given by input-order
#: indices, with COCO's crowd rule for the GTs flagged in ``gt_crowd`` (G,).
PairIoU = Callable[[Tensor, Tensor, Tensor], Tensor]


def coco_match(
    det_img: Tensor,
    det_label: Tensor,
    det_score: Tensor,
    det_xywh: Tensor | None,
    gt_img: Tensor,
    gt_label: Tensor,
    gt_xywh: Tensor | None,
    gt_crowd: Tensor,
    gt_area: Tensor,
    iou_thresholds: Tensor,
    area_ranges: Tensor,
    max_det: int,
    return_ious: bool = False,
    *,
    det_area: Tensor | None = None,
    pair_iou: PairIoU | None = None,
) -> MatchResult:
    """Match detections to GTs with pycocotools' rules (see the module docstring).

    Args:
        det_img, det_label: (D,) int64 image index and class of each detection.
        det_score: (D,) scores. det_xywh: (D, 4) float64 boxes.
        gt_img, gt_label: (G,) int64. gt_xywh: (G, 4) float64. gt_crowd: (G,) bool.
        gt_area: (G,) float64 area used for the area ranges.
        iou_thresholds: (T,) float64. area_ranges: (A, 2) float64, inclusive at both ends.
        max_det: detections per (image, class) that take part (pycocotools' ``maxDets[-1]``).
        return_ious: also return every (image, class) IoU block (see :class:`MatchResult`).
        det_area: (D,) detection areas for the area ranges (default: the boxes' w * h).
        pair_iou: IoU of candidate pairs (see :data:`PairIoU`; default: pycocotools' box IoU
            of ``det_xywh`` and ``gt_xywh``). With both ``det_area`` and ``pair_iou`` given the
            boxes are not used and may be None (masks: ``segm``).

    Returns:
        MatchResult with flags packed over the T * A lanes.
    """
    if pair_iou is None and (det_xywh is None or gt_xywh is None):
        raise ValueError("coco_match needs det_xywh and gt_xywh unless pair_iou is given")
    if det_area is None and det_xywh is None:
        raise ValueError("coco_match needs det_area or det_xywh")
    device = det_score.device
    n_det = det_score.numel()
    n_thr, n_area = iou_thresholds.numel(), area_ranges.shape[0]
    n_lanes = n_thr * n_area

    det_key, gt_key = _group_keys(det_img, det_label, gt_img, gt_label)

    # Detections sorted by (group, score desc), stable so ties keep input order.
    by_score = torch.sort(descending_order_key(det_score), stable=True).indices
    order = by_score[torch.sort(det_key[by_score], stable=True).indices]
    skey = det_key[order]
    rank_sorted = torch.arange(n_det, device=device) - torch.searchsorted(skey, skey, side="left")
    keep_sorted = rank_sorted < max_det
    order, skey, rank_sorted = order[keep_sorted], skey[keep_sorted], rank_sorted[keep_sorted]
    n_kept = order.numel()

    # GTs sorted by group, stable (input order within a group).
    gorder = torch.sort(gt_key, stable=True).indices
    gkey = gt_key[gorder]
    g_crowd, g_area = gt_crowd[gorder], gt_area[gorder]
    g_ignored = coco_gt_ignored(g_crowd, g_area, area_ranges)  # (A, G)

    # Candidate pairs: every kept detection with every GT of its group, IoU >= lowest threshold.
    start = torch.searchsorted(gkey, skey, side="left")
    count = torch.searchsorted(gkey, skey, side="right") - start
    pair_det = torch.repeat_interleave(torch.arange(n_kept, device=device), count)
    first_pair = torch.cumsum(count, 0) - count
    pair_gt = start[pair_det] + torch.arange(pair_det.numel(), device=device) - first_pair[pair_det]
    if pair_iou is None:
        assert det_xywh is not None and gt_xywh is not None
        iou = coco_pair_iou(det_xywh[order[pair_det]], gt_xywh[gorder[pair_gt]], g_crowd[pair_gt])
    else:
        iou = pair_iou(order[pair_det], gorder[pair_gt], gt_crowd)
    iou_groups = iou_values = None
    if return_ious:
        iou_values = iou
        has_gt = count > 0
        first_of_group = torch.ones_like(has_gt)
        first_of_group[1:] = skey[1:] != skey[:-1]
        heads = (first_of_group & has_gt).nonzero().flatten()  # first kept detection of each group
        n_in_group = torch.searchsorted(skey, skey[heads], side="right") - heads
        src = order[heads]
        iou_groups = torch.stack([det_img[src], det_label[src], n_in_group, count[heads]], 1)
    thr = torch.clamp(iou_thresholds.to(torch.float64), max=IOU_CAP)
    near = iou >= thr.min()
    pair_det, pair_gt, iou = pair_det[near], pair_gt[near], iou[near]

    # Preference among a detection's pairs: IoU, then later GT. Pairs are already in (det, GT)
    # order, so a stable sort by IoU followed by a stable sort by detection gives (det, IoU, GT).
    by_iou = torch.sort(iou, stable=True).indices
    pref = by_iou[torch.sort(pair_det[by_iou], stable=True).indices]
    pair_det, pair_gt, iou = pair_det[pref], pair_gt[pref], iou[pref]
    n_pairs = pair_det.numel()
    pair_rank = torch.arange(n_pairs, device=device) - torch.searchsorted(pair_det, pair_det, side="left")
    # Non-ignored GTs beat ignored ones: lift their keys above every ignored key.
    lift = n_pairs + 1
    prio = pair_rank[None, :] + lift * (~g_ignored[:, pair_gt]).to(torch.int64)  # (A, P)
    prio = prio[None].expand(n_thr, n_area, n_pairs).reshape(n_lanes, n_pairs)
    valid = (
        (iou[None, :] >= thr[:, None])[:, None, :].expand(n_thr, n_area, n_pairs).reshape(n_lanes, n_pairs)
    )
    pair_crowd = g_crowd[pair_gt]

    matched_gt = torch.full((n_lanes, n_kept), -1, dtype=torch.int64, device=device)
    decided = torch.zeros((n_lanes, n_kept), dtype=torch.bool, device=device)
    taken = torch.zeros((n_lanes, gkey.numel()), dtype=torch.bool, device=device)
    det_idx = pair_det[None, :].expand(n_lanes, n_pairs)
    gt_idx = pair_gt[None, :].expand(n_lanes, n_pairs)
    never = torch.iinfo(torch.int64).max
    while n_pairs:
        avail = valid & ~decided.gather(1, det_idx) & (~taken.gather(1, gt_idx) | pair_crowd)
        if not bool(avail.any()):
            break
        key = torch.where(avail, prio, -1)
        best = torch.full((n_lanes, n_kept), -1, dtype=torch.int64, device=device)
        best.scatter_reduce_(1, det_idx, key, reduce="amax")
        proposal = avail & (key == best.gather(1, det_idx))
        first = torch.full((n_lanes, taken.shape[1]), never, dtype=torch.int64, device=device)
        first.scatter_reduce_(1, gt_idx, torch.where(avail, det_idx, never), reduce="amin")
        final = proposal & (pair_crowd | (first.gather(1, gt_idx) == det_idx))
        lane, p = final.nonzero(as_tuple=True)
        matched_gt[lane, pair_det[p]] = pair_gt[p]
        decided[lane, pair_det[p]] = True
        taken[lane, pair_gt[p]] = True

    matched = matched_gt >= 0
    lane_area = torch.arange(n_lanes, device=device) % n_area
    # one extra all-False column stands for "no GT" (also when the batch has no GT at all)
    g_ignored_pad = torch.cat([g_ignored, g_ignored.new_zeros(n_area, 1)], 1)
    gt_ign = g_ignored_pad[lane_area].gather(1, torch.where(matched, matched_gt, gkey.numel()))  # (L, kept)
    if det_area is None:
        assert det_xywh is not None
        d_area = det_xywh[order, 2] * det_xywh[order, 3]
    else:
        d_area = det_area[order].to(torch.float64)
    det_out = outside_area_ranges(d_area, area_ranges)  # (A, kept)
    tp = matched & ~gt_ign
    ignored = (matched & gt_ign) | (~matched & det_out[lane_area])

    # Back to input order.
    keep = torch.zeros(n_det, dtype=torch.bool, device=device)
    keep[order] = True
    back = torch.empty(n_det, dtype=torch.int64, device=device)
    back[order] = torch.arange(n_kept, device=device)
    sel = back[keep]
    return MatchResult(
        keep=keep,
        rank=rank_sorted[sel],
        tp=pack_lanes(tp)[sel],
        ignored=pack_lanes(ignored)[sel],
        iou_groups=iou_groups,
        iou_values=iou_values,
    )
