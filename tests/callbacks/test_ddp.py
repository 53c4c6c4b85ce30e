"""Two CPU processes (gloo) running Lightning DDP with the metric callbacks; a plotting error on rank 0."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from matplotlib.figure import Figure
from torchmetrics import Metric

from objdet.training import AnomalyHeatmapCallback, PCAVisualizationCallback, ScoreHistogramCallback
from objdet.training.metrics import AnomalyDetectionMetrics, ExplainedVarianceMetric
from tests.helpers.ddp import run_distributed
from tests.helpers.lightning_models import AnomalyDataset, AnomalyModule

DPI = 40


class _RecordingHistogram(ScoreHistogramCallback):
    """Records how many scores the state it draws holds (the synced, global state on rank 0)."""

    drawn_counts: list[int]

    def draw(self, trainer: Any, metric: Metric, values: Any) -> Figure:
        self.drawn_counts = [*getattr(self, "drawn_counts", []), int(metric.histogram.sum())]
        return super().draw(trainer, metric, values)


def _broken_grid(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected plotting bug on rank 0")


def _worker(rank: int, world_size: int, root: str) -> dict[str, Any]:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    import objdet.training.callbacks.anomaly_heatmap as heatmap_module

    # the process group exists already (harness); Lightning joins it instead of launching processes
    os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(world_size), NODE_RANK="0")
    heatmap_module.plot_anomaly_heatmap_grid = _broken_grid  # every drawing of this callback fails
    torch.manual_seed(0)
    module = AnomalyModule(lr=0.0)  # weights stay at their (seeded) initial values
    hist = _RecordingHistogram(threshold=0.05, dpi=DPI)
    heat = AnomalyHeatmapCallback(threshold=0.05, dpi=DPI)
    pca = PCAVisualizationCallback(dpi=DPI)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world_size,
        strategy="ddp",
        callbacks=[hist, heat, pca],
        max_epochs=2,
        default_root_dir=root,
        logger=CSVLogger(root, name="csv"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module)
    return {
        "hist": {k: v.item() for k, v in hist.last_values.items()},
        "pca": {k: v.item() for k, v in pca.last_values.items()},
        "drawn_counts": getattr(hist, "drawn_counts", []),
        "figures": {**hist.figures_logged, **heat.figures_logged, **pca.figures_logged},
        "warnings": [str(w.message) for w in caught if "injected" in str(w.message)],
        "epochs": trainer.current_epoch,
    }


def test_ddp_two_processes(tmp_path: Path) -> None:
    results = run_distributed(_worker, world_size=2, payload=str(tmp_path), timeout=240)
    # one process over the whole validation set, same weights
    torch.manual_seed(0)
    module = AnomalyModule(lr=0.0)
    data = AnomalyDataset(module.n_val, offset=10_000)
    images = torch.stack([data[i][0] for i in range(len(data))])
    masks = torch.stack([data[i][1] for i in range(len(data))])
    with torch.no_grad():
        out = module.validation_step((images, masks), 0)
    ref = AnomalyDetectionMetrics(threshold=0.05)
    ref.update(out["scores"], out["targets"])
    expected = {k: v.item() for k, v in ref.compute().items()}
    ev = ExplainedVarianceMetric(n_components=2)
    ev.update(out["features"])
    expected_pca = {k: v.item() for k, v in ev.compute().items()}
    for rank, res in enumerate(results):
        assert res["epochs"] == 2
        assert res["hist"] == pytest.approx(expected, abs=0, nan_ok=True), (
            rank
        )  # counts and histograms: exact
        assert res["pca"] == pytest.approx(expected_pca, abs=1e-12), rank
    # rank 0 drew the global state (all 12 maps of 16 x 16 scores, not its 6) and logged the figures;
    # the heatmap's plotting error became a warning on rank 0 and nobody hung
    assert results[0]["drawn_counts"] == [12 * 16 * 16] * 2
    assert results[0]["figures"] == {"val/anomaly_scores": 2, "val/pca/projection": 2, "val/pca/scree": 2}
    assert len(results[0]["warnings"]) == 2 and "val/anomaly_heatmaps" in results[0]["warnings"][0]
    assert results[1]["drawn_counts"] == [] and results[1]["figures"] == {} and results[1]["warnings"] == []
    names = sorted(p.name for p in (tmp_path / "csv" / "version_0" / "figures").iterdir())
    assert names == [
        "val_anomaly_scores_epoch000_step000001.png",
        "val_anomaly_scores_epoch001_step000003.png",
        "val_pca_projection_epoch000_step000001.png",
        "val_pca_projection_epoch001_step000003.png",
        "val_pca_scree_epoch000_step000001.png",
        "val_pca_scree_epoch001_step000003.png",
    ]


# -- detection callbacks ---------------------------------------------------------------------------------
CLASSES = ["red", "green", "blue"]


def _detection_callbacks(root: str) -> list[Any]:
    from objdet.training import ConfusionMatrixCallback, DetectionVisualizationCallback, PRCurveCallback

    return [
        ConfusionMatrixCallback(num_classes=3, class_names=CLASSES, save_dir=Path(root) / "cm", dpi=DPI),
        PRCurveCallback(class_names=CLASSES, dpi=DPI),
        DetectionVisualizationCallback(num_samples=4, class_names=CLASSES, dpi=DPI),
    ]


def _detection_worker(rank: int, world_size: int, root: str) -> dict[str, Any]:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    import objdet.training.callbacks.pr_curve as pr_module
    from tests.helpers.lightning_models import ShapesDetectionModule

    os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(world_size), NODE_RANK="0")
    if rank == 0:  # only rank 0 draws: its PR figures fail, the other ranks must not wait for it
        pr_module.plot_detection_curves = _broken_grid
    torch.manual_seed(0)
    cm, pr, vis = callbacks = _detection_callbacks(root)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world_size,
        strategy="ddp",
        callbacks=callbacks,
        max_epochs=2,
        default_root_dir=root,
        logger=CSVLogger(root, name="csv"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(ShapesDetectionModule())
    return {
        "cm": cm.last_values.tolist(),
        "map": {k: v.tolist() for k, v in pr.last_values.items()},
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
        "figures": {**cm.figures_logged, **pr.figures_logged, **vis.figures_logged},
        "warnings": [str(w.message) for w in caught if "injected" in str(w.message)],
        "epochs": trainer.current_epoch,
    }


def test_ddp_detection_callbacks(tmp_path: Path) -> None:
    from tests.helpers.lightning_models import ShapesDetectionModule, make_trainer

    results = run_distributed(_detection_worker, world_size=2, payload=str(tmp_path / "ddp"), timeout=240)
    # the same fit in one process
    single = _detection_callbacks(str(tmp_path / "single"))
    make_trainer(tmp_path / "single", "csv", callbacks=single, num_sanity_val_steps=0).fit(
        ShapesDetectionModule()
    )
    for rank, res in enumerate(results):
        assert res["epochs"] == 2, rank
        assert res["cm"] == single[0].last_values.tolist(), rank
        assert res["map"] == {k: v.tolist() for k, v in single[1].last_values.items()}, rank
    assert results[0]["metrics"] == results[1]["metrics"]  # every rank logs the same (global) scalars
    assert "val/map_50" in results[0]["metrics"] and "val/cm/f1_per_class/red" in results[0]["metrics"]
    # rank 0 wrote the confusion matrices (the same pictures as one process) and the detections; its PR
    # figures failed with a warning per epoch; rank 1 drew nothing
    assert results[0]["figures"] == {"val/confusion_matrix": 2, "val/detections": 2}
    assert len(results[0]["warnings"]) == 2 and "val/curves" in results[0]["warnings"][0]
    assert results[1]["figures"] == {} and results[1]["warnings"] == []
    ddp_cm = sorted((tmp_path / "ddp" / "cm").iterdir())
    single_cm = sorted((tmp_path / "single" / "cm").iterdir())
    assert [p.name for p in ddp_cm] == [
        "val_confusion_matrix_epoch000_step000001.png",
        "val_confusion_matrix_epoch001_step000003.png",
    ]
    assert [p.name for p in single_cm] == [
        "val_confusion_matrix_epoch000_step000003.png",
        "val_confusion_matrix_epoch001_step000007.png",
    ]
    for ddp_png, single_png in zip(ddp_cm, single_cm, strict=True):
        assert ddp_png.read_bytes() == single_png.read_bytes()
    figures = sorted(p.name for p in (tmp_path / "ddp" / "csv" / "version_0" / "figures").iterdir())
    assert figures == ["val_detections_epoch000_step000001.png", "val_detections_epoch001_step000003.png"]
