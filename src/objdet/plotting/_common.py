"""Helpers shared by the renderers: array conversion and figure creation without pyplot."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from objdet.functional._host import host_array


def to_numpy(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """numpy array of ``dtype`` from a numpy array, a list or a torch tensor (any device, bfloat16 too)."""
    return np.asarray(host_array(value), dtype=dtype)


def new_figure(figsize: tuple[float, float], **subplot_kw: Any) -> tuple[Figure, Axes]:
    """A standalone Agg figure with one axes (no pyplot state, nothing to close)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1, **subplot_kw)


def figure_of(ax: Axes) -> Figure:
    fig = ax.get_figure()
    if fig is None:  # pragma: no cover - an Axes always belongs to a figure here
        raise ValueError("`ax` is not attached to a figure")
    return fig  # type: ignore[return-value]


def image_rgb(image: Any, stretch: bool = True) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] from (H, W), (H, W, 1|3) or (1|3, H, W) (numpy or torch).

    ``stretch=True`` maps the image's own min..max to 0..1 (any value range). With
    ``stretch=False`` uint8 images are divided by 255, float images already inside [0, 1] are
    kept as they are, and anything else is stretched.
    """
    raw = host_array(image)
    is_uint8 = raw.dtype == np.uint8
    img = np.asarray(raw, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(
            f"`image` must be (H, W), (H, W, 1|3) or (1|3, H, W), got shape {tuple(np.shape(raw))}"
        )
    finite = img[np.isfinite(img)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if not stretch and is_uint8:
        img = img / 255.0
    elif not stretch and lo >= 0.0 and hi <= 1.0:
        pass
    else:
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    img = np.clip(np.nan_to_num(img, nan=0.0), 0.0, 1.0)
    return np.stack([img] * 3, -1) if img.ndim == 2 else img


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """Render a figure with Agg to an (H, W, 3) uint8 array, e.g. for loggers that take images."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def close_figure(fig: Figure) -> None:
    """Release a figure: from pyplot's registry if pyplot made it (never imported here), then clear it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(fig.canvas, "manager", None) is not None:
        pyplot.close(fig)
    fig.clear()


def new_subplots(
    nrows: int, ncols: int, figsize: tuple[float, float], **subplots_kw: Any
) -> tuple[Figure, np.ndarray]:
    """A standalone Agg figure with an (nrows, ncols) array of axes (no pyplot state)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots_kw)
    return fig, np.asarray(axes)
