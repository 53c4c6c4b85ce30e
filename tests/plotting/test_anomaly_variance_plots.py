"""Every renderer and every metric's plot() returns a figure that renders to PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from objdet.plotting.anomaly import plot_anomaly_heatmap, plot_score_histogram
from objdet.plotting.variance import plot_orthogonality, plot_pca_scatter, plot_scree
from objdet.training.metrics import (
    AnomalyDetectionMetrics,
    ComponentOrthogonalityMetric,
    ExplainedVarianceMetric,
    ScoreStatisticsMetric,
)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data[:4] == b"\x89PNG"
    return data


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.zeros(2, 48, 48, dtype=torch.bool)
    target[:, 10:20, 15:30] = True
    scores = torch.randn(2, 48, 48, generator=g) + 3.0 * target
    return scores, target


def test_metric_plots() -> None:
    scores, target = _data()
    anomaly = AnomalyDetectionMetrics(threshold=1.5)
    anomaly.update(scores, target)
    fig, ax = anomaly.plot()
    assert isinstance(fig, Figure) and ax.get_title()
    assert any("threshold" in t.get_text() for t in ax.get_legend().get_texts())
    _png(fig)
    stats = ScoreStatisticsMetric()
    stats.update(scores)
    _png(stats.plot()[0])
    var = ExplainedVarianceMetric(n_components=2)
    var.update(torch.randn(100, 5) * torch.arange(1.0, 6.0))
    fig, ax = var.plot()
    assert ax.get_ylabel() == "explained variance"
    _png(fig)
    ortho = ComponentOrthogonalityMetric()
    with pytest.raises(RuntimeError, match="no data"):
        ortho.plot()
    ortho.update(torch.randn(4, 6))
    _png(ortho.plot()[0])


def test_renderers() -> None:
    scores, target = _data()
    fig, axes = plot_anomaly_heatmap(scores[0], image=torch.rand(3, 48, 48), target=target[0], threshold=1.5)
    assert len(axes) == 3
    _png(fig)
    _png(plot_anomaly_heatmap(scores[0].numpy(), threshold=1.5)[0])
    _png(plot_score_histogram(scores[~target], scores[target], threshold=1.5, stats={"auroc": 0.9})[0])
    _png(plot_score_histogram(np.zeros(0))[0])
    x = np.random.default_rng(0).normal(size=(300, 4))
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    comps, ratios = evecs[:, ::-1].T, evals[::-1] / evals.sum()
    fig, ax = plot_pca_scatter(x, x.mean(0), comps, ratios, labels=(x[:, 0] > 0).astype(int))
    assert ax.get_xlabel().startswith("PC1 (")
    _png(fig)
    _png(plot_pca_scatter(x, x.mean(0), comps, ratios, scores=x[:, 1], n_dims=3)[0])
    _png(plot_scree(ratios, n_components=2)[0])
    for k, text in ((1, "1 component: "), (2, "2 components: ")):  # not "1 components"
        fig, ax = plot_scree(ratios, n_components=k)
        assert next(t.get_text() for t in ax.texts if "component" in t.get_text()).startswith(text)
        _png(fig)
    _png(plot_orthogonality(np.eye(3) * 0.1, {"orthogonality_error": 0.17})[0])
    with pytest.raises(ValueError, match="n_dims"):
        plot_pca_scatter(x, x.mean(0), comps, n_dims=4)
