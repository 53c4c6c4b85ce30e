"""Variance figures: PCA scatter, scree plot and component orthogonality heatmap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from objdet.plotting._common import figure_of, new_figure, to_numpy

__all__ = ["plot_orthogonality", "plot_pca_scatter", "plot_scree"]


def plot_scree(
    ratios: Any, n_components: int | None = None, max_components: int = 40, ax: Axes | None = None
) -> tuple[Figure, Axes]:
    """Explained variance ratio per component (bars) and cumulative (line); ``n_components`` marked.

    ``ratios``: explained variance ratios in decreasing order (the first ``max_components`` are drawn).
    """
    r = to_numpy(ratios).reshape(-1)[:max_components]
    fig, ax = new_figure((7.0, 4.2)) if ax is None else (figure_of(ax), ax)
    x = np.arange(1, r.size + 1)
    ax.bar(x, r, color="#3b75af", alpha=0.8, label="per component")
    cum = np.cumsum(r)
    ax.plot(x, cum, color="#d62728", marker="o", markersize=4, linewidth=1.6, label="cumulative")
    if n_components is not None and 0 < n_components <= r.size:
        ax.axvline(n_components + 0.5, color="0.3", linestyle="--", linewidth=1.0)
        ax.annotate(
            f"{n_components} component{'' if n_components == 1 else 's'}: {cum[n_components - 1]:.1%}",
            xy=(n_components + 0.5, cum[n_components - 1]),
            xytext=(8, -14),
            textcoords="offset points",
            fontsize=9,
        )
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance")
    ax.set_title("Scree plot")
    ax.set_xticks(x if r.size <= 20 else x[:: max(1, r.size // 10)])
    ax.grid(axis="y", alpha=0.3, linewidth=0.6)
    ax.legend(loc="center right", frameon=False)
    return fig, ax


def plot_pca_scatter(
    features: Any,
    mean: Any,
    components: Any,
    explained: Any = None,
    *,
    labels: Any = None,
    scores: Any = None,
    n_dims: int = 2,
    max_points: int = 5000,
    class_names: Mapping[int, str] | None = None,
    title: str = "PCA projection",
    seed: int = 0,
) -> tuple[Figure, Axes]:
    """Scatter of ``features`` (N, C) projected on the first ``n_dims`` (2 or 3) rows of ``components``.

    ``mean`` (C,) is subtracted first (e.g. from ``ExplainedVarianceMetric.pca()``); ``explained``
    (ratios) goes into the axis labels. Points are coloured by ``labels`` (categorical, with a
    legend) or by ``scores`` (continuous, with a colour bar); at most ``max_points`` random points
    are drawn.
    """
    if n_dims not in (2, 3):
        raise ValueError(f"`n_dims` must be 2 or 3, got {n_dims!r}")
    x = to_numpy(features)
    w = to_numpy(components)
    if x.ndim != 2 or w.ndim != 2 or w.shape[1] != x.shape[1] or w.shape[0] < n_dims:
        raise ValueError(
            f"`features` must be (N, C) and `components` (k >= {n_dims}, C), got {x.shape} and {w.shape}"
        )
    proj = (x - to_numpy(mean).reshape(1, -1)) @ w[:n_dims].T
    idx = np.arange(proj.shape[0])
    if idx.size > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx.size, max_points, replace=False))
    proj = proj[idx]
    ratios = to_numpy(explained).reshape(-1) if explained is not None else None
    fig, ax = new_figure((6.4, 5.4), **({"projection": "3d"} if n_dims == 3 else {}))
    coords = [proj[:, i] for i in range(n_dims)]
    scatter: Any = ax.scatter  # 2-D and 3-D axes take the coordinates positionally
    if labels is not None:
        lab = to_numpy(labels, dtype=np.int64).reshape(-1)[idx]
        for j, c in enumerate(np.unique(lab)):
            sel = lab == c
            name = class_names.get(int(c), str(c)) if class_names else str(c)
            scatter(*[v[sel] for v in coords], s=8, alpha=0.7, color=f"C{j % 10}", label=name)
        ax.legend(title="label", markerscale=2, frameon=False, loc="best")
    elif scores is not None:
        sc = to_numpy(scores).reshape(-1)[idx]
        art = scatter(*coords, s=8, alpha=0.8, c=sc, cmap="viridis")
        fig.colorbar(art, ax=ax, shrink=0.8, label="score")
    else:
        scatter(*coords, s=8, alpha=0.7, color="C0")
    target: Any = ax
    setters = [target.set_xlabel, target.set_ylabel] + ([target.set_zlabel] if n_dims == 3 else [])
    for i, setter in enumerate(setters):
        if ratios is not None and i < ratios.size:
            suffix = f" ({ratios[i]:.1%} of variance)" if n_dims == 2 else f" ({ratios[i]:.1%})"
        else:
            suffix = ""
        setter(f"PC{i + 1}{suffix}")
    ax.set_title(title)
    if n_dims == 2:
        ax.grid(alpha=0.25, linewidth=0.6)
    return fig, ax


def plot_orthogonality(
    deviation: Any, values: Mapping[str, float] | None = None, ax: Axes | None = None
) -> tuple[Figure, Axes]:
    """Heatmap of ``W W^T - I`` (k, k) on a symmetric colour scale, with the errors in the title."""
    d = to_numpy(deviation)
    fig, ax = new_figure((5.6, 4.8)) if ax is None else (figure_of(ax), ax)
    lim = max(float(np.abs(d).max()), 1e-12)
    im = ax.imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.85, label="(W Wᵀ − I)ᵢⱼ")
    ax.set_xlabel("component j")
    ax.set_ylabel("component i")
    title = "Component orthogonality: W Wᵀ − I"
    if values:
        names = {"orthogonality_error": "worst ‖W Wᵀ − I‖_F", "orthogonality_error_mean": "mean"}
        title += "\n" + ", ".join(f"{names.get(k, k)} = {v:.3g}" for k, v in values.items())
    ax.set_title(title, fontsize=10)
    if d.shape[0] <= 16:
        ax.set_xticks(range(d.shape[0]))
        ax.set_yticks(range(d.shape[0]))
    return fig, ax
