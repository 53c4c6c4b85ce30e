"""Per-image records of a streamed evaluation: which images count, and where their rows lie.

A streamed metric keeps its rows (one per kept detection, one per (image, class) of GTs)
grouped by image, images in the order they were seen (under DDP: rank 0's, then rank 1's,
...), and per image its id (or :data:`NO_IMAGE_ID`) and how many rows it holds in each table.
From these records:

* :func:`evaluation_order` chooses the images that count and their order. Without ids every
  image counts, in the order seen. With ids, an id counts once, its first copy in that order
  (a ``DistributedSampler`` pads the last shards with copies of the first images), and the
  images are sorted by id, as pycocotools sorts ``imgIds``: score ties between images are then
  broken the same way whatever the update order or the sharding.
* :func:`segment_rows` turns chosen images into the row indices of a table.
* :func:`image_fingerprints` and :func:`conflicting_duplicates` find ids that were given to
  images with different content.

Everything is torch, on the records' device.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: the id recorded for an image given without ``image_id`` (no valid id equals it)
NO_IMAGE_ID = -(2**63)


def evaluation_order(image_ids: Tensor) -> Tensor | None:
    """Positions of the images that count, in evaluation order; None when that is every image as seen.

    Args:
        image_ids: (N,) int64, one per image in the order seen, :data:`NO_IMAGE_ID` where no id
            was given.

    Raises:
        ValueError: some images have ids and others do not (for instance one rank gave ids).
    """
    given = image_ids != NO_IMAGE_ID
    n_given = int(given.sum())
    if n_given == 0:
        return None
    if n_given != image_ids.numel():
        raise ValueError(
            f"`image_id` was given for {n_given} of {image_ids.numel()} images: give it in every "
            "target dict or in none (under DDP: on every rank)"
        )
    sorted_ids, order = torch.sort(image_ids, stable=True)  # copies of an id keep the order seen
    first = torch.ones_like(sorted_ids, dtype=torch.bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    return order[first]


def segment_rows(counts: Tensor, images: Tensor) -> Tensor:
    """Row indices of ``images``, in their order, in a table whose rows come ``counts[i]`` per image.

    Args:
        counts: (N,) rows held by each image, images in table order (their rows are contiguous).
        images: (M,) positions of the chosen images (each at most once).

    Returns:
        (sum of counts[images],) int64 indices into the table.

    Example:
        >>> import torch
        >>> segment_rows(torch.tensor([2, 0, 3]), torch.tensor([2, 0])).tolist()
        [2, 3, 4, 0, 1]
    """
    counts = counts.to(torch.int64)
    images = images.to(device=counts.device, dtype=torch.int64)
    starts = torch.cumsum(counts, 0) - counts
    lengths = counts[images]
    total = int(lengths.sum())
    out_starts = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts[images] - out_starts, lengths, output_size=total)
    return shift + torch.arange(total, device=counts.device)


# fixed irrational weights, one per column, so that different content almost never sums alike
_WEIGHTS = torch.tensor([1.0, 2**0.5, 3**0.5, 5**0.5, 7**0.5, 11**0.5, 13**0.5, 17**0.5], dtype=torch.float64)


def image_fingerprints(n_images: int, parts: list[tuple[Tensor, Tensor]]) -> Tensor:
    """A float64 summary of each image's content: equal for copies, different for other content.

    Args:
        n_images: N.
        parts: ``(row_image, values)`` pairs: (R,) image index of each row and (R, C) float64
            values (C <= 7; (R,) is one column); every part adds its rows' weighted values and its row count
            to its images' fingerprint, with weights of its own.

    Order matters only through float rounding: compare with a relative tolerance
    (:func:`conflicting_duplicates`).
    """
    device = parts[0][0].device if parts else torch.device("cpu")
    out = torch.zeros(n_images, dtype=torch.float64, device=device)
    weights = _WEIGHTS.to(device)
    for p, (row_image, values) in enumerate(parts):
        values = values.to(torch.float64)
        if values.ndim == 1:
            values = values[:, None]
        row = torch.cat([torch.ones_like(values[:, :1]), values], 1) @ weights[: values.shape[1] + 1]
        out.index_add_(0, row_image.to(torch.int64), row * (p + 1) ** 0.5)
    return out


def conflicting_duplicates(image_ids: Tensor, fingerprints: Tensor, rtol: float = 1e-9) -> list[int]:
    """Ids given to more than one image whose fingerprints differ from their first copy's (sorted).

    Example:
        >>> import torch
        >>> conflicting_duplicates(torch.tensor([4, 9, 4, 9]), torch.tensor([1.0, 2.0, 1.0, 2.5]))
        [9]
    """
    if image_ids.numel() < 2:
        return []
    sorted_ids, order = torch.sort(image_ids, stable=True)
    prints = fingerprints[order]
    first = torch.ones_like(sorted_ids, dtype=torch.bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    head = torch.cumsum(first.to(torch.int64), 0) - 1  # group of each sorted position
    reference = prints[first][head]
    differs = (prints - reference).abs() > rtol * torch.maximum(prints.abs(), reference.abs())
    return sorted(set(sorted_ids[differs].tolist()))
