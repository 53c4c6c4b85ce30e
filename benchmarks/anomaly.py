"""AUROC / AP of AnomalyDetectionMetrics vs torchmetrics' exact BinaryAUROC / BinaryAveragePrecision.

Data: ``--maps`` score maps of ``--size`` x ``--size`` pixels with about 3 % anomalous pixels
(a few elliptic blobs per map), scores = smooth noise + signal inside the blobs. ``--scores raw``
feeds unbounded logits (torchmetrics then applies its sigmoid, a monotone map, so the exact
values are unchanged up to float32 ties); ``--scores prob`` feeds values in (0, 1) to both.

Both sides get the same batches (10 maps each) through ``update`` and one ``compute``; the
time of each includes both and is the best of ``--repeat`` fresh runs. torchmetrics runs in exact
mode (``thresholds=None``). Run::

    PYTHONPATH=src python benchmarks/anomaly.py [--maps 100] [--size 512] [--scores raw|prob] [--range 0 1]

``run(quick)`` gives the summary row to ``benchmarks/run.py`` (all benchmarks in one run).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

from objdet.training.metrics import AnomalyDetectionMetrics


def make_maps(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    targets = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        for _ in range(3):
            cy, cx = torch.randint(0, size, (2,), generator=g).tolist()
            ry, rx = (torch.rand(2, generator=g) * 0.05 * size + 0.034 * size).tolist()
            targets[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    noise = torch.randn(n, 1, size, size, generator=g)
    smooth = F.avg_pool2d(noise, 5, stride=1, padding=2).squeeze(1) * 3.0
    scores = smooth + 1.8 * targets + 0.3 * torch.randn(n, size, size, generator=g)
    return scores, targets


def time_metric(
    metric_fn, scores: torch.Tensor, targets: torch.Tensor, batch: int, repeat: int = 1
) -> tuple[float, object]:
    """Best wall time over ``repeat`` fresh runs (update every batch + one compute) and the result."""
    best = float("inf")
    for _ in range(repeat):
        metric = metric_fn()
        t0 = time.perf_counter()
        for i in range(0, scores.shape[0], batch):
            metric.update(scores[i : i + batch], targets[i : i + batch])
        out = metric.compute()
        best = min(best, time.perf_counter() - t0)
    return best, out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--maps", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--scores", choices=("raw", "prob"), default="raw")
    parser.add_argument("--range", type=float, nargs=2, default=None, help="fixed score_range (low high)")
    parser.add_argument("--bins", type=int, default=60000, help="num_bins with --range")
    parser.add_argument("--repeat", type=int, default=3, help="runs per library; the best time is kept")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> list[dict]:
    """Run the benchmark as configured, print its results, return the summary row."""
    scores, targets = make_maps(args.maps, args.size)
    targets = targets.long()
    if args.scores == "prob":
        scores = torch.sigmoid(scores)
    print(
        f"{args.maps} maps of {args.size}x{args.size} ({scores.numel():,} pixels), "
        f"{targets.float().mean().item():.2%} anomalous, scores={args.scores}, "
        f"binning={'linear ' + str(tuple(args.range)) + f' x {args.bins}' if args.range else 'float'}, "
        f"torch threads={torch.get_num_threads()}"
    )
    time_metric(AnomalyDetectionMetrics, scores[:2], targets[:2], args.batch)  # warm-up
    kwargs = {"score_range": tuple(args.range), "num_bins": args.bins} if args.range else {}
    t_ours, ours = time_metric(
        lambda: AnomalyDetectionMetrics(return_error_bounds=True, **kwargs),
        scores,
        targets,
        args.batch,
        args.repeat,
    )
    t_auroc, tm_auroc = time_metric(
        lambda: BinaryAUROC(thresholds=None), scores, targets, args.batch, args.repeat
    )
    t_ap, tm_ap = time_metric(
        lambda: BinaryAveragePrecision(thresholds=None), scores, targets, args.batch, args.repeat
    )
    assert isinstance(ours, dict)
    d_auroc = abs(float(ours["auroc"]) - float(tm_auroc))  # type: ignore[arg-type]
    d_ap = abs(float(ours["average_precision"]) - float(tm_ap))  # type: ignore[arg-type]
    t_tm = t_auroc + t_ap
    print(f"objdet AnomalyDetectionMetrics (AUROC + AP + best F1 + counts): {t_ours:8.3f} s")
    print(f"torchmetrics BinaryAUROC(thresholds=None):                     {t_auroc:8.3f} s")
    print(f"torchmetrics BinaryAveragePrecision(thresholds=None):          {t_ap:8.3f} s")
    print(f"ratio objdet / (torchmetrics AUROC + AP):                     {t_ours / t_tm:8.4f}")
    print(f"ratio objdet / torchmetrics AUROC alone:                      {t_ours / t_auroc:8.4f}")
    print(
        f"AUROC  objdet {float(ours['auroc']):.6f}  torchmetrics {float(tm_auroc):.6f}  "  # type: ignore[arg-type]
        f"|diff| {d_auroc:.2e}  documented bound {float(ours['auroc_error_bound']):.2e}"
    )
    print(
        f"AP     objdet {float(ours['average_precision']):.6f}  torchmetrics {float(tm_ap):.6f}  "  # type: ignore[arg-type]
        f"|diff| {d_ap:.2e}  documented bound {float(ours['average_precision_error_bound']):.2e}"
    )
    ok = t_ours <= 0.1 * t_tm and d_auroc <= 1e-3 and d_ap <= 1e-3
    print("target (<= 0.1 x time, |diff| <= 1e-3):", "met" if ok else "NOT met")
    binning = f"linear {tuple(args.range)} x {args.bins} bins" if args.range else "float bins"
    return [
        {
            "benchmark": f"anomaly AUROC + AP, {args.maps} x {args.size} x {args.size} {args.scores} scores, "
            f"{binning} (update + compute)",
            "objdet_s": t_ours,
            "reference": "torchmetrics BinaryAUROC + BinaryAveragePrecision (thresholds=None, exact)",
            "reference_s": t_tm,
            "note": f"|diff| AUROC {d_auroc:.1e} (bound {float(ours['auroc_error_bound']):.1e}), "
            f"AP {d_ap:.1e} (bound {float(ours['average_precision_error_bound']):.1e})",
        }
    ]


def run(quick: bool = False) -> list[dict]:
    """Summary row for ``benchmarks/run.py``: the defaults above, or 8 maps of 128 x 128 with ``quick``."""
    return measure(parse_args(["--maps", "8", "--size", "128", "--repeat", "1"] if quick else []))


if __name__ == "__main__":
    measure(parse_args())
