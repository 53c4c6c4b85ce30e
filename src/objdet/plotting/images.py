"""Images with boxes: predicted and ground-truth detections drawn on a grid of images."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib import patheffects as pe
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from objdet.ops import box_convert
from objdet.plotting._common import image_rgb, new_subplots, to_numpy

__all__ = ["draw_detections", "plot_detections"]

_GT_EDGE = "white"
_OUTLINE = [pe.withStroke(linewidth=2.6, foreground="black")]


def _class_name(label: int, class_names: Sequence[str] | Mapping[int, str] | None) -> str:
    if class_names is None:
        return str(label)
    if isinstance(class_names, Mapping):
        return str(class_names.get(label, label))
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)


def _class_color(label: int, num_colors: int) -> Any:
    cmap = colormaps["tab10" if num_colors <= 10 else "tab20"]
    return cmap(label % cmap.N)


def _field(item: Mapping[str, Any], key: str, where: str, shape: str, ndim: int) -> np.ndarray:
    if key not in item:
        raise ValueError(f"`{where}` has no key {key!r}; expected a dict with {shape}")
    value = item[key]
    arr = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if arr.dim() != ndim or (ndim == 2 and arr.numel() and arr.shape[-1] != 4):
        raise ValueError(f"`{where}[{key!r}]` must have shape {shape}, got {tuple(arr.shape)}")
    return arr.numpy() if key != "boxes" else arr.reshape(-1, 4).numpy()


def _masks(
    item: Mapping[str, Any] | None, where: str, count: int, height: int, width: int
) -> np.ndarray | None:
    """``item["masks"]`` as (count, height, width) bool, or None when the dict has no masks."""
    if item is None or item.get("masks") is None:
        return None
    value = item["masks"]
    masks = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if masks.ndim != 3 or masks.shape != (count, height, width):
        raise ValueError(
            f"`{where}['masks']` must have shape ({count}, {height}, {width}) (one mask per box, the "
            f"image's size), got {tuple(masks.shape)}"
        )
    if masks.dtype != np.bool_:
        if not (np.issubdtype(masks.dtype, np.integer) or np.issubdtype(masks.dtype, np.floating)):
            raise ValueError(f"`{where}['masks']` must be bool or 0/1 numbers, got dtype {masks.dtype}")
        masks = masks > 0.5
    return masks


def _boxes_xyxy(item: Mapping[str, Any], where: str, box_format: str) -> np.ndarray:
    boxes = _field(item, "boxes", where, "'boxes' (N, 4)", 2)
    if box_format != "xyxy" and boxes.size:
        boxes = box_convert(torch.as_tensor(boxes, dtype=torch.float64), box_format, "xyxy").numpy()
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def draw_detections(
    ax: Axes,
    image: Any,
    pred: Mapping[str, Any] | None = None,
    target: Mapping[str, Any] | None = None,
    *,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    score_threshold: float = 0.0,
    box_format: str = "xyxy",
    max_detections: int = 100,
    num_colors: int = 10,
    fontsize: float = 7.0,
    where: str = "preds[0]",
) -> tuple[int, int]:
    """Draw one image on ``ax`` with its predicted (solid) and ground-truth (dashed) boxes.

    ``image``: (H, W), (H, W, 3) or (3, H, W) (uint8 or float; float images inside [0, 1]
    are shown as they are, others are stretched to their min..max). ``pred``: ``boxes`` (N, 4),
    ``scores`` (N,), ``labels`` (N,); only the ``max_detections`` highest scores
    ``>= score_threshold`` are drawn, coloured by class with ``"name score"``. ``target``:
    ``boxes`` (M, 4), ``labels`` (M,), drawn dashed white with the class name. Boxes are in
    pixels, in ``box_format``. Where a dict also has ``masks`` ((N, H, W) / (M, H, W), bool or
    0/1, the image's size), each drawn detection's mask is filled in its class colour
    (translucent) and each ground-truth mask is outlined in white. Returns ``(detections drawn,
    ground-truth boxes drawn)``.
    """
    img = image_rgb(image, stretch=False)
    height, width = img.shape[:2]
    ax.imshow(img, interpolation="nearest")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    n_gt = 0
    if target is not None:
        gt_where = where.replace("preds", "targets")
        boxes = _boxes_xyxy(target, gt_where, box_format)
        labels = _field(target, "labels", gt_where, "'labels' (M,)", 1).astype(np.int64)
        if labels.shape[0] != boxes.shape[0]:
            raise ValueError(
                f"`{gt_where}` has {boxes.shape[0]} boxes but {labels.shape[0]} labels; expected equal counts"
            )
        gt_masks = _masks(target, gt_where, int(boxes.shape[0]), height, width)
        for mask in gt_masks if gt_masks is not None else ():
            if mask.any():  # a vector outline stays visible when the panel is smaller than the image
                ax.contour(
                    np.pad(mask, 1).astype(np.float32),
                    levels=[0.5],
                    colors="white",
                    linewidths=1.1,
                    extent=(-1.5, width + 0.5, height + 0.5, -1.5),  # padded pixel centres on the image's
                    origin="upper",
                    zorder=2,
                )
        for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
            ax.add_patch(
                Rectangle(
                    (x1, y1),
                    x2 - x1,
                    y2 - y1,
                    fill=False,
                    edgecolor=_GT_EDGE,
                    linewidth=1.3,
                    linestyle=(0, (3, 2)),
                    path_effects=_OUTLINE,
                )
            )
            ax.text(
                x1 + 1,
                y2 - 1,
                _class_name(int(label), class_names),
                color="white",
                fontsize=fontsize * 0.9,
                fontstyle="italic",
                va="bottom",
                ha="left",
                path_effects=[pe.withStroke(linewidth=2.0, foreground="black")],
                clip_on=True,
            )
        n_gt = int(boxes.shape[0])
    n_det = 0
    if pred is not None:
        boxes = _boxes_xyxy(pred, where, box_format)
        labels = _field(pred, "labels", where, "'labels' (N,)", 1).astype(np.int64)
        scores = _field(pred, "scores", where, "'scores' (N,)", 1).astype(np.float64)
        if not labels.shape[0] == scores.shape[0] == boxes.shape[0]:
            raise ValueError(
                f"`{where}` has {boxes.shape[0]} boxes, {scores.shape[0]} scores and {labels.shape[0]} "
                "labels; expected equal counts"
            )
        keep = np.flatnonzero(scores >= score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][:max_detections][::-1]  # best drawn last
        det_masks = _masks(pred, where, int(boxes.shape[0]), height, width)
        if det_masks is not None and keep.size:
            fill = np.zeros((height, width, 4))  # one RGBA layer over the image
            for i in keep:  # later (better) detections paint over earlier ones
                fill[det_masks[i]] = (*_class_color(int(labels[i]), num_colors)[:3], 0.45)
            ax.imshow(fill, interpolation="nearest", zorder=1)
        for i in keep:
            x1, y1, x2, y2 = boxes[i]
            color = _class_color(int(labels[i]), num_colors)
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.8))
            above = y1 > 0.08 * height
            ax.text(
                x1,
                y1 if above else max(y1, 0.0),
                f"{_class_name(int(labels[i]), class_names)} {scores[i]:.2f}",
                color="white",
                fontsize=fontsize,
                va="bottom" if above else "top",
                ha="left",
                bbox={"facecolor": color, "edgecolor": "none", "alpha": 0.85, "pad": 1.2},
                clip_on=True,
            )
        n_det = int(keep.size)
    ax.set_xlim(-0.5, width - 0.5)  # the mask layers must not widen the view
    ax.set_ylim(height - 0.5, -0.5)
    return n_det, n_gt


def plot_detections(
    images: Sequence[Any],
    preds: Sequence[Mapping[str, Any]] | None = None,
    targets: Sequence[Mapping[str, Any]] | None = None,
    *,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    score_threshold: float = 0.0,
    box_format: str = "xyxy",
    max_detections: int = 100,
    ncols: int = 4,
    panel_size: float = 3.0,
    title: str | None = None,
) -> tuple[Figure, np.ndarray]:
    """A grid of images with predicted boxes (solid, class colour, ``"name score"``) and GT boxes (dashed).

    ``images``: a sequence (or a (B, C, H, W) tensor) of images; ``preds`` / ``targets``: one
    dict per image in the torchmetrics detection format (``boxes``, ``scores``, ``labels`` /
    ``boxes``, ``labels``), boxes in pixels in ``box_format``. See :func:`draw_detections` for
    how each panel is drawn. Returns ``(fig, axes)`` with axes of shape (rows, ncols).

    Example:
        >>> import torch
        >>> images = torch.rand(2, 3, 32, 32)
        >>> preds = [{"boxes": torch.tensor([[4.0, 4.0, 20.0, 20.0]]), "scores": torch.tensor([0.9]),
        ...           "labels": torch.tensor([1])}] * 2
        >>> targets = [{"boxes": torch.tensor([[5.0, 5.0, 21.0, 19.0]]), "labels": torch.tensor([1])}] * 2
        >>> fig, axes = plot_detections(images, preds, targets, class_names=["cat", "dog"])
        >>> axes.shape
        (1, 2)
    """
    n = len(images)
    for name, items in (("preds", preds), ("targets", targets)):
        if items is not None and len(items) != n:
            raise ValueError(f"`{name}` has {len(items)} entries for {n} images; expected one per image")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"`ncols` must be a positive int, got {ncols!r}")
    cols = max(1, min(ncols, n))
    rows = max(1, math.ceil(n / cols))
    aspect = 1.0
    if n:
        first = np.shape(to_numpy(images[0]))
        h, w = (first[-2], first[-1]) if len(first) == 3 and first[0] in (1, 3) else first[:2]
        aspect = float(h) / float(w) if w else 1.0
    fig, axes = new_subplots(rows, cols, (panel_size * cols, panel_size * aspect * rows + 0.45))
    num_colors = 10
    if class_names is not None:
        num_colors = (
            len(class_names) if not isinstance(class_names, Mapping) else max(class_names, default=0) + 1
        )
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        n_det, n_gt = draw_detections(
            ax,
            images[k],
            None if preds is None else preds[k],
            None if targets is None else targets[k],
            class_names=class_names,
            score_threshold=score_threshold,
            box_format=box_format,
            max_detections=max_detections,
            num_colors=num_colors,
            where=f"preds[{k}]",
        )
        parts = [f"#{k}"]
        if preds is not None:
            parts.append(f"{n_det} det")
        if targets is not None:
            parts.append(f"{n_gt} GT")
        ax.set_title("  ".join(parts), fontsize=8, loc="left")
    if n == 0:
        axes.flat[0].text(0.5, 0.5, "no images", ha="center", va="center", color="0.4")
    handles = []
    if preds is not None:
        handles.append(
            Line2D(
                [],
                [],
                color="0.25",
                linewidth=1.8,
                label=f"prediction (score ≥ {score_threshold:g}, class colour)",
            )
        )
    if targets is not None:
        handles.append(
            Line2D([], [], color="0.35", linewidth=1.3, linestyle=(0, (3, 2)), label="ground truth")
        )
    if handles:
        fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    return fig, axes
