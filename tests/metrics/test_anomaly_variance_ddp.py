"""Two gloo processes with uneven updates (one rank may see nothing) equal one process on all data."""

from __future__ import annotations

import torch

from objdet.training.metrics import (
    AnomalyDetectionMetrics,
    ComponentOrthogonalityMetric,
    ExplainedVarianceMetric,
    ScoreStatisticsMetric,
)
from tests.helpers.ddp import run_distributed


def _data() -> dict[str, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    target = [torch.rand(2, 16, 16, generator=g) < 0.1 for _ in range(5)]
    scores = [torch.randn(2, 16, 16, generator=g) * 3 + 2 * t for t in target]
    feats = [torch.randn(n, 4, generator=g) * torch.tensor([5.0, 2.0, 1.0, 0.1]) + 50 for n in (30, 7, 19)]
    ws = [torch.randn(3, 4, generator=g) for _ in range(3)]
    return {"scores": scores, "target": target, "feats": feats, "ws": ws}


def _metrics() -> list:
    return [
        AnomalyDetectionMetrics(threshold=0.5),
        ScoreStatisticsMetric(quantiles=(0.1, 0.5, 0.9)),
        ExplainedVarianceMetric(),  # feature count inferred lazily; rank 1 sees no features
        ComponentOrthogonalityMetric(),
    ]


def _feed(metrics: list, d: dict[str, list[torch.Tensor]], parts: dict[str, list[int]]) -> None:
    anomaly, stats, variance, ortho = metrics
    for i in parts["maps"]:
        anomaly.update(d["scores"][i], d["target"][i])
        stats.update(d["scores"][i])
    for i in parts["feats"]:
        variance.update(d["feats"][i])
    for i in parts["ws"]:
        ortho.update(d["ws"][i])


def _results(metrics: list) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in m.compute().items()} for m in metrics]


def _worker(rank: int, world_size: int, payload: None) -> list[dict[str, float]]:
    d = _data()
    split = [
        {"maps": [0, 1, 2, 3], "feats": [0, 1, 2], "ws": [1]},
        {"maps": [4], "feats": [], "ws": [0, 2]},
    ]
    metrics = _metrics()
    _feed(metrics, d, split[rank])
    return _results(metrics)


def test_ddp_merge_equals_single_process() -> None:
    d = _data()
    single = _metrics()
    _feed(single, d, {"maps": list(range(5)), "feats": [0, 1, 2], "ws": [0, 1, 2]})
    expected = _results(single)
    per_rank = run_distributed(_worker, world_size=2)
    for got in per_rank:
        for exp_m, got_m in zip(expected, got, strict=False):
            assert exp_m.keys() == got_m.keys()
            for k in exp_m:
                assert abs(exp_m[k] - got_m[k]) <= 1e-9 * max(1.0, abs(exp_m[k])), (k, exp_m[k], got_m[k])
