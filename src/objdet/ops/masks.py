"""Binary mask kernels: pixel areas, intersections and IoU, as exact integer pixel counts.

Every count is an exact integer (int64), and an IoU is one float64 division of two exact
counts, ``intersection / union``, so results are bit-identical to pycocotools'
``maskUtils.iou`` (which divides the same two integers in C doubles). Two paths compute the
intersections:

* ``"packed"`` (the CPU default): every mask is packed to bits once (``numpy.packbits``, one
  pass over the pixels, 1/8 of the memory after it); areas and intersections are popcounts of
  64-pixel words (``numpy.bitwise_count``), so everything after the packing pass reads only
  the packed bits. Intersections are computed only for the pairs asked for (the metric asks
  for (detection, GT) pairs of the same image and class).
* ``"matmul"`` (the CUDA default): intersections are a matrix product of the masks as
  float32 0/1 matrices, ``A @ B.T``. Products of 0/1 are exact and float32 holds every
  integer up to 2**24 exactly, so the reduction is kept exact by splitting the pixel
  dimension into pieces of at most 2**24 pixels (a 4096 x 4096 image) whose float32 partial
  sums are added in int64. TF32 rounds only the inputs' mantissas, which 0 and 1 do not
  need, so it does not change the result either.

Memory is bounded by chunking: neither path allocates more than a few tens of MiB besides
its inputs and output (and the 1/8-size packed copy), whatever N, M, H and W.

Masks may be ``bool`` (preferred: no value check, no conversion) or any real dtype holding
only 0 and 1; other values are an error. Masks compared with each other must have the
same (H, W).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

MaskMethod = Literal["auto", "packed", "matmul"]
MASK_METHODS: tuple[str, ...] = ("auto", "packed", "matmul")

#: Elements per chunk: about 16-32 MiB of temporaries per step on either path.
_CHUNK_WORDS = 1 << 17  # uint64 words of packed masks (1 MiB: stays in cache, reused)
_CHUNK_FLOATS = 1 << 23  # float32 mask elements converted at once (32 MiB)
#: float32 sums of 0/1 products are exact up to 2**24.
_EXACT_FLOAT32 = 1 << 24

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of every element (uint8 or uint64) -> uint8."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values)
    return (
        _POPCOUNT8[values.view(np.uint8)].reshape(*values.shape, -1).sum(-1, dtype=np.uint8)
    )  # pragma: no cover


def _popcount_rows(packed: np.ndarray) -> np.ndarray:
    """Set bits in every row of a C-contiguous (N, B) uint8 array -> (N,) int64.

    The rows are read as 64-bit words where they are whole (unaligned loads of the same
    memory, no copy), the last B % 8 bytes as bytes.
    """
    n, n_bytes = packed.shape
    full = n_bytes // 8
    # uint32 accumulation is several times faster than int64 and exact below 2**32 pixels per mask
    total = np.zeros(n, dtype=np.uint32)
    if full and n:
        words = np.ndarray((n, full), dtype=np.uint64, buffer=packed, strides=(packed.strides[0], 8))
        total += np.add.reduce(_popcount(words), axis=1, dtype=np.uint32)
    if n_bytes % 8 and n:
        total += np.add.reduce(_popcount(packed[:, full * 8 :]), axis=1, dtype=np.uint32)
    return total.astype(np.int64)


# ------------------------------------------------------------------------------ validation
def check_masks(masks: object, name: str = "masks") -> Tensor:
    """``masks`` as a (N, H, W) bool tensor; errors name ``name``, the value seen and what is expected.

    Bool masks are returned unchanged (no pass over the pixels). Integer and floating masks
    must hold only 0 and 1 (one pass to check, one to convert); complex masks are rejected.
    An empty tensor of any shape is read as (0, 0, 0).
    """
    if not isinstance(masks, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(masks).__name__}")
    if masks.numel() == 0 and masks.ndim != 3:
        return torch.zeros((0, 0, 0), dtype=torch.bool, device=masks.device)
    if masks.ndim != 3:
        raise ValueError(f"`{name}` must have shape (N, H, W), got {tuple(masks.shape)}")
    if masks.dtype == torch.bool:
        return masks
    if masks.is_complex():
        raise TypeError(f"`{name}` must be a bool (or 0/1 integer or float) tensor, got {masks.dtype}")
    bad = (masks != 0) & (masks != 1)
    if bool(bad.any()):
        value = masks[bad][0].item()
        raise ValueError(
            f"`{name}` must be boolean or hold only the values 0 and 1 ({masks.dtype}), got the value {value}"
        )
    return masks != 0


def _check_pair(masks1: Tensor, masks2: Tensor) -> tuple[Tensor, Tensor]:
    a, b = check_masks(masks1, "masks1"), check_masks(masks2, "masks2")
    if a.shape[0] and b.shape[0] and a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"`masks1` and `masks2` must have the same (H, W), got {tuple(a.shape[1:])} and "
            f"{tuple(b.shape[1:])}"
        )
    if a.device != b.device:
        raise ValueError(f"`masks1` is on {a.device} and `masks2` on {b.device}; expected one device")
    return a, b


def _resolve(method: str, device: torch.device) -> str:
    if method not in MASK_METHODS:
        raise ValueError(f"`method` must be one of {MASK_METHODS}, got {method!r}")
    if method == "auto":
        return "matmul" if device.type != "cpu" else "packed"
    if method == "packed" and device.type != "cpu":
        raise ValueError(f"`method='packed'` runs on CPU tensors only, got masks on {device}")
    return method


# ------------------------------------------------------------------------------ packed path
def pack_masks(masks: Tensor) -> np.ndarray:
    """Pack (N, H, W) bool CPU masks into (N, ceil(H * W / 8)) uint8 bytes, one pass over the pixels.

    The bit order is irrelevant to popcounts; the last byte's padding bits are 0.
    """
    n = masks.shape[0]
    pixels = masks.shape[1] * masks.shape[2] if masks.ndim == 3 else 0
    step = max(1, (_CHUNK_WORDS * 64) // max(pixels, 1))
    # packbits reads bytes: a bool array viewed as uint8 is the same memory and packs faster
    if n <= step and masks.is_contiguous():
        return np.packbits(masks.reshape(n, pixels).numpy().view(np.uint8), axis=1)
    out = np.empty((n, -(-pixels // 8)), dtype=np.uint8)
    for s in range(0, n, step):  # chunks bound the copy a non-contiguous input needs
        chunk = masks[s : s + step].reshape(-1, pixels).numpy().view(np.uint8)
        out[s : s + step] = np.packbits(chunk, axis=1)
    return out


def _packed_pair_counts(p1: np.ndarray, i1: np.ndarray, p2: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """popcount(p1[i1[k]] & p2[i2[k]]) for every k -> (P,) int64, in bounded chunks (rows: packed bytes)."""
    n_pairs, n_bytes = i1.shape[0], p1.shape[1]
    out = np.zeros(n_pairs, dtype=np.int64)
    if n_pairs == 0 or n_bytes == 0:
        return out
    padded = -(-n_bytes // 8) * 8  # gathered rows padded with zero bytes to whole, aligned words
    step = max(1, (_CHUNK_WORDS * 8) // padded)
    a = np.zeros((min(step, n_pairs), padded), dtype=np.uint8)
    b = np.zeros_like(a)
    for s in range(0, n_pairs, step):
        k = min(step, n_pairs - s)
        np.take(p1, i1[s : s + k], axis=0, out=a[:k, :n_bytes], mode="clip")  # indices are valid
        np.take(p2, i2[s : s + k], axis=0, out=b[:k, :n_bytes], mode="clip")
        wa = a[:k].view(np.uint64)
        np.bitwise_and(wa, b[:k].view(np.uint64), out=wa)
        out[s : s + k] = np.add.reduce(_popcount(wa), axis=1, dtype=np.uint32)
    return out


def _packed_intersection(a: Tensor, b: Tensor) -> Tensor:
    p1, p2 = pack_masks(a), pack_masks(b)
    n, m = p1.shape[0], p2.shape[0]
    i1 = np.repeat(np.arange(n, dtype=np.int64), m)
    i2 = np.tile(np.arange(m, dtype=np.int64), n)
    return torch.from_numpy(_packed_pair_counts(p1, i1, p2, i2).reshape(n, m))


# ------------------------------------------------------------------------------ matmul path
def _matmul_intersection(a: Tensor, b: Tensor) -> Tensor:
    """(N, M) int64 intersections as float32 matrix products over chunks of pixels (exact, see module doc)."""
    n, m = a.shape[0], b.shape[0]
    pixels = a.shape[1] * a.shape[2] if a.ndim == 3 else 0
    out = torch.zeros((n, m), dtype=torch.int64, device=a.device)
    if n == 0 or m == 0 or pixels == 0:
        return out
    fa, fb = a.reshape(n, pixels), b.reshape(m, pixels)
    # rows of masks1 per step: all of them unless that would make the pixel chunks thinner than 256
    rows = min(n, max(1, _CHUNK_FLOATS // 256 - m))
    k_step = max(1, min(_EXACT_FLOAT32, _CHUNK_FLOATS // (rows + m)))
    for r in range(0, n, rows):
        for k in range(0, pixels, k_step):
            lhs = fa[r : r + rows, k : k + k_step].to(torch.float32)
            rhs = fb[:, k : k + k_step].to(torch.float32)
            out[r : r + rows] += (lhs @ rhs.T).to(torch.int64)
    return out


# ------------------------------------------------------------------------------ public kernels
def mask_area(masks: Tensor) -> Tensor:
    """Pixel count of every mask: (N, H, W) -> (N,) int64.

    Example:
        >>> import torch
        >>> masks = torch.zeros(2, 4, 5, dtype=torch.bool)
        >>> masks[0, 1:3, 1:4] = True
        >>> mask_area(masks)
        tensor([6, 0])
    """
    masks = check_masks(masks)
    if masks.device.type == "cpu":
        return torch.from_numpy(_popcount_rows(pack_masks(masks)))
    return masks.flatten(1).sum(1, dtype=torch.int64)


def mask_intersection(masks1: Tensor, masks2: Tensor, method: MaskMethod = "auto") -> Tensor:
    """Pixels in both masks, for every pair: (N, H, W) x (M, H, W) -> (N, M) int64, exact.

    ``method``: ``"packed"`` (bit-packed popcounts, CPU only), ``"matmul"`` (float32 matrix
    product over pixel chunks, any device) or ``"auto"`` (packed on CPU, matmul elsewhere).

    Example:
        >>> import torch
        >>> a = torch.zeros(1, 4, 4, dtype=torch.bool); a[0, :2] = True
        >>> b = torch.zeros(2, 4, 4, dtype=torch.bool); b[0, 1:] = True; b[1, :, :1] = True
        >>> mask_intersection(a, b)
        tensor([[4, 2]])
    """
    a, b = _check_pair(masks1, masks2)
    if _resolve(method, a.device) == "packed":
        return _packed_intersection(a, b)
    return _matmul_intersection(a, b)


def mask_iou(
    masks1: Tensor, masks2: Tensor, iscrowd: Tensor | None = None, method: MaskMethod = "auto"
) -> Tensor:
    """IoU of every pair of binary masks: (N, H, W) x (M, H, W) -> (N, M) float64.

    IoU = intersection / union with exact pixel counts, 0 where the union is empty. With
    ``iscrowd`` ((M,), bool or 0/1) the columns of crowd masks use COCO's crowd rule,
    intersection / area of the first mask (the detection), as ``pycocotools.mask.iou`` does.
    The values are bit-identical to pycocotools' (the same two integers divided in float64).
    See :func:`mask_intersection` for ``method``.

    Example:
        >>> import torch
        >>> a = torch.zeros(1, 4, 4, dtype=torch.bool); a[0, :2] = True     # 8 pixels
        >>> b = torch.zeros(2, 4, 4, dtype=torch.bool); b[0, 1:] = True; b[1] = True
        >>> mask_iou(a, b)
        tensor([[0.2500, 0.5000]], dtype=torch.float64)
        >>> mask_iou(a, b, iscrowd=torch.tensor([0, 1]))  # crowd: 8 / 8
        tensor([[0.2500, 1.0000]], dtype=torch.float64)
    """
    a, b = _check_pair(masks1, masks2)
    inter = mask_intersection(a, b, method)
    area1, area2 = mask_area(a).to(a.device), mask_area(b).to(a.device)
    union = area1[:, None] + area2[None, :] - inter
    if iscrowd is not None:
        if not isinstance(iscrowd, Tensor) or iscrowd.shape != (b.shape[0],):
            shape = tuple(iscrowd.shape) if isinstance(iscrowd, Tensor) else type(iscrowd).__name__
            raise ValueError(f"`iscrowd` must be a tensor of shape ({b.shape[0]},), got {shape}")
        union = torch.where(iscrowd.to(a.device).bool()[None, :], area1[:, None].expand_as(union), union)
    return _ratio(inter, union)


def _ratio(inter: Tensor, union: Tensor) -> Tensor:
    """inter / union in float64, 0 where union is 0 (then inter is 0 as well)."""
    den = torch.where(union > 0, union, 1).to(torch.float64)
    return inter.to(torch.float64) / den


# ------------------------------------------------------------------------------ batches of images
@dataclass
class MaskBatch:
    """The masks of a batch of images, prepared once for the COCO matching of that batch.

    Built by :func:`mask_batch`. Detections and GTs are numbered across the batch in input
    order (image 0's first, ...). ``det_area`` / ``gt_area`` are (D,) / (G,) int64 pixel
    counts; :meth:`pair_iou` gives the IoU of (detection, GT) pairs of the same image (and,
    if the batch was prepared with labels, of the same label). No mask is kept: only the
    intersections of the pairs that can be asked for.
    """

    det_area: Tensor
    gt_area: Tensor
    method: str
    #: sorted keys det_index * G + gt_index of the prepared pairs, and their intersections
    pair_keys: Tensor
    pair_counts: Tensor

    def pair_intersection(self, det_index: Tensor, gt_index: Tensor) -> Tensor:
        """Pixels in both masks for pairs (P,) of detection and GT indices -> (P,) int64."""
        if det_index.numel() == 0:
            return self.pair_counts[:0]
        key = det_index * self.gt_area.numel() + gt_index
        last = max(self.pair_keys.numel() - 1, 0)
        if (
            key.device.type == "cpu"
        ):  # numpy: torch's CPU searchsorted opens a parallel region even for tiny inputs
            pos = torch.from_numpy(np.searchsorted(self.pair_keys.numpy(), key.numpy()).clip(max=last))
        else:
            pos = torch.searchsorted(self.pair_keys, key).clamp(max=last)
        if self.pair_keys.numel() == 0 or not bool((self.pair_keys[pos] == key).all()):
            raise ValueError(
                "pair_intersection: a (detection, GT) pair was not prepared by mask_batch (pairs must "
                "belong to one image, and have one label if mask_batch was given labels)"
            )
        return self.pair_counts[pos]

    def pair_iou(self, det_index: Tensor, gt_index: Tensor, gt_crowd: Tensor) -> Tensor:
        """IoU (P,) float64 of detection/GT pairs; crowd GTs ((G,) bool) use intersection / detection area."""
        inter = self.pair_intersection(det_index, gt_index)
        d_area = self.det_area[det_index]
        union = torch.where(gt_crowd[gt_index], d_area, d_area + self.gt_area[gt_index] - inter)
        return _ratio(inter, union)


def mask_batch(
    det_masks: Sequence[Tensor],
    gt_masks: Sequence[Tensor],
    det_labels: Tensor | None = None,
    gt_labels: Tensor | None = None,
    method: MaskMethod = "auto",
) -> MaskBatch:
    """Areas of a batch's masks and the intersections of its (detection, GT) pairs, image by image.

    ``det_masks[i]`` (n_i, H_i, W_i) and ``gt_masks[i]`` (m_i, H_i, W_i) are the bool masks of
    image i (already checked, e.g. with :func:`check_masks`); images may differ in size. With
    ``det_labels`` (D,) and ``gt_labels`` (G,) (flattened over the batch) only pairs of the same
    label are prepared, which is all that COCO matching per class needs; otherwise every pair of
    an image. One image is processed at a time, so the extra memory is that of one image's
    packed masks (packed path) or its float32 pixel chunks (matmul path), not the batch's.

    Example:
        >>> import torch
        >>> det = torch.zeros(2, 3, 3, dtype=torch.bool); det[0, :2, :2] = True; det[1, 2] = True
        >>> gt = torch.zeros(1, 3, 3, dtype=torch.bool); gt[0, 1:, 1:] = True
        >>> batch = mask_batch([det], [gt])
        >>> batch.det_area.tolist(), batch.pair_iou(torch.tensor([0, 1]), torch.tensor([0, 0]),
        ...                                         torch.tensor([False])).tolist()
        ([4, 3], [0.14285714285714285, 0.4])
    """
    if len(det_masks) != len(gt_masks):
        raise ValueError(
            f"need one mask tensor per image on both sides, got {len(det_masks)} and {len(gt_masks)}"
        )
    tensors = [*det_masks, *gt_masks]
    device = tensors[0].device if tensors else torch.device("cpu")
    resolved = _resolve(method, device)
    d_counts = [int(m.shape[0]) for m in det_masks]
    g_counts = [int(m.shape[0]) for m in gt_masks]
    n_gt = sum(g_counts)
    d_first = np.cumsum([0, *d_counts])[:-1].tolist()
    g_first = np.cumsum([0, *g_counts])[:-1].tolist()
    dl = det_labels.cpu().numpy() if det_labels is not None else None
    gl = gt_labels.cpu().numpy() if gt_labels is not None else None

    det_areas: list[Tensor] = []
    gt_areas: list[Tensor] = []
    keys: list[np.ndarray] = []
    counts: list[Tensor] = []
    for i, (dm, gm) in enumerate(zip(det_masks, gt_masks, strict=True)):
        n, m = d_counts[i], g_counts[i]
        # the pairs of this image, in (detection, GT) order: their keys come out sorted
        if n and m:
            if dl is not None and gl is not None:
                same = dl[d_first[i] : d_first[i] + n, None] == gl[None, g_first[i] : g_first[i] + m]
                local_d, local_g = np.nonzero(same)
            else:
                local_d, local_g = np.divmod(np.arange(n * m, dtype=np.int64), m)
        else:
            local_d = local_g = np.zeros(0, dtype=np.int64)
        keys.append((local_d + d_first[i]) * n_gt + (local_g + g_first[i]))
        if resolved == "packed":
            pd, pg = pack_masks(dm), pack_masks(gm)
            det_areas.append(torch.from_numpy(_popcount_rows(pd)))
            gt_areas.append(torch.from_numpy(_popcount_rows(pg)))
            counts.append(torch.from_numpy(_packed_pair_counts(pd, local_d, pg, local_g)))
        else:
            det_areas.append(dm.flatten(1).sum(1, dtype=torch.int64))
            gt_areas.append(gm.flatten(1).sum(1, dtype=torch.int64))
            if local_d.size:  # only the pairs asked for (every pair of the image without labels)
                block = _matmul_intersection(dm, gm)
                pairs = (torch.from_numpy(local_d).to(device), torch.from_numpy(local_g).to(device))
                counts.append(block[pairs])

    def cat(parts: list[Tensor]) -> Tensor:
        return torch.cat(parts).to(device) if parts else torch.zeros(0, dtype=torch.int64, device=device)

    return MaskBatch(
        det_area=cat(det_areas),
        gt_area=cat(gt_areas),
        method=resolved,
        pair_keys=torch.from_numpy(np.concatenate(keys) if keys else np.zeros(0, np.int64)).to(device),
        pair_counts=cat(counts),
    )
