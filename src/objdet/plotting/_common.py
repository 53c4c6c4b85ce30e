"""Helpers shared by the renderers: array conversion and figure creation without pyplot."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def to_numpy(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """numpy array from a numpy array, a list or a torch tensor (any device)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


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
