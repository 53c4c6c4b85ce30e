"""Training-run figures: learning-rate schedule and epoch durations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from objdet.plotting._common import figure_of, new_figure, to_numpy

__all__ = ["plot_epoch_durations", "plot_lr_schedule"]


def plot_lr_schedule(
    history: Mapping[str, Sequence[Sequence[float]]],
    epoch_starts: Sequence[float] | None = None,
    title: str = "Learning-rate schedule",
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """One step line per key of ``history`` (``{name: [(step, lr), ...]}``); log scale over a wide range.

    ``epoch_starts``: the optimizer step at which each epoch began, drawn as faint vertical
    lines with the epoch numbers on a top axis.

    Example:
        >>> fig, ax = plot_lr_schedule({"lr/opt0-SGD/pg0": [(0, 0.1), (10, 0.05), (20, 0.01)]})
        >>> ax.get_yscale()
        'linear'
    """
    fig, ax = new_figure((7.0, 3.8)) if ax is None else (figure_of(ax), ax)
    positive: list[np.ndarray] = []
    for i, (name, points) in enumerate(history.items()):
        arr = to_numpy(points).reshape(-1, 2)
        if arr.shape[0] == 0:
            continue
        steps, values = arr[:, 0], arr[:, 1]
        style = "-" if i < 10 else "--"
        ax.plot(steps, values, style, drawstyle="steps-post", linewidth=1.6, color=f"C{i % 10}", label=name)
        if arr.shape[0] == 1:
            ax.plot(steps, values, "o", color=f"C{i % 10}", markersize=4)
        positive.append(values[np.isfinite(values)])
    vals = np.concatenate(positive) if positive else np.zeros(0)
    if vals.size and vals.min() > 0 and vals.max() / vals.min() > 30:
        ax.set_yscale("log")
    if not vals.size:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, linewidth=0.6, which="both")
    if epoch_starts is not None and len(epoch_starts) > 1:
        starts = np.asarray(epoch_starts, dtype=np.float64)
        for x in starts[1:]:
            ax.axvline(x, color="0.6", linewidth=0.6, alpha=0.5, zorder=0)
        top = ax.secondary_xaxis("top")
        every = max(1, int(np.ceil(starts.size / 12)))
        top.set_xticks(starts[::every], [str(i) for i in range(0, starts.size, every)])
        top.set_xlabel("epoch", fontsize=9)
        top.tick_params(labelsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8, loc="best")
    return fig, ax


def plot_epoch_durations(
    train_seconds: Any,
    val_seconds: Any = None,
    epochs: Any = None,
    title: str = "Epoch durations",
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """Stacked bars per epoch: training time and validation time (seconds), with the mean drawn.

    Example:
        >>> fig, ax = plot_epoch_durations([3.0, 2.5, 2.6], [0.5, 0.4, 0.4])
        >>> ax.get_ylabel()
        'seconds'
    """
    train = to_numpy(train_seconds).reshape(-1)
    val = np.zeros_like(train) if val_seconds is None else to_numpy(val_seconds).reshape(-1)
    if val.shape != train.shape:
        raise ValueError(
            f"`val_seconds` has {val.size} entries for {train.size} epochs; expected equal counts"
        )
    x = np.arange(train.size) if epochs is None else to_numpy(epochs).reshape(-1)
    fig, ax = new_figure((7.0, 3.6)) if ax is None else (figure_of(ax), ax)
    ax.bar(x, train, color="#3b75af", label="train")
    if val_seconds is not None:
        ax.bar(x, val, bottom=train, color="#f0a03c", label="validation")
    total = train + val
    if total.size:
        ax.axhline(
            float(total.mean()),
            color="0.3",
            linestyle="--",
            linewidth=1.0,
            label=f"mean {total.mean():.3g} s",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds")
    ax.set_title(title + (f" (total {total.sum():.1f} s)" if total.size else ""))
    if train.size <= 30:
        ax.set_xticks(x)
    if total.size:
        ax.set_ylim(0, float(np.nanmax(total)) * 1.22)  # room for the legend above the bars
    ax.grid(axis="y", alpha=0.3, linewidth=0.6)
    ax.legend(frameon=False, fontsize=8, loc="upper left", ncols=3)
    return fig, ax
