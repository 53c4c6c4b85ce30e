"""Detection figures: confusion matrix, PR curves, precision/recall/F1 vs confidence, per-class AP bars.

Every function takes plain data (tensors, arrays or lists) and returns ``(fig, ax)``; pass
``ax`` to draw into an existing axes. No pyplot state is touched. Empty inputs give a figure
that says "no data" instead of an error, so callbacks can always log something.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize as ColorNormalize
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from objdet.functional.confusion import normalize_confusion_matrix
from objdet.functional.curves import DetectionCurves
from objdet.plotting._common import figure_of, new_figure, to_numpy

__all__ = [
    "plot_ap_bars",
    "plot_confidence_curves",
    "plot_confusion_matrix",
    "plot_detection_curves",
    "plot_pr_curves",
]

_MEAN = "#1f3f73"
_FAINT_MANY = "#5b84b1"
_BEST = "#d62728"
_MAX_LEGEND_CLASSES = 12


def _no_data(ax: Axes, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=13, color="0.45")


def _names(class_names: Sequence[str] | None, n: int, what: str = "class_names") -> list[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"`{what}` must have {n} entries (one per class), got {len(names)}")
    return names


def _class_colors(n: int) -> list[Any]:
    """Distinct colours for a few classes, one muted colour for many (they are drawn faint)."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    return [_FAINT_MANY] * n


# --------------------------------------------------------------------------- confusion matrix


def plot_confusion_matrix(
    matrix: Any,
    class_names: Sequence[str] | None = None,
    normalize: Literal["true", "pred", "all"] | None = None,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    details: str | None = None,
    background_label: str = "background",
    annotate: bool | None = None,
    cmap: str = "Blues",
) -> tuple[Figure, Axes]:
    """Detection confusion matrix as a heatmap: rows ground truth, columns predictions, last = background.

    Args:
        matrix: (C + 1, C + 1) counts from :class:`objdet.training.metrics.ConfusionMatrix`.
        class_names: C names (default ``0..C-1``); the last row/column is ``background_label``.
        normalize: None (counts), "true" (rows sum to 1), "pred" (columns) or "all".
        ax: draw into this axes; by default a new figure whose size grows with C.
        title: default "Confusion matrix (<normalisation>)", with ``details`` on a second line.
        details: extra text for the default title, e.g. the thresholds.
        annotate: write the value in every non-zero cell (default: when C + 1 <= 25).
        cmap: matplotlib colour map; zero cells are left white.

    Counts use a square-root colour scale so that small off-diagonal counts stay visible next to
    a large diagonal; normalised values use a linear 0..1 scale. With many classes the tick
    labels shrink and turn vertical, and beyond 100 classes only every k-th is written.

    Example:
        >>> from objdet.plotting.detection import plot_confusion_matrix
        >>> fig, ax = plot_confusion_matrix([[5, 1, 0], [0, 3, 2], [1, 0, 0]], ["cat", "dog"])
        >>> [t.get_text() for t in ax.get_xticklabels()]
        ['cat', 'dog', 'background']
    """
    m = to_numpy(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"`matrix` must be a square (C + 1, C + 1) array with C >= 1, got shape {m.shape}")
    n = m.shape[0]
    labels = [*_names(class_names, n - 1), background_label]
    values = to_numpy(normalize_confusion_matrix(torch.from_numpy(m), normalize))
    cell = 0.55 if n <= 10 else 0.36 if n <= 25 else 0.2 if n <= 100 else 0.12
    side = min(max(n * cell + 2.6, 4.8), 30.0)
    fig, ax = new_figure((side + 1.2, side)) if ax is None else (figure_of(ax), ax)
    mode = {None: "counts", "true": "normalised by ground truth (rows)", "pred": "normalised by prediction"}
    mode["all"] = "normalised by total"
    big = 13 if n > 25 else 11
    default = f"Confusion matrix ({mode[normalize]})" + (f"\n{details}" if details else "")
    ax.set_title(title if title is not None else default, fontsize=big)
    ax.set_xlabel("predicted", fontsize=big)
    ax.set_ylabel("ground truth", fontsize=big)
    if not (m.sum() > 0):
        ax.set_xticks([])
        ax.set_yticks([])
        _no_data(ax, "no data: no ground truth and no counted detection")
        return fig, ax

    vmax = float(values.max())
    norm: ColorNormalize = (
        ColorNormalize(vmin=0.0, vmax=1.0) if normalize is not None else PowerNorm(0.5, vmin=0.0, vmax=vmax)
    )
    shown = np.ma.masked_where(values == 0, values)
    colormap = _colormap(cmap)
    im = ax.imshow(shown, cmap=colormap, norm=norm, interpolation="nearest", aspect="equal")
    cbar = fig.colorbar(im, ax=ax, shrink=0.8 if n > 10 else 0.9, pad=0.02)
    cbar.set_label("fraction" if normalize is not None else "count")

    # background row and column set apart; the (background, background) cell does not exist
    ax.add_patch(
        Rectangle((n - 1.5, n - 1.5), 1, 1, facecolor="0.93", edgecolor="0.75", hatch="//", linewidth=0)
    )
    ax.axhline(n - 1.5, color="0.35", linewidth=1.0)
    ax.axvline(n - 1.5, color="0.35", linewidth=1.0)
    font = 10 if n <= 10 else 8 if n <= 25 else 7
    step = 1 if n <= 100 else int(np.ceil(n / 100))
    ticks = sorted({*range(0, n - 1, step), n - 1})
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels([labels[i] for i in ticks], rotation=45 if n <= 12 else 90, fontsize=font)
    ax.set_yticklabels([labels[i] for i in ticks], fontsize=font)
    if n <= 12:
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
            t.set_rotation_mode("anchor")
    for tick_labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        tick_labels[-1].set_fontstyle("italic")
    ax.tick_params(length=2 if n > 25 else 3.5)
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="0.92", linewidth=0.5 if n <= 25 else 0.2)
    ax.tick_params(which="minor", length=0)

    if annotate is None:
        annotate = n <= 25
    if annotate:
        text_size = 10 if n <= 8 else 8 if n <= 15 else 6
        for i, j in zip(*np.nonzero(values), strict=True):
            v = values[i, j]
            text = f"{v:.2f}" if normalize is not None else f"{round(v)}"
            dark = norm(v) > 0.55
            ax.text(
                j, i, text, ha="center", va="center", fontsize=text_size, color="white" if dark else "0.1"
            )
    return fig, ax


def _colormap(name: str) -> Any:
    return colormaps[name].with_extremes(bad="white")


# --------------------------------------------------------------------------- PR curves


def plot_pr_curves(
    recall: Any,
    precision: Any,
    ap: Any = None,
    class_names: Sequence[str] | None = None,
    *,
    iou_threshold: float | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> tuple[Figure, Axes]:
    """Precision-recall curve of every class (faint) and their mean (bold), AP in the legend.

    Args:
        recall: (R,) recall points.
        precision: (K, R) precision per class at those points; rows of -1 (classes without GT,
            pycocotools' convention) are left out.
        ap: (K,) AP per class (default: mean of each row); the mean curve's label shows their mean.
        class_names: K names for the legend (default ``0..K-1``); the legend lists the classes
            only when there are at most 12 of them.
        iou_threshold: written in the title and the legend (e.g. mAP@0.5).

    Example:
        >>> from objdet.plotting.detection import plot_pr_curves
        >>> precision = [[1.0, 1.0, 0.5], [1.0, 0.5, 0.0]]
        >>> fig, ax = plot_pr_curves([0.0, 0.5, 1.0], precision, class_names=["a", "b"])
        >>> len(ax.get_lines()), ax.get_xlabel()
        (3, 'recall')
    """
    r = to_numpy(recall).reshape(-1)
    p = to_numpy(precision).reshape(-1, r.size) if r.size else np.zeros((0, 0))
    k = p.shape[0]
    names = _names(class_names, k)
    a = to_numpy(ap).reshape(-1) if ap is not None else np.where((p > -1).all(1), p.mean(1), -1.0)
    if a.size != k:
        raise ValueError(f"`ap` must have {k} entries (one per row of `precision`), got {a.size}")
    fig, ax = new_figure((5.8, 5.6)) if ax is None else (figure_of(ax), ax)
    at = f"@{iou_threshold:g}" if iou_threshold is not None else ""
    default = "Precision-recall curves" + (f" (IoU ≥ {iou_threshold:g})" if iou_threshold is not None else "")
    ax.set_title(title if title is not None else default)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3, linewidth=0.6)
    defined = np.asarray((p > -1).all(1) if k else np.zeros(0, dtype=bool), dtype=bool)
    if not defined.any():
        _no_data(ax, "no data: no class with ground truth")
        return fig, ax
    n_defined = int(defined.sum())
    few = n_defined <= _MAX_LEGEND_CLASSES
    colors = _class_colors(k)
    order = np.argsort(-a, kind="stable")
    for i in order:
        if not defined[i] or n_defined == 1:  # one class: its curve is the bold one
            continue
        if few:
            ax.plot(r, p[i], color=colors[i], linewidth=1.3, alpha=0.75, label=f"{names[i]}  {a[i]:.3f}")
        else:
            ax.plot(r, p[i], color=colors[i], linewidth=0.7, alpha=0.25)
    mean_curve = p[defined].mean(0)
    mean_ap = float(a[defined].mean())
    label = f"all classes  mAP{at} = {mean_ap:.3f}"
    if n_defined == 1:
        label = f"{names[int(np.flatnonzero(defined)[0])]}  AP{at} = {mean_ap:.3f}"
    elif not few:
        label += f"\n({n_defined} classes, thin lines)"
    ax.plot(r, mean_curve, color=_MEAN, linewidth=3.0, label=label)
    handles, labels = ax.get_legend_handles_labels()
    handles, labels = handles[-1:] + handles[:-1], labels[-1:] + labels[:-1]  # the mean first
    ax.legend(handles, labels, loc="lower left", fontsize=8 if few else 9, frameon=True, framealpha=0.85)
    return fig, ax


# --------------------------------------------------------------------------- confidence curves


def plot_confidence_curves(
    confidence: Any,
    values: Any,
    overall: Any = None,
    *,
    metric: str = "F1",
    class_names: Sequence[str] | None = None,
    best_confidence: float | None = None,
    overall_label: str = "all classes",
    ax: Axes | None = None,
    title: str | None = None,
) -> tuple[Figure, Axes]:
    """A metric (F1, precision or recall) as a function of the confidence threshold.

    Args:
        confidence: (S,) increasing thresholds.
        values: (K, S) per class (faint lines; NaN breaks a line where the value is undefined).
        overall: (S,) the pooled curve (bold).
        metric: the y-axis name ("F1", "precision", "recall", ...).
        class_names: K names (legend only with at most 12 classes).
        best_confidence: the threshold to mark on the overall curve (e.g. the best-F1 one;
            on precision and recall curves it shows the values at that threshold).
        overall_label: legend label of the bold curve.

    Example:
        >>> from objdet.plotting.detection import plot_confidence_curves
        >>> per_class = [[0.5, 0.8, 0.0], [0.4, 0.6, 0.2]]
        >>> fig, ax = plot_confidence_curves([0.0, 0.5, 1.0], per_class, [0.45, 0.7, 0.1],
        ...                                  best_confidence=0.5, class_names=["cat", "dog"])
        >>> ax.get_ylabel(), len(ax.get_lines())  # 2 classes, overall, best point, its vertical line
        ('F1', 5)
    """
    x = to_numpy(confidence).reshape(-1)
    v = to_numpy(values).reshape(-1, x.size) if x.size else np.zeros((0, 0))
    k = v.shape[0]
    names = _names(class_names, k)
    o = to_numpy(overall).reshape(-1) if overall is not None else None
    if o is not None and o.size != x.size:
        raise ValueError(f"`overall` must have {x.size} entries (one per threshold), got {o.size}")
    fig, ax = new_figure((6.8, 4.6)) if ax is None else (figure_of(ax), ax)
    ax.set_title(title if title is not None else f"{metric[:1].upper()}{metric[1:]} vs confidence threshold")
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, linewidth=0.6)
    has_data = x.size > 0 and (np.isfinite(v).any() or (o is not None and np.isfinite(o).any()))
    if not has_data:
        _no_data(ax)
        return fig, ax
    ax.set_xlim(float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1.0)
    few = k <= _MAX_LEGEND_CLASSES
    colors = _class_colors(k)
    single = k == 1 and o is not None  # one class: the overall curve is that class's curve
    for i in range(k):
        if not np.isfinite(v[i]).any() or single:
            continue
        if few:
            ax.plot(x, v[i], color=colors[i], linewidth=1.2, alpha=0.7, label=names[i])
        else:
            ax.plot(x, v[i], color=colors[i], linewidth=0.7, alpha=0.22)
    if o is not None:
        label = overall_label if few else f"{overall_label}\n({k} classes, thin lines)"
        if single:
            label = names[0]
        ax.plot(x, o, color=_MEAN, linewidth=3.0, label=label)
        if best_confidence is not None and np.isfinite(best_confidence):
            idx = int(np.argmin(np.abs(x - best_confidence)))
            if np.isfinite(o[idx]):
                ax.plot(
                    [x[idx]],
                    [o[idx]],
                    marker="o",
                    markersize=8,
                    color=_BEST,
                    zorder=5,
                    linestyle="none",
                    label=f"{metric} {o[idx]:.3f} at {x[idx]:.3g} "
                    + ("(best)" if metric == "F1" else "(best F1)"),
                )
                ax.axvline(x[idx], color=_BEST, linewidth=0.9, linestyle="--", alpha=0.7)
    handles, labels = ax.get_legend_handles_labels()
    if o is not None:
        n_tail = 2 if len(handles) >= 2 and labels[-1].startswith(metric) else 1
        handles = handles[-n_tail:] + handles[:-n_tail]
        labels = labels[-n_tail:] + labels[:-n_tail]
    if handles:
        ax.legend(handles, labels, loc="best", fontsize=8, frameon=True, framealpha=0.85)
    return fig, ax


# --------------------------------------------------------------------------- AP bars


def plot_ap_bars(
    ap: Any,
    class_names: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str = "AP",
) -> tuple[Figure, Axes]:
    """Per-class AP as horizontal bars sorted from best to worst, with the mean marked.

    Args:
        ap: (K,) AP per class; values < 0 (pycocotools' -1 for classes without GT) or NaN are
            listed as "no GT" at the bottom, without a bar.
        class_names: K names (default ``0..K-1``).
        xlabel: axis label, e.g. "AP@0.5".

    The figure grows with the number of classes (about 0.17 inch per bar beyond 20).

    Example:
        >>> from objdet.plotting.detection import plot_ap_bars
        >>> fig, ax = plot_ap_bars([0.5, 0.9, -1.0], ["cat", "dog", "eel"])
        >>> [t.get_text() for t in ax.get_yticklabels()]
        ['dog', 'cat', 'eel (no GT)']
    """
    a = to_numpy(ap).reshape(-1)
    names = _names(class_names, a.size)
    defined = np.isfinite(a) & (a >= 0)
    order = [*np.argsort(-np.where(defined, a, -np.inf), kind="stable")]
    order = [i for i in order if defined[i]] + [i for i in order if not defined[i]]
    n = a.size
    height = max(3.0, 0.17 * n + 1.4) if n > 12 else max(3.0, 0.32 * n + 1.4)
    fig, ax = new_figure((7.0, min(height, 40.0))) if ax is None else (figure_of(ax), ax)
    ax.set_title(title if title is not None else "Average precision per class")
    ax.set_xlabel(xlabel)
    if not defined.any():
        ax.set_yticks([])
        _no_data(ax, "no data: no class with ground truth" if n else "no data")
        return fig, ax
    y = np.arange(n)
    vals = np.where(defined, a, 0.0)[order]
    cmap = _colormap("viridis")
    colors = [cmap(0.15 + 0.7 * v) for v in vals]
    ax.barh(y, vals, color=colors, height=0.75)
    ax.set_yticks(y)
    font = 9 if n <= 25 else 7
    ax.set_yticklabels([names[i] if defined[i] else f"{names[i]} (no GT)" for i in order], fontsize=font)
    ax.invert_yaxis()
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1.0)
    mean = float(a[defined].mean())
    ax.axvline(mean, color=_BEST, linestyle="--", linewidth=1.2, label=f"mean {mean:.3f}")
    if n <= 40:
        for yi, v, i in zip(y, vals, order, strict=True):
            if defined[i]:  # inside the end of a long bar (so it stays in the axes), else after it
                inside = v > 0.88
                ax.text(
                    float(v) - 0.01 if inside else float(v) + 0.01,
                    float(yi),
                    f"{v:.3f}",
                    va="center",
                    ha="right" if inside else "left",
                    fontsize=font - 1,
                    color="0.1" if inside else "0.2",
                    # drawn over the mean line, which stays visible between the bars
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.6, "linewidth": 0},
                )
    ax.grid(axis="x", alpha=0.3, linewidth=0.6)
    # above the top right corner of the axes: never over a bar or its value
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False, borderaxespad=0.1)
    return fig, ax


# --------------------------------------------------------------------------- dispatcher

CurveKind = Literal["pr", "f1", "precision", "recall", "ap"]


def plot_detection_curves(
    curves: DetectionCurves,
    kind: CurveKind = "pr",
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """Draw one view of a :class:`~objdet.functional.curves.DetectionCurves` (from ``metric.curves()``).

    Args:
        curves: the curves.
        kind: "pr" (precision-recall per class), "f1", "precision" or "recall" (vs confidence,
            best-F1 threshold marked) or "ap" (per-class AP bars).
        class_names: names indexed by class id (``class_names[c]`` for class id c), e.g. all
            80 COCO names; default: the ids.
    """
    ids = curves.classes.tolist()
    if class_names is not None:
        if ids and (min(ids) < 0 or max(ids) >= len(class_names)):
            raise ValueError(
                f"`class_names` has {len(class_names)} names, the curves have class ids "
                f"{min(ids)}..{max(ids)}"
            )
        names = [str(class_names[i]) for i in ids]
    else:
        names = [str(i) for i in ids]
    t = curves.iou_threshold
    if kind == "pr":
        return plot_pr_curves(
            curves.recall_points, curves.pr_precision, curves.ap, names, iou_threshold=t, ax=ax
        )
    if kind == "ap":
        return plot_ap_bars(curves.ap, names, ax=ax, xlabel=f"AP@{t:g}", title=f"AP per class (IoU ≥ {t:g})")
    if kind in ("f1", "precision", "recall"):
        values, overall = {
            "f1": (curves.f1, curves.overall_f1),
            "precision": (curves.precision, curves.overall_precision),
            "recall": (curves.recall, curves.overall_recall),
        }[kind]
        metric = "F1" if kind == "f1" else kind
        best = float(curves.best_confidence)
        return plot_confidence_curves(
            curves.confidence,
            values,
            overall,
            metric=metric,
            class_names=names,
            best_confidence=best,
            overall_label=f"all classes ({curves.average})",
            ax=ax,
            title=f"{metric[:1].upper()}{metric[1:]} vs confidence (IoU ≥ {t:g})",
        )
    raise ValueError(f"`kind` must be one of 'pr', 'f1', 'precision', 'recall', 'ap', got {kind!r}")
