"""Detection figures render to PNG, carry the labels they promise, and survive 1, 80 and 0 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import LogNorm, PowerNorm
from matplotlib.figure import Figure

from objdet.functional.curves import detection_curves
from objdet.plotting.detection import (
    plot_ap_bars,
    plot_confidence_curves,
    plot_confusion_matrix,
    plot_detection_curves,
    plot_pr_curves,
)
from objdet.training.metrics import ClasswiseAP, ConfusionMatrix, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, to_torch


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=50)
    assert path.read_bytes()[:4] == b"\x89PNG"


def _texts(ax) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in ax.texts]


def _synthetic(n_classes: int, n_images: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    g = np.random.default_rng(seed)
    preds, target = [], []
    for _ in range(n_images):
        m = int(g.integers(1, 8))
        xy = g.uniform(0, 300, (m, 2))
        gt = np.concatenate([xy, xy + g.uniform(10, 80, (m, 2))], 1)
        labels = g.integers(0, n_classes, m)
        dt = gt + g.normal(0, 4, gt.shape)
        dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 1)
        dl = np.where(g.random(m) < 0.15, g.integers(0, n_classes, m), labels)
        preds.append(
            {"boxes": torch.tensor(dt), "scores": torch.tensor(g.random(m)), "labels": torch.tensor(dl)}
        )
        target.append({"boxes": torch.tensor(gt), "labels": torch.tensor(labels)})
    return preds, target


# ----------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_few_classes(tmp_path: Path) -> None:
    m = np.array([[5, 1, 0, 2], [0, 3, 1, 0], [0, 0, 0, 1], [1, 2, 0, 0]])
    fig, ax = plot_confusion_matrix(m, ["cat", "dog", "eel"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "eel", "background"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "eel", "background"]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "ground truth"
    assert sorted(_texts(ax)) == sorted(str(v) for v in m[m > 0])  # every non-zero count written
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert fig.axes[1].get_ylabel() == "count, square-root scale"  # counts 0-5: no log scale
    _save(fig, tmp_path / "cm_counts.png")
    fig, ax = plot_confusion_matrix(m, ["cat", "dog", "eel"], normalize="true")
    assert "0.62" in _texts(ax)  # 5 / 8 in the first row
    # the background row is normalised too, and the title says what it then shows
    assert "0.67" in _texts(ax)  # background row: 2 of its 3 false positives were predicted "dog"
    title = " ".join(ax.get_title().split())  # the title is wrapped to the figure's width
    assert fig.axes[1].get_ylabel() == "fraction" and "each row sums to 1" in title
    assert "background row: how the false positives split" in title
    assert "normalised by ground truth" not in title
    _fig, ax = plot_confusion_matrix(m, ["cat", "dog", "eel"], normalize="pred")
    title = " ".join(ax.get_title().split())
    assert "each column sums to 1" in title and "background column: how the missed" in title
    _save(fig, tmp_path / "cm_true.png")


@pytest.mark.parametrize("n_classes", [1, 5, 30])
@pytest.mark.parametrize("normalize", [None, "true", "pred"])
def test_confusion_matrix_title_fits_in_its_figure(n_classes: int, normalize: str | None) -> None:
    m = np.arange((n_classes + 1) ** 2).reshape(n_classes + 1, n_classes + 1)
    names = [f"class {i}" for i in range(n_classes)]
    fig, ax = plot_confusion_matrix(m, names, normalize=normalize, details="IoU >= 0.5, score >= 0.25")  # type: ignore[arg-type]
    fig.canvas.draw()
    box, page = ax.title.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, (box, page)


def test_confusion_matrix_one_and_eighty_classes(tmp_path: Path) -> None:
    fig1, ax = plot_confusion_matrix(np.array([[3, 1], [2, 0]]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "background"]
    _save(fig1, tmp_path / "cm_1.png")
    rng = np.random.default_rng(0)
    big = rng.integers(0, 3, (81, 81)) * (rng.random((81, 81)) < 0.05) + np.diag(rng.integers(5, 40, 81))
    big[80, 80] = 0
    names = [f"class {i}" for i in range(80)]
    fig80, ax = plot_confusion_matrix(big, names, normalize="pred")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "class 0" and labels[-1] == "background" and len(labels) == 81
    assert ax.get_xticklabels()[0].get_rotation() == 90
    assert len(_texts(ax)) == np.count_nonzero(big)  # every non-zero value written, also at 80 classes
    assert fig80.get_size_inches()[0] > 20  # about 0.3 inch per cell: numbers and names readable
    _save(fig80, tmp_path / "cm_80.png")
    # one dominant class: counts on a log scale, so that the others keep their colours
    big[0, 0] = 20_000
    fig, ax = plot_confusion_matrix(big, names)
    assert isinstance(ax.images[0].norm, LogNorm) and fig.axes[1].get_ylabel() == "count, log scale"
    assert "20k" in _texts(ax)
    assert isinstance(plot_confusion_matrix(big, names, log_scale=False)[1].images[0].norm, PowerNorm)
    # 365 classes: the 80 with the most errors, the others summed in one row and column
    c = 365
    many = np.zeros((c + 1, c + 1), dtype=np.int64)
    many[np.arange(c), np.arange(c)] = 10
    many[np.arange(c), (np.arange(c) + 1) % c] = np.arange(c) % 7  # errors: classes 6, 13, 20, ... most
    many[c, :c] = 1
    fig, ax = plot_confusion_matrix(many, [f"c{i}" for i in range(c)])
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) == 82 and ticks[-2:] == ["other 285 classes", "background"]
    assert "the 80 of 365 classes with the most errors" in ax.get_title()
    assert {"c6", "c13", "c20"} <= set(ticks)
    shown = ax.images[0].get_array().filled(0)
    assert shown.sum() == many.sum()  # every count is still in the picture
    np.testing.assert_array_equal(shown[-1, :-2], [1] * 80)  # background row of the classes kept
    assert plot_confusion_matrix(many, max_classes=None)[1].get_yticklabels()[-1].get_text() == "background"
    with pytest.raises(ValueError, match="max_classes"):
        plot_confusion_matrix(many, max_classes=0)


def test_confusion_matrix_one_class_left_out_is_one_class() -> None:
    m = np.diag([5, 4, 3, 2, 0]) + np.eye(5, k=1, dtype=np.int64)  # 4 classes + background
    _, ax = plot_confusion_matrix(m, ["a", "b", "c", "d"], max_classes=3)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[-2:] == ["other 1 class", "background"]  # not "other 1 classes"
    _, ax = plot_confusion_matrix(m, ["a", "b", "c", "d"], max_classes=2)
    assert [t.get_text() for t in ax.get_yticklabels()][-2] == "other 2 classes"


def test_confusion_matrix_no_data_and_errors(tmp_path: Path) -> None:
    fig, ax = plot_confusion_matrix(torch.zeros(3, 3, dtype=torch.int64))
    assert any("no data" in t for t in _texts(ax))
    _save(fig, tmp_path / "cm_empty.png")
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"class_names.*2 entries.*got 3"):
        plot_confusion_matrix(np.ones((3, 3)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="normalize"):
        plot_confusion_matrix(np.ones((3, 3)), normalize="rows")  # type: ignore[arg-type]


def test_confusion_matrix_metric_plot(tmp_path: Path) -> None:
    preds, target = _synthetic(3, 20)
    metric = ConfusionMatrix(num_classes=3, class_names=["a", "b", "c"])
    metric.update(preds, target)
    fig, ax = metric.plot()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "background"]
    assert "IoU ≥ 0.5" in ax.get_title()
    _save(fig, tmp_path / "metric_cm.png")
    fig, ax = metric.plot(normalize="all", class_names=["x", "y", "z"])
    assert next(t.get_text() for t in ax.get_yticklabels()) == "x"
    # drawing into a given axes
    other = Figure()
    target_ax = other.add_subplot(1, 1, 1)
    fig2, ax2 = metric.plot(ax=target_ax)
    assert fig2 is other and ax2 is target_ax


# ----------------------------------------------------------------------------- curves


def test_pr_curves_lines_and_legend(tmp_path: Path) -> None:
    rec = np.linspace(0, 1, 101)
    prec = np.stack([np.clip(1 - rec * k / 3, 0, 1) for k in (1, 2, 3)] + [np.full(101, -1.0)])
    fig, ax = plot_pr_curves(rec, prec, class_names=["a", "b", "c", "no-gt"], iou_threshold=0.5)
    assert len(ax.get_lines()) == 4  # three classes with GT and the mean
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("mean of the classes with GT  mAP@0.5 = ")
    assert legend[0].endswith("(1 class without GT: no curve, no AP)")  # said, not silently dropped
    assert any(t.startswith("a  ") for t in legend) and not any("no-gt" in t for t in legend)
    assert ax.get_xlabel() == "recall" and ax.get_ylabel() == "precision"
    mean_line = [ln for ln in ax.get_lines() if ln.get_linewidth() == 3.0]
    assert len(mean_line) == 1
    np.testing.assert_allclose(mean_line[0].get_ydata(), prec[:3].mean(0))
    _save(fig, tmp_path / "pr.png")
    many = np.tile(prec[:1], (80, 1))
    fig, ax = plot_pr_curves(rec, many)
    assert len(ax.get_lines()) == 81 and len(ax.get_legend().get_texts()) == 1  # no 80-entry legend
    assert "(80 classes with GT, thin lines)" in ax.get_legend().get_texts()[0].get_text()
    _save(fig, tmp_path / "pr_80.png")
    fig, ax = plot_pr_curves(rec, prec[3:])
    assert any("no data" in t for t in _texts(ax))
    with pytest.raises(ValueError, match="ap"):
        plot_pr_curves(rec, prec, ap=[0.5])


def test_confidence_curves_best_point(tmp_path: Path) -> None:
    x = np.linspace(0, 1, 11)
    per = np.stack([np.sin(x * 3) / 2, np.full(11, np.nan)])
    overall = np.sin(x * 3) / 2
    fig, ax = plot_confidence_curves(x, per, overall, best_confidence=0.5, class_names=["a", "nothing"])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "all classes\n(1 class without any F1 value: not drawn)"
    assert legend[1].startswith("F1 0.499 at 0.5")
    assert ax.get_xlabel() == "confidence threshold" and ax.get_ylabel() == "F1"
    _save(fig, tmp_path / "f1.png")
    # raw scores up to 1e300: one step per threshold, the values on the ticks, the best point at its value
    raw = np.array([-5.0, -1.0, 0.5, 2.0, 7.0, 1e300])
    f1 = np.array([0.2, 0.5, 0.6, 0.4, 0.1, 0.0])
    fig, ax = plot_confidence_curves(raw, f1[None], f1, best_confidence=0.5)
    assert ax.get_xlim() == (0.0, 1.0)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0] == "-5" and ticks[-1] == "1e+300"
    assert "one step per threshold" in ax.get_xlabel()
    best = next(ln for ln in ax.get_lines() if ln.get_marker() == "o")
    assert best.get_xdata()[0] == pytest.approx(0.4) and "at 0.5" in best.get_label()
    _save(fig, tmp_path / "f1_raw_scores.png")
    fig, ax = plot_confidence_curves(x, np.full((0, 11), np.nan), None)
    assert any("no data" in t for t in _texts(ax))
    with pytest.raises(ValueError, match="overall"):
        plot_confidence_curves(x, per, overall[:3])


def test_ap_bars_sorted(tmp_path: Path) -> None:
    fig, ax = plot_ap_bars([0.2, -1.0, 0.9, 0.5, 0.0], ["a", "b", "c", "d", "e"], xlabel="AP@0.5")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "d", "a", "e", "b (no GT)"]
    assert len(ax.patches) == 3 and ax.get_xlabel() == "AP@0.5"  # a bar per AP > 0
    (zero,) = [ln for ln in ax.get_lines() if ln.get_marker() == "x"]  # AP 0: a mark, not a vanished bar
    assert list(zero.get_ydata()) == [3]
    # every mark and colour is named in the legend, with its number of classes
    (legend,) = fig.legends
    assert sorted(t.get_text() for t in legend.get_texts()) == [
        "(no GT): no AP (1 class, grey, at the bottom)",
        "AP (3 classes)",
        "AP = 0 (1 class)",
        "mean 0.400 (classes with GT)",
    ]
    assert ax.get_yticklabels()[-1].get_color() == "0.55"
    _save(fig, tmp_path / "ap.png")
    fig80, ax = plot_ap_bars(np.linspace(0, 1, 80))
    assert next(t.get_text() for t in ax.get_yticklabels()) == "79"
    assert fig80.get_size_inches()[1] > 10
    _save(fig80, tmp_path / "ap_80.png")
    for empty in ([], [-1.0, -1.0]):
        fig, ax = plot_ap_bars(empty)
        assert any("no data" in t for t in _texts(ax))
        _save(fig, tmp_path / "ap_empty.png")


@pytest.mark.parametrize("n_classes", [1, 80])
def test_metric_plots_every_kind(tmp_path: Path, n_classes: int) -> None:
    preds, target = _synthetic(n_classes, 30 if n_classes == 1 else 120)
    metric = MeanAveragePrecision(class_metrics=True)
    metric.update(preds, target)
    names = [f"c{i}" for i in range(n_classes)]
    for kind, ylabel in (("pr", "precision"), ("f1", "F1"), ("precision", "precision"), ("recall", "recall")):
        fig, ax = metric.plot(kind=kind, class_names=names)  # type: ignore[arg-type]
        assert ax.get_ylabel() == ylabel
        _save(fig, tmp_path / f"map_{n_classes}_{kind}.png")
    fig, ax = metric.plot(kind="ap", class_names=names)
    assert len(ax.patches) == n_classes
    fig, ax = metric.plot(metric.compute())  # torchmetrics' call pattern still draws the PR curves
    assert ax.get_xlabel() == "recall"
    fig, ax = metric.plot([metric.compute(), metric.compute()])  # a list: scalars over time
    _save(fig, tmp_path / "history.png")
    curves = metric.curves(0.75)
    fig, ax = metric.plot(curves, kind="f1")
    assert "0.75" in ax.get_title()
    with pytest.raises(ValueError, match="kind"):
        metric.plot(kind="roc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="class_names"):
        metric.plot(class_names=["only one"] if n_classes > 1 else [])


def test_classwise_ap_plot(tmp_path: Path) -> None:
    preds, target = to_torch(make_dataset(3, n_images=10))
    names = ["cat", "dog", "eel", "fox"]
    metric = ClasswiseAP(num_classes=4, class_names=names, iou_threshold=None, box_format="xywh")
    metric.update(preds, target)
    values = metric.compute()
    fig, ax = metric.plot()
    shown = [t.get_text().replace(" (no GT)", "") for t in ax.get_yticklabels()]
    assert sorted(shown) == sorted(names) and ax.get_xlabel() == "AP@0.50:0.95"
    by_value = sorted((v for v in values.values() if v >= 0), reverse=True)
    widths = [p.get_width() for p in ax.patches][: len(by_value)]
    np.testing.assert_allclose(widths, [float(v) for v in by_value], rtol=1e-6)
    _save(fig, tmp_path / "classwise.png")
    fig, ax = metric.plot(kind="pr")
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "cat" in legend and "mAP@0.5" in legend
    _save(fig, tmp_path / "classwise_pr.png")


def test_empty_metric_plots(tmp_path: Path) -> None:
    for kind in ("pr", "f1", "precision", "recall", "ap"):
        fig, ax = MeanAveragePrecision().plot(kind=kind)  # type: ignore[arg-type]
        assert any("no data" in t for t in _texts(ax)), kind
        _save(fig, tmp_path / f"empty_{kind}.png")
    fig, ax = ConfusionMatrix(num_classes=80).plot()
    assert any("no data" in t for t in _texts(ax))


def test_plot_detection_curves_functional() -> None:
    c = detection_curves(
        torch.tensor([0.9, 0.6, 0.3]),
        torch.tensor([2, 2, 5]),
        torch.tensor([True, False, True]),
        torch.tensor([False, False, False]),
        torch.tensor([2, 5]),
        torch.tensor([2, 1]),
        0.5,
    )
    names = [f"n{i}" for i in range(6)]
    _fig, ax = plot_detection_curves(c, "pr", class_names=names)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("n2  ") for t in legend) and any(t.startswith("n5  ") for t in legend)
    with pytest.raises(ValueError, match="class_names"):
        plot_detection_curves(c, "pr", class_names=names[:3])


def _box_image(side: float, score: float) -> tuple[dict, dict]:
    """One image, one GT of class 0 with a detection shifted by 2 px (IoU < 1, so mAP < 1 for small sides)."""
    gt = torch.tensor([[10.0, 10.0, 10.0 + side, 10.0 + side]])
    return (
        {"boxes": gt + 2.0, "scores": torch.tensor([score]), "labels": torch.tensor([0])},
        {"boxes": gt, "labels": torch.tensor([0])},
    )


@pytest.mark.parametrize("class_metrics", [False, True])
def test_map_history_plot_leaves_out_placeholders(class_metrics: bool) -> None:
    import matplotlib.pyplot as plt

    metric = MeanAveragePrecision(class_metrics=class_metrics)
    results = []
    for side, score in ((20.0, 0.9), (25.0, 0.8), (200.0, 0.7)):  # small, small, then a large object
        pred, gt = _box_image(side, score)
        metric.update([pred], [gt])
        results.append(metric.compute())
    assert all(float(r["map_medium"]) == -1.0 for r in results)  # no medium GT at any step
    assert float(results[0]["map_large"]) == -1.0 and float(results[2]["map_large"]) > 0
    figures_before = plt.get_fignums()
    fig, ax = metric.plot(results)
    assert isinstance(fig, Figure) and plt.get_fignums() == figures_before  # no pyplot figure left open
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(lines)
    # per-class values ([-1] placeholders without class_metrics, one class's AP with it) are no time series
    assert not any(k.endswith("_per_class") or k == "classes" for k in lines)
    assert "map_medium" not in lines and "mar_medium" not in lines  # undefined at every step
    assert {"map", "map_50", "map_small", "map_large", "mar_100"} <= set(lines)
    np.testing.assert_allclose(lines["map"].get_ydata(), [float(r["map"]) for r in results], rtol=1e-6)
    large = np.asarray(lines["map_large"].get_ydata(), dtype=float)
    assert np.isnan(large[0]) and large[2] == pytest.approx(float(results[2]["map_large"]))  # -1 is a gap


def test_slice_bars_and_bootstrap_intervals_show_what_they_say() -> None:
    import numpy as np

    from objdet.functional.bootstrap import BootstrapResult
    from objdet.plotting.detection import plot_bootstrap_intervals, plot_slice_bars

    fig, ax = plot_slice_bars({"a": {"map": 0.2}, "b": {"map": 0.6}, "c": {"map": -1.0}}, overall=0.4)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "c (no GT)"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "all images 0.400" in legend and "AP (2 slices)" in legend and not any("mean" in t for t in legend)
    result = BootstrapResult(
        estimate={"map": 0.1, "map_per_class": np.array([0.3, np.nan, -0.2])},
        low={"map": -0.05, "map_per_class": np.array([0.1, np.nan, -0.4])},
        high={"map": 0.2, "map_per_class": np.array([0.5, np.nan, 0.0])},
        level=0.9, n_resamples=10, seed=0, classes=np.array([2, 5, 7]),
        replicates=np.zeros((10, 3)), class_replicates=np.zeros((10, 3)), bias={"map": 0.0},
    )  # fmt: skip
    fig, ax = plot_bootstrap_intervals(
        result, {2: "cat", 7: "dog"} and ["", "", "cat", "", "", "", "", "dog"]
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mAP", "cat", "dog"]  # class 5 (no GT) left out
    assert (
        "difference in AP" in ax.get_xlabel() and "90% bootstrap interval (10 resamples)" in ax.get_xlabel()
    )
    lines = [[float(x) for x in line.get_xdata()] for line in ax.get_lines()]
    assert [0.1, 0.5] in lines and [-0.4, 0.0] in lines and [-0.05, 0.2] in lines


def test_bfloat16_values_are_plotted() -> None:
    # mixed-precision models give bfloat16 scores; numpy has no such dtype
    from objdet.plotting._common import image_rgb, to_numpy

    values = torch.tensor([0.25, 0.5], dtype=torch.bfloat16)
    np.testing.assert_array_equal(to_numpy(values), [0.25, 0.5])
    _fig, ax = plot_ap_bars(values, ["a", "b"])
    assert len(ax.patches) == 2
    assert image_rgb(torch.ones(2, 2, dtype=torch.bfloat16)).shape == (2, 2, 3)
