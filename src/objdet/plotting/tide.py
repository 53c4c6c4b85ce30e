"""TIDE's error breakdown as a bar chart: the dAP of each main and special error type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from objdet.plotting._common import figure_of, new_figure, to_numpy

__all__ = ["TIDE_COLORS", "TIDE_LABELS", "plot_tide"]

#: the label of each bar (tidecv's six main error types, then its two special ones)
TIDE_LABELS = {
    "cls": "Cls (classification)",
    "loc": "Loc (localisation)",
    "both": "Both (cls and loc)",
    "dupe": "Dupe (duplicate)",
    "bkg": "Bkg (background)",
    "miss": "Miss (missed GT)",
    "fp": "FP (all false positives)",
    "fn": "FN (all false negatives)",
}
#: one colour per error type (tidecv's palette for the main ones, greys for the special ones)
TIDE_COLORS = {
    "cls": "#e05c5c",
    "loc": "#f0a43c",
    "both": "#c66bc1",
    "dupe": "#5aa9a0",
    "bkg": "#4c72b0",
    "miss": "#8c6d5a",
    "fp": "#7f7f7f",
    "fn": "#b3b3b3",
}
_MAIN = ("cls", "loc", "both", "dupe", "bkg", "miss")
_SPECIAL = ("fp", "fn")


def _value(values: Mapping[str, Any], key: str) -> float:
    if key not in values:
        raise ValueError(f"`errors` has no '{key}' (keys seen: {sorted(values)})")
    v = float(to_numpy(values[key]).reshape(-1)[0])
    if not np.isfinite(v):
        raise ValueError(f"`errors['{key}']` must be a finite number, got {v}")
    return v


def plot_tide(
    errors: Mapping[str, Any],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    details: str | None = None,
) -> tuple[Figure, Axes]:
    """The dAP of TIDE's error types as horizontal bars, the six main ones above the two special ones.

    Args:
        errors: dAP in AP points per error type, keyed ``cls loc both dupe bkg miss fp fn``
            (also accepted: :class:`~objdet.training.metrics.TIDE`'s ``main_*`` / ``special_*``
            keys); floats or 0-d tensors.
        title: default "TIDE: dAP of each error type".
        details: a line under the title, e.g. the thresholds and the AP.

    Every bar is labelled with its value (two decimals, as tidecv prints them); the largest
    main error is drawn with a darker edge. The x axis starts at 0 and leaves room for the labels.

    Example:
        >>> from objdet.plotting.tide import plot_tide
        >>> errors = dict(cls=3.1, loc=6.0, both=0.5, dupe=0.2, bkg=4.0, miss=2.2, fp=15.0, fn=9.0)
        >>> fig, ax = plot_tide(errors)
        >>> [t.get_text() for t in ax.get_yticklabels()][:2]
        ['Cls (classification)', 'Loc (localisation)']
    """
    plain = {k.removeprefix("main_").removeprefix("special_"): v for k, v in errors.items()}
    keys = (*_MAIN, *_SPECIAL)
    vals = np.array([_value(plain, k) for k in keys])
    fig, ax = new_figure((7.0, 4.2)) if ax is None else (figure_of(ax), ax)
    y = np.array([0, 1, 2, 3, 4, 5, 6.6, 7.6])
    colors = [TIDE_COLORS[k] for k in keys]
    bars = ax.barh(y, np.maximum(vals, 0.0), color=colors, height=0.72)
    worst = int(np.argmax(vals[:6]))
    if vals[worst] > 0:
        bars[worst].set_edgecolor("0.15")
        bars[worst].set_linewidth(1.4)
    top = max(float(vals.max()), 1e-9)
    for yi, v in zip(y, vals, strict=True):
        ax.text(max(v, 0.0) + top * 0.015, yi, f"{v:.2f}", va="center", fontsize=9)
    ax.set_yticks(y)
    ax.set_yticklabels([TIDE_LABELS[k] for k in keys], fontsize=9)
    ax.invert_yaxis()
    ax.axhline(5.8, color="0.7", linewidth=0.8)
    ax.set_xlim(min(0.0, float(vals.min()) * 1.1), top * 1.15 if top > 1e-9 else 1.0)
    ax.set_xlabel("dAP (AP points gained by fixing every error of the type)")
    head = title if title is not None else "TIDE: dAP of each error type"
    ax.set_title(head if details is None else f"{head}\n{details}", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return fig, ax
