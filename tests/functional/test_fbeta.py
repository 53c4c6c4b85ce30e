"""F-beta vs confidence (DetectionCurves.fbeta) against a count-by-count reference on pycocotools' flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.functional.curves import detection_curves
from objdet.training.metrics import MeanAveragePrecision
from tests.functional.test_detection_curves import pycocotools_flags
from tests.helpers.coco_reference import make_dataset, to_torch

pytestmark = pytest.mark.filterwarnings("ignore:Encountered more than 100 detections")


def brute_fbeta(flags: dict, classes: list[int], grid: list[float], average: str, beta: float) -> dict:
    """F-beta = (1 + b²) TP / ((1 + b²) TP + b² FN + FP) per class and overall, counted one by one."""
    b2 = beta * beta
    per, tps, fps, gts = [], [], [], []
    for c in classes:
        scores, tp, ign, n_gt = flags.get(c, ([], [], [], 0))
        row, row_t, row_f = [], [], []
        for thr in grid:
            t = sum(1 for s, a, i in zip(scores, tp, ign, strict=True) if s >= thr and a and not i)
            f = sum(1 for s, a, i in zip(scores, tp, ign, strict=True) if s >= thr and not a and not i)
            fn = n_gt - t
            den = (1 + b2) * t + b2 * fn + f
            row.append((1 + b2) * t / den if den else math.nan)
            row_t.append(t)
            row_f.append(f)
        per.append(row)
        tps.append(row_t)
        fps.append(row_f)
        gts.append(n_gt)
    overall = []
    for j in range(len(grid)):
        if average == "micro":
            t, f, g = sum(r[j] for r in tps), sum(r[j] for r in fps), sum(gts)
            den = (1 + b2) * t + b2 * (g - t) + f
            overall.append((1 + b2) * t / den if den else math.nan)
        else:
            vals = [per[k][j] for k in range(len(classes)) if gts[k] > 0]
            overall.append(sum(vals) / len(vals) if vals else math.nan)
    finite = [v for v in overall if not math.isnan(v)]
    best = max(finite) if finite else math.nan
    best_c = grid[overall.index(best)] if finite else math.nan  # the first (lowest) threshold reaching it
    return {"per": per, "overall": overall, "best": best, "best_confidence": best_c}


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("average", ["micro", "macro"])
@pytest.mark.parametrize("seed", [0, 2])
def test_fbeta_equals_the_count_by_count_reference(seed: int, average: str, beta: float) -> None:
    images = make_dataset(seed, n_images=10)
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    curves = metric.curves(confidence=51, average=average)  # type: ignore[arg-type]
    got = curves.fbeta(beta)
    grid = curves.confidence.tolist()
    ref = brute_fbeta(pycocotools_flags(images, 0), curves.classes.tolist(), grid, average, beta)
    np.testing.assert_allclose(got.fbeta.numpy(), np.array(ref["per"]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.overall.numpy(), np.array(ref["overall"]), rtol=1e-12, atol=1e-12)
    assert float(got.best_fbeta) == pytest.approx(ref["best"], abs=1e-12)
    assert float(got.best_confidence) == ref["best_confidence"]
    for k in range(curves.classes.numel()):
        row = np.array(ref["per"][k])
        if np.isfinite(row).any():
            assert float(got.class_best_fbeta[k]) == pytest.approx(np.nanmax(row), abs=1e-12)
            assert float(got.class_best_confidence[k]) == grid[int(np.nanargmax(row))]
    assert got.beta == beta and got.average == average and got.iou_threshold == 0.5


def test_beta_one_is_f1_exactly() -> None:
    preds, target = to_torch(make_dataset(7, n_images=10))
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    for average in ("micro", "macro"):
        c = metric.curves(average=average)  # type: ignore[arg-type]
        f1 = c.fbeta(1)
        torch.testing.assert_close(f1.fbeta, c.f1, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(f1.overall, c.overall_f1, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(f1.best_fbeta, c.best_f1, rtol=0, atol=0)
        torch.testing.assert_close(f1.best_confidence, c.best_confidence, rtol=0, atol=0)
        torch.testing.assert_close(f1.class_best_fbeta, c.class_best_f1, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(
            f1.class_best_confidence, c.class_best_confidence, rtol=0, atol=0, equal_nan=True
        )


@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    beta=st.floats(0.05, 20.0),
)
def test_fbeta_lies_between_precision_and_recall(n: int, seed: int, beta: float) -> None:
    # F-beta is a weighted harmonic mean of precision and recall: between the two where both exist
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    tp = torch.rand(n, generator=g) < 0.5
    labels, ignored, n_gt = (
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.bool),
        int(tp.sum()) + 2,
    )
    c = detection_curves(
        scores, labels, tp, ignored, torch.tensor([0]), torch.tensor([n_gt]), 0.5, confidence=21
    )
    f = c.fbeta(beta).fbeta[0]
    p, r = c.precision[0], c.recall[0]
    both = ~torch.isnan(p) & (p > 0) & (r > 0)
    lo, hi = torch.minimum(p, r)[both], torch.maximum(p, r)[both]
    assert bool((f[both] >= lo - 1e-12).all() and (f[both] <= hi + 1e-12).all())


@pytest.mark.parametrize("beta", [0, -1.0, math.inf, math.nan, True, "2"])
def test_bad_beta(beta: object) -> None:
    c = detection_curves(torch.tensor([0.5]), torch.tensor([0]), torch.tensor([True]), torch.tensor([False]),
                         torch.tensor([0]), torch.tensor([1]), 0.5)  # fmt: skip
    with pytest.raises(ValueError, match="`beta` must be a finite number > 0"):
        c.fbeta(beta)  # type: ignore[arg-type]


def test_the_f1_plot_draws_fbeta_with_the_beta_in_its_labels() -> None:
    from objdet.plotting.detection import plot_detection_curves

    preds, target = to_torch(make_dataset(3, n_images=8))
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    curves = metric.curves()
    _, ax = plot_detection_curves(curves, "f1", beta=2.0)
    assert ax.get_ylabel() == "F2" and ax.get_title() == "F2 vs confidence (IoU ≥ 0.5)"
    labels = ax.get_legend_handles_labels()[1]
    best = curves.fbeta(2.0)
    assert any(
        lab.startswith(f"F2 {float(best.best_fbeta):.3f} at") and lab.endswith("(best)") for lab in labels
    )
    _, ax = plot_detection_curves(curves, "f1")
    assert ax.get_ylabel() == "F1"
