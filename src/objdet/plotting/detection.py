"""Detection figures: confusion matrix, PR curves, precision/recall/F1 vs confidence, per-class AP bars.

Every function takes plain data (tensors, arrays or lists) and returns ``(fig, ax)``; pass
``ax`` to draw into an existing axes. No pyplot state is touched. Empty inputs give a figure
that says "no data" instead of an error, so callbacks can always log something.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, PowerNorm
from matplotlib.colors import Normalize as ColorNormalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from objdet.functional.calibration import DetectionCalibration
from objdet.functional.confusion_normalize import normalize_confusion_matrix
from objdet.functional.curves import DetectionCurves
from objdet.plotting._common import figure_of, new_figure, new_subplots, to_numpy

if TYPE_CHECKING:  # a type only: the command line's figure worker does not import numba
    from objdet.functional.bootstrap import BootstrapResult

__all__ = [
    "plot_ap_bars",
    "plot_bootstrap_intervals",
    "plot_confidence_curves",
    "plot_confusion_matrix",
    "plot_detection_curves",
    "plot_pr_curves",
    "plot_reliability_diagram",
    "plot_slice_bars",
]

_MEAN = "#1f3f73"
_FAINT_MANY = "#5b84b1"
_BEST = "#d62728"
_MAX_LEGEND_CLASSES = 12


def _classes(k: int, what: str = "classes") -> str:
    """``"1 class"``, ``"3 classes"``, ``"1 slice"``; ``what`` may carry more words ("classes with GT")."""
    if k != 1:
        return f"{k} {what}"
    first, _, rest = what.partition(" ")
    one = first[:-2] if first.endswith("sses") else first[:-1] if first.endswith("s") else first
    return f"{k} {one}{' ' + rest if rest else ''}"


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


def _top_classes(m: np.ndarray, labels: list[str], k: int) -> tuple[np.ndarray, list[str], int]:
    """Keep the k classes with the most errors (off-diagonal counts of their row and column,
    background included), in their order; the others are summed into one "other classes" row
    and column (so every row and column total is kept). Returns the matrix, labels, classes left out."""
    c = m.shape[0] - 1
    errors = m[:c, :].sum(1) + m[:, :c].sum(0) - 2 * np.diagonal(m)[:c]
    keep = np.sort(np.argsort(-errors, kind="stable")[:k])
    rest = np.setdiff1d(np.arange(c), keep)
    groups = [*([i] for i in keep), list(rest), [c]]
    out = np.array([[m[np.ix_(r, q)].sum() for q in groups] for r in groups], dtype=m.dtype)
    names = [labels[i] for i in keep] + [f"other {_classes(int(rest.size))}", labels[c]]
    return out, names, int(rest.size)


def _count_text(v: float) -> str:
    return f"{v / 1000:.0f}k" if v >= 10_000 else f"{round(v)}"


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
    max_classes: int | None = 80,
    log_scale: bool | None = None,
) -> tuple[Figure, Axes]:
    """Detection confusion matrix as a heatmap: rows ground truth, columns predictions, last = background.

    Args:
        matrix: (C + 1, C + 1) counts from :class:`objdet.training.metrics.ConfusionMatrix`.
        class_names: C names (default ``0..C-1``); the last row/column is ``background_label``.
        normalize: None (counts), "true" (each row sums to 1), "pred" (each column) or "all".
        ax: draw into this axes; by default a new figure whose size grows with the classes shown.
        title: default "Confusion matrix, <counts or what sums to 1>", then what the
            normalisation means for the background row/column, then ``details``.
        details: extra text for the default title, e.g. the thresholds.
        annotate: write the value in every non-zero cell (default: when at most 100 rows are shown).
        cmap: matplotlib colour map; zero cells are left white.
        max_classes: with more classes than this, only the ``max_classes`` classes with the
            most errors (off-diagonal counts in their row and column, background included)
            are shown, in their order; the others are summed into one "other N classes" row
            and column, so row and column totals are kept; the title says so. None: all.
        log_scale: colour counts on a log scale (default: when the largest count is at least
            100 times the smallest non-zero one, e.g. one dominant class). Otherwise counts
            use a square-root scale; normalised values a linear 0..1 scale.

    So that 80 classes stay readable the cells are about 0.3 inch (a figure of about 27 inches
    at 81 rows; save it at dpi 60-100) with every count written in it and every class named.

    Example:
        >>> from objdet.plotting.detection import plot_confusion_matrix
        >>> fig, ax = plot_confusion_matrix([[5, 1, 0], [0, 3, 2], [1, 0, 0]], ["cat", "dog"])
        >>> [t.get_text() for t in ax.get_xticklabels()]
        ['cat', 'dog', 'background']
    """
    m = to_numpy(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"`matrix` must be a square (C + 1, C + 1) array with C >= 1, got shape {m.shape}")
    if max_classes is not None and (not isinstance(max_classes, int) or max_classes < 1):
        raise ValueError(f"`max_classes` must be a positive int or None, got {max_classes!r}")
    labels = [*_names(class_names, m.shape[0] - 1), background_label]
    n_classes = m.shape[0] - 1
    left_out = 0
    if max_classes is not None and n_classes > max_classes:
        m, labels, left_out = _top_classes(m, labels, max_classes)
    n = m.shape[0]
    values = normalize_confusion_matrix(m, normalize)
    cell = 0.55 if n <= 10 else 0.4 if n <= 25 else 0.3
    side = min(max(n * cell + 2.6, 4.8), 32.0)
    fig, ax = new_figure((side + 1.2, side)) if ax is None else (figure_of(ax), ax)
    mode = {
        None: "counts",
        "true": "each row sums to 1 (normalised by row)",
        "pred": "each column sums to 1 (normalised by column)",
        "all": "all cells sum to 1 (normalised by the total)",
    }
    meaning = {
        None: "",
        "true": "a ground-truth row: where that class's objects went; "
        "the background row: how the false positives split over the predicted classes",
        "pred": "a predicted column: what that class's detections really were; "
        "the background column: how the missed objects split over the ground-truth classes",
        "all": "",
    }
    big = 13 if n > 25 else 11
    # the title is wrapped to fit: centred on the axes, which the labels and the colour bar push
    # off the figure's centre (about 1.7 inch lost), about 0.6 em per character
    chars = max(30, int((float(fig.get_size_inches()[0]) - 1.7) * 72 / (0.6 * big)))
    lines = [f"Confusion matrix, {mode[normalize]}"]
    lines += meaning[normalize].split("; ") if meaning[normalize] else []
    if left_out:
        lines.append(
            f"the {max_classes} of {n_classes} classes with the most errors; "
            f"the other {left_out} summed in one row and column"
        )
    lines += [details] if details else []
    wrapped = [part for line in lines for part in _wrap(line, chars)]
    ax.set_title(title if title is not None else "\n".join(wrapped), fontsize=big)
    ax.set_xlabel("predicted", fontsize=big)
    ax.set_ylabel("ground truth", fontsize=big)
    if not (m.sum() > 0):
        ax.set_xticks([])
        ax.set_yticks([])
        _no_data(ax, "no data: no ground truth and no counted detection")
        return fig, ax

    vmax = float(values.max())
    nonzero = values[values > 0]
    if log_scale is None:
        log_scale = normalize is None and nonzero.size > 0 and vmax >= 100 * float(nonzero.min())
    norm: ColorNormalize
    if normalize is not None:
        norm = ColorNormalize(vmin=0.0, vmax=1.0)
    elif log_scale:
        norm = LogNorm(vmin=max(float(nonzero.min()), 1.0), vmax=max(vmax, 2.0))
    else:
        norm = PowerNorm(0.5, vmin=0.0, vmax=vmax)
    shown = np.ma.masked_where(values == 0, values)
    colormap = _colormap(cmap)
    im = ax.imshow(shown, cmap=colormap, norm=norm, interpolation="nearest", aspect="equal")
    cbar = fig.colorbar(im, ax=ax, shrink=0.8 if n > 10 else 0.9, pad=0.02)
    counts = "count, log scale" if log_scale else "count, square-root scale"
    cbar.set_label("fraction" if normalize is not None else counts)

    # background row and column set apart; the (background, background) cell does not exist
    ax.add_patch(
        Rectangle((n - 1.5, n - 1.5), 1, 1, facecolor="0.93", edgecolor="0.75", hatch="//", linewidth=0)
    )
    ax.axhline(n - 1.5, color="0.35", linewidth=1.0)
    ax.axvline(n - 1.5, color="0.35", linewidth=1.0)
    if left_out:
        ax.axhline(n - 2.5, color="0.6", linewidth=0.8, linestyle=":")
        ax.axvline(n - 2.5, color="0.6", linewidth=0.8, linestyle=":")
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
        if left_out:
            tick_labels[-2].set_fontstyle("italic")
    ax.tick_params(length=2 if n > 25 else 3.5)
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="0.92", linewidth=0.5 if n <= 25 else 0.3)
    ax.tick_params(which="minor", length=0)

    if annotate is None:
        annotate = n <= 100
    if annotate:
        text_size = 10 if n <= 8 else 8 if n <= 15 else 7 if n <= 25 else 6
        for i, j in zip(*np.nonzero(values), strict=True):
            v = values[i, j]
            text = f"{v:.2f}" if normalize is not None else _count_text(v)
            dark = norm(v) > 0.55
            ax.text(
                j, i, text, ha="center", va="center", fontsize=text_size, color="white" if dark else "0.1"
            )
    return fig, ax


def _wrap(line: str, width: int) -> list[str]:
    """``line`` in lines of at most ``width`` characters, a parenthesised part kept whole when it fits."""
    if len(line) <= width:
        return [line]
    head, paren, tail = line.partition(" (")
    if paren and tail.endswith(")") and len(tail) + 1 <= width:
        return [*textwrap.wrap(head, width), "(" + tail]
    return textwrap.wrap(line, width)


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
    similarity: str = "IoU",
) -> tuple[Figure, Axes]:
    """Precision-recall curve of every class (faint) and their mean (bold), AP in the legend.

    Args:
        recall: (R,) recall points.
        precision: (K, R) precision per class at those points; rows of -1 (classes without GT,
            pycocotools' convention) are left out, and the legend says how many.
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
    default = "Precision-recall curves" + (
        f" ({similarity} ≥ {iou_threshold:g})" if iou_threshold is not None else ""
    )
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
    label = f"mean of the classes with GT  mAP{at} = {mean_ap:.3f}"
    if n_defined == 1:
        label = f"{names[int(np.flatnonzero(defined)[0])]}  AP{at} = {mean_ap:.3f}"
    elif not few:
        label += f"\n({_classes(n_defined, 'classes with GT')}, thin lines)"
    if k > n_defined:
        label += f"\n({_classes(k - n_defined, 'classes without GT')}: no curve, no AP)"
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
    classes_label: str = "classes",
    ax: Axes | None = None,
    title: str | None = None,
    best_of: str = "F1",
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
        classes_label: what the K rows are, for the legend's count (e.g. "classes with a GT
            or a detection"); rows without any finite value are not drawn and counted apart.
        best_of: what ``best_confidence`` maximises (the marker's label says "(best)" on that
            metric's own curve, "(best F1)" on the others), e.g. "F2" for an F-beta curve.

    Thresholds outside [0, 1] (raw scores: logits, distances, up to 1e300) are drawn one step
    per threshold (with :func:`~objdet.functional.curves.confidence_grid`'s thresholds, which
    follow the scores' ranks: the scores' quantiles), the tick labels giving the threshold
    values, so that a few huge scores do not squeeze the curves against one edge.

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
    values_x = x
    if x[0] < 0.0 or x[-1] > 1.0:  # not probabilities: one step per threshold, values on the ticks
        x = np.linspace(0.0, 1.0, values_x.size) if values_x.size > 1 else np.zeros(1)
        ticks = np.unique(np.round(np.linspace(0, values_x.size - 1, min(6, values_x.size))).astype(int))
        ax.set_xticks(x[ticks], [f"{values_x[i]:.3g}" for i in ticks])
        ax.set_xlabel("confidence threshold (scores outside [0, 1]: one step per threshold)")
        ax.set_xlim(0.0, 1.0)
    else:
        ax.set_xlim(float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1.0)
    few = k <= _MAX_LEGEND_CLASSES
    colors = _class_colors(k)
    single = k == 1 and o is not None  # one class: the overall curve is that class's curve
    drawn = 0
    for i in range(k):
        if not np.isfinite(v[i]).any():
            continue
        drawn += 1
        if single:
            continue
        if few:
            ax.plot(x, v[i], color=colors[i], linewidth=1.2, alpha=0.7, label=names[i])
        else:
            ax.plot(x, v[i], color=colors[i], linewidth=0.7, alpha=0.22)
    if o is not None:
        label = overall_label if few else f"{overall_label}\n({_classes(drawn, classes_label)}, thin lines)"
        if drawn < k:
            label += f"\n({_classes(k - drawn)} without any {metric} value: not drawn)"
        if single:
            label = names[0]
        ax.plot(x, o, color=_MEAN, linewidth=3.0, label=label)
        if best_confidence is not None and np.isfinite(best_confidence):
            idx = int(np.argmin(np.abs(values_x - best_confidence)))
            if np.isfinite(o[idx]):
                ax.plot(
                    [x[idx]],
                    [o[idx]],
                    marker="o",
                    markersize=8,
                    color=_BEST,
                    zorder=5,
                    linestyle="none",
                    label=f"{metric} {o[idx]:.3f} at {values_x[idx]:.3g} "
                    + ("(best)" if metric == best_of else f"(best {best_of})"),
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


_BAR = "#4c72b0"
_NO_GT = "0.55"


def plot_ap_bars(
    ap: Any,
    class_names: Sequence[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str = "AP",
    what: str = "classes",
    reference: tuple[float, str] | None = None,
) -> tuple[Figure, Axes]:
    """Per-class AP as horizontal bars sorted from best to worst, with the mean marked.

    Args:
        ap: (K,) AP per class; values < 0 (pycocotools' -1 for classes without GT) or NaN are
            listed as "(no GT)" at the bottom, in grey and without a bar (they have no AP).
        class_names: K names (default ``0..K-1``).
        xlabel: axis label, e.g. "AP@0.5".
        what: what the rows are, in the legend ("classes"; "slices" for :func:`plot_slice_bars`).
        reference: ``(value, label)`` of the dashed line, instead of the mean of the rows.

    Every class gets a row: a bar of its AP, a red ``×`` at 0 for an AP of exactly 0 (a bar
    of length 0 would not show), or a grey "(no GT)" label. The legend (below the axes in a
    figure made here, inside them otherwise) names each mark with its number of classes,
    and the mean over the classes with GT (dashed line; none with a single class). The
    figure grows with the number of classes (about 0.17 inch per bar beyond 12).

    Example:
        >>> from objdet.plotting.detection import plot_ap_bars
        >>> fig, ax = plot_ap_bars([0.5, 0.9, -1.0, 0.0], ["cat", "dog", "eel", "fox"])
        >>> [t.get_text() for t in ax.get_yticklabels()]
        ['dog', 'cat', 'fox', 'eel (no GT)']
    """
    a = to_numpy(ap).reshape(-1)
    names = _names(class_names, a.size)
    defined = np.isfinite(a) & (a >= 0)
    order = [*np.argsort(-np.where(defined, a, -np.inf), kind="stable")]
    order = [i for i in order if defined[i]] + [i for i in order if not defined[i]]
    n = a.size
    height = max(3.0, 0.17 * n + 1.9) if n > 12 else max(3.0, 0.32 * n + 1.9)
    own = ax is None
    fig, ax = new_figure((7.0, min(height, 40.0))) if ax is None else (figure_of(ax), ax)
    ax.set_title(title if title is not None else "Average precision per class")
    ax.set_xlabel(xlabel)
    if not defined.any():
        ax.set_yticks([])
        _no_data(ax, "no data: no class with ground truth" if n else "no data")
        return fig, ax
    y = np.arange(n)
    vals = np.where(defined, a, 0.0)[order]
    has_gt = defined[order]
    n_defined = int(defined.sum())
    positive = has_gt & (vals > 0)
    zero = has_gt & (vals == 0)
    ax.barh(
        y[positive],
        vals[positive],
        color=_BAR,
        height=0.75,
        label=f"AP ({_classes(int(positive.sum()), what)})",
    )
    if zero.any():
        ax.plot(
            np.zeros(int(zero.sum())),
            y[zero],
            linestyle="none",
            marker="x",
            color=_BEST,
            markersize=5,
            label=f"AP = 0 ({_classes(int(zero.sum()), what)})",
            clip_on=False,
            zorder=4,
        )
    ax.set_yticks(y)
    font = 9 if n <= 25 else 7
    ax.set_yticklabels([names[i] if defined[i] else f"{names[i]} (no GT)" for i in order], fontsize=font)
    for label, gt in zip(ax.get_yticklabels(), has_gt, strict=True):
        if not gt:
            label.set_color(_NO_GT)
    if n > n_defined:  # an empty entry, so that the legend says what the grey rows are
        ax.plot(
            [],
            [],
            linestyle="none",
            label=f"(no GT): no AP ({_classes(n - n_defined, what)}, grey, at the bottom)",
        )
    ax.invert_yaxis()
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1.0)
    if n <= 40:
        for yi, v, gt in zip(y, vals, has_gt, strict=True):
            if gt:  # after the bar, or inside its end when it reaches the right edge
                inside = float(v) > 0.88
                ax.text(
                    float(v) - 0.01 if inside else float(v) + 0.015,
                    float(yi),
                    f"{v:.3f}",
                    ha="right" if inside else "left",
                    va="center",
                    fontsize=font - 1,
                    color="white" if inside else "0.2",
                )
    ax.grid(axis="x", alpha=0.3, linewidth=0.6)
    if reference is not None:
        ax.axvline(reference[0], color=_BEST, linestyle="--", linewidth=1.2, label=reference[1])
    elif n_defined > 1:  # with one class the mean is that bar
        mean = float(a[defined].mean())
        ax.axvline(
            mean, color=_BEST, linestyle="--", linewidth=1.2, label=f"mean {mean:.3f} ({what} with GT)"
        )
    if own:
        fig.legend(loc="outside lower center", fontsize=8, ncols=2, frameon=False)
    else:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return fig, ax


def plot_slice_bars(
    slices: dict[str, dict[str, Any]],
    key: str = "map",
    *,
    overall: float | None = None,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """One bar per slice of ``MeanAveragePrecision.compute_slices()`` (``key``: "map", "map_50", ...).

    Sorted from best to worst, the value written after each bar; a slice without GT (-1) is
    listed grey at the bottom (see :func:`plot_ap_bars`). ``overall``: the value over all the
    images, drawn as a dashed line (slices may overlap: their mean means nothing).

    Example:
        >>> from objdet.plotting.detection import plot_slice_bars
        >>> fig, ax = plot_slice_bars({"day": {"map": 0.5}, "night": {"map": 0.25}})
        >>> [t.get_text() for t in ax.get_yticklabels()]
        ['day', 'night']
    """
    names = list(slices)
    values = [float(slices[n][key]) for n in names]
    label = key.replace("map", "AP", 1)
    line = (overall, f"all images {overall:.3f}") if overall is not None and overall >= 0 else None
    title = f"{label} per slice of the images"
    return plot_ap_bars(values, names, ax=ax, title=title, xlabel=label, what="slices", reference=line)


def plot_bootstrap_intervals(
    result: BootstrapResult, class_names: Sequence[str] | None = None, *, ax: Axes | None = None
) -> tuple[Figure, Axes]:
    """Per-class AP with its bootstrap interval, and the mAP's, from ``MeanAveragePrecision.bootstrap()``.

    One row per class (sorted by estimate, best first), a dot at the estimate and a line over
    the interval; the top row is mAP, in red. Classes without GT (NaN) are left out. For a
    paired comparison (``other=``) the rows are differences and a line marks 0.
    ``class_names`` is indexed by class id (``result.classes``).

    Example:
        >>> import numpy as np
        >>> from objdet.functional.bootstrap import BootstrapResult
        >>> from objdet.plotting.detection import plot_bootstrap_intervals
        >>> r = BootstrapResult(
        ...     estimate={"map": 0.4, "map_per_class": np.array([0.5, 0.3])},
        ...     low={"map": 0.35, "map_per_class": np.array([0.4, 0.2])},
        ...     high={"map": 0.45, "map_per_class": np.array([0.6, 0.4])},
        ...     level=0.95, n_resamples=100, seed=0, classes=np.array([0, 1]),
        ...     replicates=np.zeros((100, 3)), class_replicates=np.zeros((100, 2)), bias={"map": 0.0})
        >>> fig, ax = plot_bootstrap_intervals(r, ["cat", "dog"])
        >>> [t.get_text() for t in ax.get_yticklabels()]
        ['mAP', 'cat', 'dog']
    """
    est = np.asarray(result.estimate["map_per_class"], np.float64)
    low = np.asarray(result.low["map_per_class"], np.float64)
    high = np.asarray(result.high["map_per_class"], np.float64)
    ids = [int(c) for c in np.asarray(result.classes).tolist()]
    names_by_id = list(class_names) if class_names is not None else None

    def name(c: int) -> str:
        return names_by_id[c] if names_by_id is not None and 0 <= c < len(names_by_id) else f"class {c}"

    keep = [i for i in np.argsort(-np.nan_to_num(est, nan=-np.inf), kind="stable") if np.isfinite(est[i])]
    rows = [("mAP", float(result.estimate["map"]), float(result.low["map"]), float(result.high["map"]))]  # type: ignore[arg-type]
    rows += [(name(ids[i]), float(est[i]), float(low[i]), float(high[i])) for i in keep]
    n = len(rows)
    fig, ax = new_figure((7.0, max(2.6, 0.3 * n + 1.6))) if ax is None else (figure_of(ax), ax)
    y = np.arange(n)
    for yi, (_, e, lo, hi) in zip(y, rows, strict=True):
        color = _BEST if yi == 0 else _BAR
        ax.plot([lo, hi], [yi, yi], color=color, linewidth=2.2, solid_capstyle="round")
        ax.plot([e], [yi], marker="o", color=color, markersize=5)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=9 if n <= 25 else 7)
    ax.invert_yaxis()
    paired = bool(np.nanmin([r[2] for r in rows]) < 0)
    if paired:
        ax.axvline(0.0, color="0.4", linewidth=0.8)
    what = "difference in AP" if paired else "AP"
    ax.set_xlabel(
        f"{what}: estimate (dot) and {100 * result.level:g}% bootstrap interval "
        f"({result.n_resamples} resamples)"
    )
    ax.set_title("AP with bootstrap intervals over images")
    ax.grid(axis="x", alpha=0.3, linewidth=0.6)
    return fig, ax


# --------------------------------------------------------------------------- dispatcher

CurveKind = Literal["pr", "f1", "precision", "recall", "ap"]


def plot_detection_curves(
    curves: DetectionCurves,
    kind: CurveKind = "pr",
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    beta: float = 1.0,
) -> tuple[Figure, Axes]:
    """Draw one view of a :class:`~objdet.functional.curves.DetectionCurves` (from ``metric.curves()``).

    Args:
        curves: the curves.
        kind: "pr" (precision-recall per class), "f1", "precision" or "recall" (vs confidence,
            best-F1 threshold marked) or "ap" (per-class AP bars).
        class_names: names indexed by class id (``class_names[c]`` for class id c), e.g. all
            80 COCO names; default: the ids.
        beta: with ``kind="f1"``, draw F-beta (:meth:`~objdet.functional.curves.DetectionCurves.fbeta`)
            instead, labelled ``F<beta>`` (e.g. "F2"), its best threshold marked; 1 is F1.
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
    t, sim = curves.iou_threshold, curves.similarity
    if kind == "pr":
        return plot_pr_curves(
            curves.recall_points,
            curves.pr_precision,
            curves.ap,
            names,
            iou_threshold=t,
            ax=ax,
            similarity=sim,
        )
    if kind == "ap":
        title = f"AP per class ({sim} ≥ {t:g})"
        if class_names is not None and len(class_names) > len(ids):
            left = len(class_names) - len(ids)
            title += f"\n{left} of {len(class_names)} classes had no GT and no detection: not listed"
        return plot_ap_bars(curves.ap, names, ax=ax, xlabel=f"AP@{t:g}", title=title)
    if kind in ("f1", "precision", "recall"):
        values, overall = {
            "f1": (curves.f1, curves.overall_f1),
            "precision": (curves.precision, curves.overall_precision),
            "recall": (curves.recall, curves.overall_recall),
        }[kind]
        metric: str = "F1" if kind == "f1" else kind
        best = float(curves.best_confidence)
        best_of = "F1"
        if kind == "f1" and beta != 1.0:
            fb = curves.fbeta(beta)
            values, overall, best = fb.fbeta, fb.overall, float(fb.best_confidence)
            metric = best_of = f"F{fb.beta:g}"
        return plot_confidence_curves(
            curves.confidence,
            values,
            overall,
            metric=metric,
            class_names=names,
            best_confidence=best,
            overall_label=f"all classes ({curves.average})",
            classes_label="classes with a GT or a detection",
            ax=ax,
            title=f"{metric[:1].upper()}{metric[1:]} vs confidence ({sim} ≥ {t:g})",
            best_of=best_of,
        )
    raise ValueError(f"`kind` must be one of 'pr', 'f1', 'precision', 'recall', 'ap', got {kind!r}")


# --------------------------------------------------------------------------- reliability diagram

_GAP = "#d62728"
_UNDER = "#ff9f1c"


def _bin_spans(cal: DetectionCalibration, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left edge and width of each bin's bar: the bin itself ("width"), or for "mass" from its
    lowest score to the next non-empty bin's lowest score (the last to its highest score)."""
    lower, upper = to_numpy(cal.lower), to_numpy(cal.upper)
    if cal.strategy == "width":
        return lower, upper - lower
    left, right = lower.copy(), upper.copy()
    filled = np.flatnonzero(count > 0)
    right[filled[:-1]] = lower[filled[1:]]
    width = np.where(count > 0, right - left, 0.0)
    thin = (count > 0) & (width < 0.01)  # tied scores: a visible bar around them
    left = np.where(thin, left - 0.005, left)
    return left, np.where(thin, 0.01, width)


def plot_reliability_diagram(
    calibration: DetectionCalibration,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> tuple[Figure, Axes]:
    """Reliability diagram: precision per confidence bin against the diagonal, with ECE and MCE.

    Bars are each bin's accuracy (its precision at the IoU threshold: the fraction of its
    detections that are TPs), a dot marks (mean confidence, accuracy) of the bin, and a red
    band the gap between accuracy and mean confidence (the terms of ECE). A well calibrated
    detector has its dots on the diagonal. In a figure made here a second panel below shows
    the number of detections per bin; with ``ax`` only the diagram is drawn. Returns the
    diagram's axes. Input: :meth:`objdet.training.metrics.MeanAveragePrecision.calibration`
    or :func:`objdet.functional.calibration.detection_calibration`.

    Example:
        >>> import numpy as np
        >>> from objdet.functional.calibration import detection_calibration
        >>> from objdet.plotting.detection import plot_reliability_diagram
        >>> cal = detection_calibration(np.array([0.9, 0.8, 0.3, 0.2]), np.array([True, False, False, True]))
        >>> fig, ax = plot_reliability_diagram(cal)
        >>> ax.get_title(), round(float(cal.ece), 3)
        ('Reliability diagram (10 equal-width bins)', 0.5)
    """
    count = to_numpy(calibration.count, np.int64).reshape(-1)
    conf = to_numpy(calibration.confidence).reshape(-1)
    acc = to_numpy(calibration.accuracy).reshape(-1)
    ax_count: Axes | None = None
    if ax is None:
        fig, axes = new_subplots(2, 1, (6.0, 6.6), sharex=True, gridspec_kw={"height_ratios": [3.2, 1.0]})
        ax, ax_count = axes[0, 0], axes[1, 0]
    else:
        fig = figure_of(ax)
    assert ax is not None
    t = calibration.iou_threshold
    kind = "equal-width" if calibration.strategy == "width" else "equal-mass"
    sim = calibration.similarity
    at = f"{sim} ≥ {t:g}, " if t == t else ""
    ax.set_title(
        title if title is not None else f"Reliability diagram ({at}{calibration.n_bins} {kind} bins)"
    )
    ax.set_ylabel(f"accuracy (precision at {sim} threshold)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.45", linewidth=1.0, label="perfect calibration")
    (ax_count if ax_count is not None else ax).set_xlabel("confidence (score)")
    if ax_count is not None:
        ax.tick_params(labelbottom=False)
    if calibration.n_detections == 0:
        _no_data(ax, "no data: no counted detection")
        if ax_count is not None:
            ax_count.set_ylabel("detections")
        return fig, ax
    filled = count > 0
    left, width = _bin_spans(calibration, count)
    ax.bar(
        left[filled], acc[filled], width=width[filled], align="edge", color=_BAR, alpha=0.85,
        edgecolor="white", linewidth=0.8, label="accuracy of the bin",
    )  # fmt: skip
    over = filled & (conf > acc)  # over-confident: the band above the bar, up to the mean confidence
    under = filled & (acc > conf)  # under-confident: the top of the bar, above the mean confidence
    if over.any():
        ax.bar(
            left[over], (conf - acc)[over], bottom=acc[over], width=width[over], align="edge", color=_GAP,
            alpha=0.28, edgecolor=_GAP, linewidth=0.6, hatch="//", label="gap: confidence above accuracy",
        )  # fmt: skip
    if under.any():
        ax.bar(
            left[under], (acc - conf)[under], bottom=conf[under], width=width[under], align="edge",
            facecolor="none", edgecolor=_UNDER, linewidth=0.8, hatch="\\\\",
            label="gap: accuracy above confidence",
        )  # fmt: skip
    ax.plot(
        conf[filled], acc[filled], marker="o", markersize=5, color=_MEAN, linewidth=1.2,
        label="(mean confidence, accuracy)", zorder=5,
    )  # fmt: skip
    n = calibration.n_detections
    summary = f"ECE = {float(calibration.ece):.4f}\nMCE = {float(calibration.mce):.4f}\nN = {n:,} detections"
    ax.text(
        0.03, 0.97, summary, transform=ax.transAxes, ha="left", va="top", fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9, "edgecolor": "0.7"},
    )  # fmt: skip
    ax.legend(loc="lower right", fontsize=8, frameon=True, framealpha=0.85)
    if ax_count is not None:
        ax_count.bar(
            left[filled], count[filled], width=width[filled], align="edge", color="0.55", edgecolor="white"
        )
        ax_count.set_ylabel("detections")
        ax_count.set_xlim(0, 1)
        ax_count.grid(axis="y", alpha=0.3, linewidth=0.6)
    return fig, ax
