"""Anomaly detection figures: score histograms and three-panel anomaly heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from objdet.plotting._common import figure_of, image_rgb, new_figure, new_subplots, to_numpy

__all__ = ["plot_anomaly_heatmap", "plot_anomaly_heatmap_grid", "plot_score_histogram"]

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
    metrics pass them). Values outside the range from the smallest ``clip_quantile`` quantile to
    the largest ``1 - clip_quantile`` quantile of the classes are gathered into the outermost
    bars (noted in the axis label). ``threshold`` draws a vertical line, ``stats`` a box of
    named values (e.g. AUROC, AP, quantiles).
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
    clipped = False
    if all_v.size:
        # per class, so that the tail of a rare class is not clipped away by the common one
        lo = min(_weighted_quantile(v, w, clip_quantile) for v, w, _, _ in groups if v.size)
        hi = max(_weighted_quantile(v, w, 1 - clip_quantile) for v, w, _, _ in groups if v.size)
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

    base = image_rgb(image) if image is not None else np.full((*s.shape, 3), 0.5)
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


def plot_anomaly_heatmap_grid(
    scores: Sequence[Any],
    images: Sequence[Any] | None = None,
    targets: Sequence[Any] | None = None,
    threshold: float = 0.5,
    *,
    row_titles: Sequence[str] | None = None,
    title: str | None = None,
    cmap: str = "inferno",
    panel_size: float = 2.6,
) -> tuple[Figure, np.ndarray]:
    """One row per sample: image, score map (ground truth in cyan on both), mask ``score >= threshold``.

    ``scores``: a sequence (or (B, H, W) / (B, 1, H, W) tensor) of raw score maps; ``images``
    and ``targets`` (binary (H, W) masks) optional, one per map. All rows share one colour
    scale (min..max of every map), so that normal and anomalous samples can be compared; the
    mask panel colours TP / FP / FN when ``targets`` are given. Returns ``(fig, axes)`` with
    axes of shape (rows, 3).

    Example:
        >>> import torch
        >>> scores = torch.randn(2, 16, 16)
        >>> targets = torch.zeros(2, 16, 16, dtype=torch.bool); targets[1, 4:8, 4:8] = True
        >>> fig, axes = plot_anomaly_heatmap_grid(scores, targets=targets, threshold=1.0)
        >>> axes.shape
        (2, 3)
    """
    maps = []
    for k, s in enumerate(scores):
        m = to_numpy(s)
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise ValueError(f"`scores[{k}]` must be (H, W) or (1, H, W), got shape {m.shape}")
        maps.append(m)
    n = len(maps)
    for name, items in (("images", images), ("targets", targets)):
        if items is not None and len(items) != n:
            raise ValueError(f"`{name}` has {len(items)} entries for {n} score maps; expected one per map")
    finite = [m[np.isfinite(m)] for m in maps]
    pooled = np.concatenate(finite) if finite else np.zeros(0)
    vmin, vmax = (float(pooled.min()), float(pooled.max())) if pooled.size else (0.0, 1.0)
    if vmax <= vmin:
        vmax = vmin + 1.0
    fig, axes = new_subplots(max(n, 1), 3, (3 * panel_size + 0.9, panel_size * max(n, 1) + 0.5))
    colors = ["#1a1a1a", "#2ca02c", "#d62728", "#1f77b4"]
    im = None
    for k in range(n):
        s = maps[k]
        t = None if targets is None else to_numpy(targets[k]).reshape(s.shape) != 0
        base = image_rgb(images[k]) if images is not None else np.full((*s.shape, 3), 0.5)
        row = axes[k]
        row[0].imshow(base, interpolation="nearest")
        im = row[1].imshow(s, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if t is not None and t.any() and not t.all():
            for a in row[:2]:
                a.contour(t.astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=1.1)
        pred = s >= threshold
        if t is None:
            row[2].imshow(pred, cmap=ListedColormap(colors[:2]), vmin=0, vmax=1, interpolation="nearest")
        else:
            code = np.where(pred & t, 1, np.where(pred & ~t, 2, np.where(~pred & t, 3, 0)))
            row[2].imshow(code, cmap=ListedColormap(colors), vmin=0, vmax=3, interpolation="nearest")
        label = row_titles[k] if row_titles is not None else f"#{k}"
        row[0].set_ylabel(label, fontsize=8)
        row[2].set_title(f"{pred.mean():.1%} flagged", fontsize=7, loc="right")
        for a in row:
            a.set_xticks([])
            a.set_yticks([])
    if n:
        axes[0, 0].set_title("image" + (" (cyan: ground truth)" if targets is not None else ""), fontsize=9)
        axes[0, 1].set_title("anomaly score", fontsize=9)
        axes[0, 2].set_title(f"score ≥ {threshold:g}", fontsize=9, loc="left")
        if im is not None:
            shown = vmin <= threshold <= vmax
            cbar = fig.colorbar(
                im,
                ax=list(axes.ravel()),
                shrink=min(0.9, 0.25 + 0.6 / n),
                label="raw score, all rows" + (" (line: threshold)" if shown else ""),
            )
            if shown:
                cbar.ax.axhline(threshold, color="#00e5ff", linewidth=2.0)
        names = ("TP", "FP", "FN") if targets is not None else ("flagged",)
        handles = [Patch(color=c, label=name) for c, name in zip(colors[1:], names, strict=False)]
        if targets is None:
            handles = [Patch(color=colors[1], label="flagged")]
        fig.legend(handles=handles, loc="outside lower right", ncols=len(handles), fontsize=8, frameon=False)
    else:
        axes[0, 1].text(0.5, 0.5, "no samples", ha="center", va="center", color="0.4")
        for a in axes[0]:
            a.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, axes
