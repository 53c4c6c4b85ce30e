"""Per-image records shared by the detection metrics: ``image_id`` in the state, copies, image order.

Every detection metric keeps one record per image seen, an int64 row of one list state
(``image_records``, so that DDP gathers all of them in one go): column :data:`ID` the image's
``image_id`` (:data:`NO_IMAGE_ID` without), column :data:`PRINT` the bits of a float64
fingerprint of its inputs, then the metric's own per-image counts (its rows in each table).
At compute time :func:`images_to_evaluate` chooses the images that count (see
:mod:`objdet.functional.image_records`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities import rank_zero_warn

from objdet.functional.image_records import (
    NO_IMAGE_ID,
    conflicting_duplicates,
    evaluation_order,
    image_fingerprints,
)
from objdet.training.metrics._detection_inputs import FlatDetections
from objdet.training.metrics._errors import InputError

#: columns of an image record; the metric's own counts follow
ID, PRINT = 0, 1


def batch_image_ids(flat: FlatDetections, earlier: Any) -> Tensor:
    """The batch's ids as the state keeps them, on the inputs' device (NO_IMAGE_ID without).

    ``earlier``: the metric's record state (a list of tensors between syncs). A batch with ids
    after batches without (or the reverse) is an error: every image of a metric has an id or
    none has.
    """
    device = flat.det_score.device
    given = flat.image_ids is not None
    # the first non-empty earlier record tells (usually the first: no walk over every update)
    first = next((t for t in earlier if t.numel()), None) if isinstance(earlier, list) else None
    if first is not None and (_first_id(first) != NO_IMAGE_ID) != given:
        raise InputError(
            "`image_id` must be given in every target dict or in none: "
            + (
                "this batch's targets have it, earlier batches' did not"
                if given
                else "earlier batches' targets had it, this batch's do not"
            )
        )
    if flat.image_ids is None:
        return torch.full((flat.n_images,), NO_IMAGE_ID, dtype=torch.int64, device=device)
    return flat.image_ids.to(device)


def _first_id(records: Tensor) -> int:
    """The first record's id (read through numpy on the CPU: a tensor index costs more than the rest)."""
    return int(records.numpy()[0, ID]) if records.device.type == "cpu" else int(records[0, ID])


def batch_fingerprints(
    flat: FlatDetections, det_geometry: Sequence[Tensor] = (), gt_geometry: Sequence[Tensor] = ()
) -> Tensor:
    """A float64 summary of each image's inputs (zeros without ids: then nothing compares them).

    Scores, labels and boxes (where used) of the detections; labels, crowd flags and boxes of
    the GTs; plus extra per-detection / per-GT columns ``det_geometry`` / ``gt_geometry``
    ((N, k) floats each, k <= 7: mask areas, keypoint summaries, GT areas).
    """
    f64 = torch.float64
    if flat.image_ids is None:
        return torch.zeros(flat.n_images, dtype=f64, device=flat.det_score.device)
    det_cols = [flat.det_score[:, None], flat.det_label[:, None].to(f64)]
    gt_cols = [flat.gt_label[:, None].to(f64), flat.gt_crowd[:, None].to(f64)]
    parts = [
        (flat.det_img, torch.cat([*det_cols, *([flat.det_xywh] if flat.det_xywh is not None else [])], 1)),
        (flat.gt_img, torch.cat([*gt_cols, *([flat.gt_xywh] if flat.gt_xywh is not None else [])], 1)),
    ]
    parts += [(flat.det_img, x.to(f64)) for x in det_geometry]
    parts += [(flat.gt_img, x.to(f64)) for x in gt_geometry]
    return image_fingerprints(flat.n_images, parts)


def pose_summary(keypoints: Tensor) -> Tensor:
    """(N, 2) float64 summary of (N, K, 3) poses for :func:`batch_fingerprints`: a plain and a ranked sum.

    One matrix product: every value weighted 1, then by its position (so a reordered pose differs).
    """
    k = keypoints.reshape(keypoints.shape[0], keypoints.shape[1] * keypoints.shape[2]).to(torch.float64)
    weights = torch.ones(k.shape[1], 2, dtype=torch.float64, device=k.device)
    weights[:, 1] = torch.arange(1, k.shape[1] + 1, dtype=torch.float64, device=k.device)
    return k @ weights


def image_records(ids: Tensor, prints: Tensor, counts: list[Tensor]) -> Tensor:
    """One batch's records (B, 2 + len(counts)) int64: id, fingerprint bits, then ``counts``."""
    prints = prints.to(torch.float64).contiguous()
    if ids.device.type == "cpu" and all(c.device.type == "cpu" for c in counts):
        # numpy column writes: a few microseconds where torch's conversions and stack cost more
        out = np.empty((ids.shape[0], 2 + len(counts)), np.int64)
        out[:, ID] = ids.numpy()
        out[:, PRINT] = prints.numpy().view(np.int64)
        for j, c in enumerate(counts):
            out[:, 2 + j] = c.numpy()
        return torch.from_numpy(out)
    columns = [ids, prints.view(torch.int64)]
    return torch.stack([*columns, *(c.to(device=ids.device, dtype=torch.int64) for c in counts)], 1)


#: at most this many named slices (one bit each in an int64 column)
MAX_SLICES = 63


def slice_names(slices: Any) -> tuple[str, ...]:
    """The constructor's ``slices``: distinct non-empty names, at most :data:`MAX_SLICES`."""
    if slices is None:
        return ()
    if isinstance(slices, str) or not isinstance(slices, list | tuple):
        raise InputError(f"`slices` must be a list of slice names, got {slices!r}")
    names = tuple(slices)
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise InputError(f"`slices` must be distinct non-empty strings, got {list(names)}")
    if len(names) > MAX_SLICES:
        raise InputError(f"`slices` may name at most {MAX_SLICES} slices, got {len(names)}")
    return names


def read_slice_masks(target: Any, names: tuple[str, ...]) -> Tensor | None:
    """Each target's optional ``slices`` (names, or a bool mask over ``names``) as an int64 bit mask.

    None when the metric has no slices. A target without the key is in no slice.
    """
    if not names:
        for i, t in enumerate(target):
            if "slices" in t:
                raise InputError(
                    f"target[{i}] has 'slices' but the metric was created without `slices=` (name the "
                    "slices at construction: slices=[...])"
                )
        return None
    bits = []
    for i, t in enumerate(target):
        value = t.get("slices")
        mask = 0
        if value is None:
            pass
        elif isinstance(value, Tensor):
            if value.dtype != torch.bool or value.shape != (len(names),):
                raise InputError(
                    f"target[{i}]['slices'] as a tensor must be a bool mask of shape ({len(names)},) over "
                    f"{list(names)}, got {value.dtype} of shape {tuple(value.shape)}"
                )
            mask = sum(1 << b for b in value.nonzero().flatten().tolist())
        else:
            tags = [value] if isinstance(value, str) else value
            if not isinstance(tags, list | tuple | set | frozenset):
                raise InputError(f"target[{i}]['slices'] must be slice names or a bool mask, got {value!r}")
            for tag in tags:
                if tag not in names:
                    raise InputError(
                        f"target[{i}]['slices'] names {tag!r}, not one of the metric's {list(names)}"
                    )
                mask |= 1 << names.index(tag)
        bits.append(mask)
    return torch.tensor(bits, dtype=torch.int64)


def images_to_evaluate(records: Tensor) -> Tensor | None:
    """Positions of the images that count, in evaluation order (None: every image, as seen).

    Raises :class:`InputError` when some images have ids and others not (under DDP: a rank gave
    none); warns when an id was given to images with different content (the first is kept).
    """
    image_ids = records[:, ID]
    prints = records[:, PRINT].contiguous().view(torch.float64)
    try:
        order = evaluation_order(image_ids)
    except ValueError as err:
        raise InputError(str(err)) from None
    if order is not None and order.numel() < image_ids.numel():
        conflicts = conflicting_duplicates(image_ids, prints)
        if conflicts:
            shown = ", ".join(map(str, conflicts[:10])) + (", ..." if len(conflicts) > 10 else "")
            rank_zero_warn(
                f"{len(conflicts)} `image_id`(s) were given to images with different content: {shown}. "
                "Each id counts once, with the content of its first copy (rank 0's first under DDP).",
                UserWarning,
            )
    return order
