"""ConfusionMatrixCallback and PRCurveCallback without a Trainer: arguments, names, drawing, imports."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import objdet.training
import objdet.training.callbacks.pr_curve as pr_module
from objdet.training.callbacks import ConfusionMatrixCallback, PRCurveCallback


def _data() -> tuple[list[dict], list[dict]]:
    preds = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30], [50.0, 50, 60, 60]]),
            "scores": torch.tensor([0.9, 0.6, 0.4]),
            "labels": torch.tensor([0, 2, 2]),
        }
    ]
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]), "labels": torch.tensor([0, 2])}
    ]
    return preds, targets


def _trainer() -> Any:
    return SimpleNamespace(current_epoch=3, global_step=12)


def test_seed_paths_and_exports() -> None:
    from objdet.training.callbacks.confusion_matrix import ConfusionMatrixCallback as seed_cm
    from objdet.training.callbacks.pr_curve import PRCurveCallback as seed_pr

    assert objdet.training.ConfusionMatrixCallback is seed_cm is ConfusionMatrixCallback
    assert objdet.training.PRCurveCallback is seed_pr is PRCurveCallback
    assert {"ConfusionMatrixCallback", "PRCurveCallback"} <= set(objdet.training.__all__)


def test_confusion_matrix_arguments() -> None:
    cb = ConfusionMatrixCallback(num_classes=3)
    assert cb.save_dir is None and cb.tag == "val/confusion_matrix"  # figures go where the loggers put them
    assert (cb.metric.iou_threshold, cb.metric.conf_threshold) == (0.5, 0.25)
    assert cb.metric.matching == "agnostic"
    assert ConfusionMatrixCallback(num_classes=3, matching="class_first").metric.matching == "class_first"
    with pytest.raises(ValueError, match="`matching` must be one of"):
        ConfusionMatrixCallback(num_classes=3, matching="greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`normalize` must be None, 'true', 'pred' or 'all', got 'rows'"):
        ConfusionMatrixCallback(num_classes=3, normalize="rows")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`class_names` must be 3 strings"):
        ConfusionMatrixCallback(num_classes=3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="`num_classes` must be a positive int"):
        ConfusionMatrixCallback(num_classes=0)
    with pytest.raises(ValueError, match="`iou_threshold`"):
        ConfusionMatrixCallback(num_classes=2, iou_threshold=0.0)


def test_confusion_matrix_scalars_and_drawing() -> None:
    cb = ConfusionMatrixCallback(num_classes=3, save_dir=None, normalize="true", prefix="cm/")
    preds, targets = _data()
    cb.update_metric(cb.metric, {"preds": preds, "targets": targets})
    matrix = cb.metric.compute()
    # class 0: one GT, found; class 1: nothing; class 2: one GT found, one false positive
    assert matrix.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    assert cb.scalars(matrix) == {
        "cm/precision": 2 / 3,
        "cm/recall": 1.0,
        "cm/f1": 0.8,
        "cm/precision_per_class/class_0": 1.0,
        "cm/recall_per_class/class_0": 1.0,
        "cm/f1_per_class/class_0": 1.0,
        "cm/precision_per_class/class_2": 0.5,
        "cm/recall_per_class/class_2": 1.0,
        "cm/f1_per_class/class_2": pytest.approx(2 / 3),
    }  # class 1 has no value: neither predicted nor present
    fig = cb.draw(_trainer(), cb.metric, matrix)
    ax = fig.axes[0]
    assert "each row sums to 1" in ax.get_title() and "epoch 3" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "background"
    assert "1.00" in [t.get_text() for t in ax.texts]
    assert ConfusionMatrixCallback(num_classes=3, log_per_class=False).scalars(matrix).keys() == {
        "val/cm/precision",
        "val/cm/recall",
        "val/cm/f1",
    }
    empty = torch.zeros(4, 4, dtype=torch.int64)
    assert cb.scalars(empty) == {}


def test_confusion_matrix_explicit_save_dir(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    cb = ConfusionMatrixCallback(num_classes=3, save_dir=tmp_path / "cm", matching="class_first")
    preds, targets = _data()
    cb.update_metric(cb.metric, {"preds": preds, "targets": targets})
    matrix = cb.metric.compute()
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    trainer = SimpleNamespace(
        loggers=[tb], is_global_zero=True, current_epoch=3, global_step=12, default_root_dir=str(tmp_path)
    )
    files = cb.draw_and_log(trainer, lambda: cb.draw(trainer, cb.metric, matrix))  # type: ignore[arg-type]
    assert files == [(tmp_path / "cm" / "val_confusion_matrix_epoch003_step000012.png").resolve()]
    assert files[0].read_bytes()[:4] == b"\x89PNG"
    assert cb.figures_logged == {"val/confusion_matrix": 1}


def test_scalar_names_are_never_folders_of_each_other() -> None:
    names = ["cat", "cat/tabby", "a b", "x:y", "cat_tabby"]
    cb = ConfusionMatrixCallback(num_classes=5, class_names=names)
    matrix = torch.ones(6, 6, dtype=torch.int64)
    matrix[5, 5] = 0
    keys = list(cb.scalars(matrix))
    assert len(keys) == 3 + 5 * 3
    for key in keys:
        assert not any(other.startswith(key + "/") for other in keys), key
        assert re.fullmatch(r"[A-Za-z0-9_. /-]+", key), key  # what MLflow accepts, nothing dropped
    per_class = {k.rsplit("/", 1)[1] for k in keys if "_per_class/" in k}
    assert per_class == {"cat", "cat_tabby_1", "a b", "x_y", "cat_tabby_4"}
    pr = PRCurveCallback(class_names={0: "cat/tabby", 2: "cat"})
    assert (pr.scalar_name(0), pr.scalar_name(2), pr.scalar_name(7)) == ("cat_tabby", "cat", "class_7")


def test_missing_keys_error_names_the_callback() -> None:
    for cb in (ConfusionMatrixCallback(num_classes=2), PRCurveCallback()):
        with pytest.raises(ValueError, match=rf"{type(cb).__name__}: .*missing 'targets'"):
            cb.extract_outputs({"preds": []}, None)


def test_pr_curve_arguments() -> None:
    with pytest.raises(
        ValueError, match=r"`iou_threshold` must be one of the metric's iou_thresholds .* 0.3"
    ):
        PRCurveCallback(iou_threshold=0.3)
    assert (
        PRCurveCallback(iou_threshold=0.3, metric_kwargs={"iou_thresholds": [0.3, 0.5]}).iou_threshold == 0.3
    )
    with pytest.raises(ValueError, match=r"`plots` must hold only .* got \['roc'\]"):
        PRCurveCallback(plots=("pr", "roc"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`confidence_steps`"):
        PRCurveCallback(confidence_steps=1)
    with pytest.raises(ValueError, match="`average`"):
        PRCurveCallback(average="weighted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`box_format`"):
        PRCurveCallback(box_format="yxyx")  # type: ignore[arg-type]


def test_pr_curve_names_and_figures() -> None:
    cb = PRCurveCallback(class_names={0: "cat"}, plots=("pr", "recall", "ap"), iou_threshold=0.75, tag="v/c")
    preds, targets = _data()
    cb.update_metric(cb.metric, {"preds": preds, "targets": targets})
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    assert cb.last_curves is not None and cb.last_curves.classes.tolist() == [0, 2]
    scalars = cb.scalars(values)
    assert scalars["val/ap_75/cat"] == pytest.approx(1.0)
    assert scalars["val/ap_75/class_2"] == pytest.approx(1.0)
    assert scalars["val/map_75"] == pytest.approx(1.0) and scalars["val/best_f1"] == 1.0
    assert scalars["val/best_f1_confidence"] == pytest.approx(0.401)  # above the false positive's 0.4
    figures = cb.draw(_trainer(), cb.metric, values)
    assert list(figures) == ["v/c/pr", "v/c/recall", "v/c/ap"]
    titles = [f.axes[0].get_title() for f in figures.values()]
    assert all(t.endswith("epoch 3") for t in titles) and "IoU ≥ 0.75" in titles[0]
    legend = [t.get_text() for t in figures["v/c/pr"].axes[0].get_legend().get_texts()]
    assert any(t.startswith("cat") for t in legend) and any(t.startswith("class_2") for t in legend)


def test_pr_curve_draw_failure_closes_what_was_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Any] = []
    real = pr_module.plot_detection_curves

    def fails_second(*args: Any, **kwargs: Any) -> Any:
        if drawn:
            raise RuntimeError("injected")
        fig, ax = real(*args, **kwargs)
        drawn.append(fig)
        return fig, ax

    monkeypatch.setattr(pr_module, "plot_detection_curves", fails_second)
    cb = PRCurveCallback()
    preds, targets = _data()
    cb.update_metric(cb.metric, {"preds": preds, "targets": targets})
    cb.after_compute(_trainer(), cb.metric, cb.metric.compute())
    with pytest.raises(RuntimeError, match="injected"):
        cb.draw(_trainer(), cb.metric, None)
    assert len(drawn) == 1 and drawn[0].axes == []  # cleared


def test_pr_curve_without_data() -> None:
    cb = PRCurveCallback()
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    assert cb.scalars(values) == {
        "val/map": -1.0,
        "val/map_50": -1.0,
        "val/map_75": -1.0,
        "val/mar_100": -1.0,
    }
    figures = cb.draw(_trainer(), cb.metric, values)
    assert len(figures) == 3  # "no data" figures, so that something is always logged


def test_pr_curve_slices_and_bootstrap_scalars_and_figure() -> None:
    from objdet.training.metrics import MeanAveragePrecision
    from tests.helpers.coco_reference import make_dataset, to_torch

    preds, targets = to_torch(make_dataset(4, n_images=12, crowded_image=False), "xyxy")
    tagged = [
        {**t, "image_id": i, "slices": {"even"} if i % 2 == 0 else {"odd"}} for i, t in enumerate(targets)
    ]
    cb = PRCurveCallback(slices=["even", "odd", "never"], bootstrap=50, plots=("ap",))
    cb.update_metric(cb.metric, {"preds": preds, "targets": tagged})
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    scalars = cb.scalars(values)
    alone = MeanAveragePrecision()
    alone.update(preds[::2], [{**t, "image_id": i} for i, t in enumerate(targets)][::2])
    assert scalars["val/slices/even/map"] == pytest.approx(alone.compute()["map"].item())
    assert "val/slices/odd/map_50" in scalars and not any("never" in k for k in scalars)  # no GT: not logged
    ci = cb.metric.bootstrap(50, 0.95, seed=0)
    assert scalars["val/map_ci_low"] == ci.low["map"] and scalars["val/map_ci_high"] == ci.high["map"]
    assert scalars["val/map_50_ci_low"] <= scalars["val/map_50_ci_high"]
    figures = cb.draw(_trainer(), cb.metric, values)
    assert list(figures) == ["val/curves/ap", "val/curves/slices"]
    labels = [t.get_text() for t in figures["val/curves/slices"].axes[0].get_yticklabels()]
    assert sorted(labels) == ["even", "never (no GT)", "odd"]
    with pytest.raises(ValueError, match="`bootstrap` must be an int >= 0"):
        PRCurveCallback(bootstrap=-1)
    with pytest.raises(ValueError, match=r"`bootstrap_level` must lie in \(0, 1\)"):
        PRCurveCallback(bootstrap_level=1.0)


def test_pr_curve_callback_with_keypoints() -> None:
    """The PR / AP callback on a keypoint metric: OKS curves, the keypoint keys in the scalars."""
    from tests.helpers.keypoint_reference import make_keypoint_dataset, pycocotools_keypoints
    from tests.helpers.keypoint_reference import to_torch as keypoint_inputs

    data = make_keypoint_dataset(12)
    preds, targets = keypoint_inputs(data)
    cb = PRCurveCallback(box_format="xywh", metric_kwargs={"iou_type": "keypoints"}, bootstrap=20)
    cb.update_metric(cb.metric, {"preds": preds, "targets": targets})
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    scalars = cb.scalars(values)
    ref = pycocotools_keypoints(data)
    assert scalars["val/map"] == pytest.approx(ref.stats[0], abs=1e-6)
    assert scalars["val/map_50"] == pytest.approx(ref.stats[1], abs=1e-6)
    figures = cb.draw(_trainer(), cb.metric, values)
    assert set(figures) == {"val/curves/pr", "val/curves/f1", "val/curves/ap"}
    for fig in figures.values():
        fig.clear()


def test_pr_curve_callback_with_lvis() -> None:
    """metric_class=LVISMeanAveragePrecision: the federated targets go through, the LVIS keys come back."""
    from objdet.training.metrics import LVISMeanAveragePrecision
    from tests.helpers.lvis_reference import make_lvis_case

    case = make_lvis_case(2, crowded_image=False)
    cb = PRCurveCallback(
        box_format="xywh",
        metric_class=LVISMeanAveragePrecision,
        metric_kwargs={"frequencies": case.frequencies},
    )
    direct = LVISMeanAveragePrecision(box_format="xywh", frequencies=case.frequencies)
    cb.update_metric(cb.metric, {"preds": case.preds, "targets": case.target})
    direct.update(case.preds, case.target)
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    assert isinstance(cb.metric, LVISMeanAveragePrecision)
    assert cb.scalars(values)["val/map"] == pytest.approx(direct.compute()["map"].item())
    assert "map_rare" in values and cb.last_curves is not None
    figures = cb.draw(_trainer(), cb.metric, values)
    for fig in figures.values():
        fig.clear()
    with pytest.raises(ValueError, match="metric_class"):
        PRCurveCallback(metric_class=dict)  # type: ignore[arg-type]
