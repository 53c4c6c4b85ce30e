"""Anomaly detection figures: score histograms and three-panel anomaly heatmaps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from objdet.plotting._common import figure_of, new_figure, to_numpy

__all__ = ["plot_anomaly_heatmap", "plot_score_histogram"]

_NORMAL = "#3b75af"
_ANOMALOUS = "#d62728"

_STAT_LABELS = {
    "auroc": "AUROC",
    "average_precision": "AP",
    "best_f1": "best F1",
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "mean": "mean",
    "std": "std",
    "min": "min",
    "max": "max",
}


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][min(np.searchsorted(cum, q * cum[-1]), len(values) - 1)])


def plot_score_histogram(
    normal: Any,
    anomalous: Any = None,
    *,
    normal_weights: Any = None,
    anomalous_weights: Any = None,
    threshold: float | None = None,
    stats: Mapping[str, float] | None = None,
    bins: int = 80,
    clip_quantile: float = 0.001,
    log_scale: bool = False,
    normal_label: str = "normal",
    anomalous_label: str = "anomalous",
    title: str = "Anomaly score distribution",
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """Histogram of normal vs anomalous scores, each normalised to its own total.

    ``normal`` / ``anomalous``: 1-D scores (or bin centres with ``*_weights`` counts, as the
    metrics pass them). Values outside the ``[clip_quantile, 1 - clip_quantile]`` range of all
    scores are gathered into the outermost bars (noted in the legend). ``threshold`` draws a
    vertical line, ``stats`` a box of named values (e.g. AUROC, AP, quantiles).
    """
    groups: list[tuple[np.ndarray, np.ndarray, str, str]] = []
    for values, weights, label, color in (
        (normal, normal_weights, normal_label, _NORMAL),
        (anomalous, anomalous_weights, anomalous_label, _ANOMALOUS),
    ):
        if values is None:
            continue
        v = to_numpy(values).reshape(-1)
        w = np.ones_like(v) if weights is None else to_numpy(weights).reshape(-1)
        keep = np.isfinite(v) & (w > 0)
        groups.append((v[keep], w[keep], label, color))
    fig, ax = new_figure((7.0, 4.2)) if ax is None else (figure_of(ax), ax)
    all_v = np.concatenate([g[0] for g in groups]) if groups else np.zeros(0)
    all_w = np.concatenate([g[1] for g in groups]) if groups else np.zeros(0)
    clipped = False
    if all_v.size:
        lo = _weighted_quantile(all_v, all_w, clip_quantile)
        hi = _weighted_quantile(all_v, all_w, 1 - clip_quantile)
        if threshold is not None and np.isfinite(threshold):
            lo, hi = min(lo, threshold), max(hi, threshold)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        clipped = bool(all_v.min() < lo or all_v.max() > hi)
        edges = np.linspace(lo, hi, bins + 1)
        for v, w, label, color in groups:
            counts, _ = np.histogram(np.clip(v, lo, hi), bins=edges, weights=w)
            total = counts.sum()
            frac = counts / total if total > 0 else counts
            ax.stairs(frac, edges, fill=True, alpha=0.35, color=color)
            ax.stairs(frac, edges, color=color, linewidth=1.4, label=f"{label} (n={round(w.sum()):,})")
    else:
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes, color="0.4")
    if threshold is not None:
        ax.axvline(threshold, color="0.15", linestyle="--", linewidth=1.2, label=f"threshold = {threshold:g}")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("anomaly score (raw)" + (" — outer bars include clipped tails" if clipped else ""))
    ax.set_ylabel("fraction of class per bin")
    ax.set_title(title)
    ax.grid(alpha=0.25, linewidth=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", frameon=False, fontsize=9)
    if stats:
        lines = [
            f"{_STAT_LABELS.get(k, k)}: {v:.4g}" for k, v in stats.items() if v is not None and np.isfinite(v)
        ]
        if lines:
            ax.text(
                0.98,
                0.97,
                "\n".join(lines),
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=9,
                family="monospace",
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9},
            )
    return fig, ax


def _image_rgb(image: Any) -> np.ndarray:
    img = to_numpy(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"`image` must be (H, W), (H, W, 3) or (3, H, W), got shape {img.shape}")
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return np.stack([img] * 3, -1) if img.ndim == 2 else img


def plot_anomaly_heatmap(
    scores: Any,
    image: Any = None,
    target: Any = None,
    threshold: float = 0.5,
    *,
    title: str | None = None,
    cmap: str = "inferno",
    alpha: float = 0.5,
) -> tuple[Figure, np.ndarray]:
    """Three panels: score heatmap, heatmap over the image, binary mask ``score >= threshold``.

    ``scores`` (H, W) or (1, H, W) raw scores; ``image`` (H, W), (H, W, 3) or (3, H, W) (optional);
    ``target`` (H, W) binary ground truth (optional): drawn as a contour on the overlay, and the
    mask panel then colours true positives, false positives and false negatives. Returns
    ``(fig, axes)`` with the three axes.
    """
    s = to_numpy(scores)
    if s.ndim == 3 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 2:
        raise ValueError(f"`scores` must be (H, W) or (1, H, W), got shape {s.shape}")
    t = None
    if target is not None:
        t = to_numpy(target).reshape(s.shape) != 0
    fig = Figure(figsize=(13.0, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(1, 3))
    vmin, vmax = float(np.min(s)), float(np.max(s))

    im = axes[0].imshow(s, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    axes[0].set_title("anomaly score")
    fig.colorbar(im, ax=axes[0], shrink=0.85, label="raw score")

    base = _image_rgb(image) if image is not None else np.full((*s.shape, 3), 0.5)
    axes[1].imshow(base, interpolation="nearest")
    axes[1].imshow(s, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="bilinear")
    if t is not None and t.any() and not t.all():
        axes[1].contour(t.astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=1.2)
    axes[1].set_title("overlay" + (" (cyan: ground truth)" if t is not None else ""))

    pred = s >= threshold
    if t is None:
        axes[2].imshow(
            pred, cmap=ListedColormap(["#1a1a1a", "#f5f5f5"]), vmin=0, vmax=1, interpolation="nearest"
        )
        axes[2].set_title(f"mask: score ≥ {threshold:g}  ({pred.mean():.1%} flagged)")
    else:
        code = np.where(pred & t, 1, np.where(pred & ~t, 2, np.where(~pred & t, 3, 0)))
        colors = ["#1a1a1a", "#2ca02c", "#d62728", "#1f77b4"]
        axes[2].imshow(code, cmap=ListedColormap(colors), vmin=0, vmax=3, interpolation="nearest")
        axes[2].legend(
            handles=[Patch(color=c, label=n) for c, n in zip(colors[1:], ("TP", "FP", "FN"), strict=True)],
            loc="lower right",
            fontsize=8,
            framealpha=0.85,
        )
        axes[2].set_title(f"mask: score ≥ {threshold:g}")
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig, axes
