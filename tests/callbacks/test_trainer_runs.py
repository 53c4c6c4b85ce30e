"""Every callback in real ``lightning.Trainer`` fits on CPU, without a logger, with CSVLogger and TensorBoard.

One detection fit and one anomaly fit per logger kind (module-scoped, shared by the checks below):
2 epochs, 4 training steps per epoch, the default 2-batch sanity check (which must draw nothing).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from objdet.training import (
    AnomalyHeatmapCallback,
    DetectionVisualizationCallback,
    FailOnNoTrainBatches,
    GradientMonitorCallback,
    LearningRateMonitorCallback,
    PCAVisualizationCallback,
    ScoreHistogramCallback,
    TrainingProgressCallback,
)
from tests.helpers.lightning_models import AnomalyDataset, AnomalyModule, ShapesDetectionModule, make_trainer

LOGGERS = ["none", "csv", "tb"]
DPI = 40


def _detection_callbacks() -> dict[str, Any]:
    return {
        "vis": DetectionVisualizationCallback(num_samples=6, class_names=["red", "green", "blue"], dpi=DPI),
        "grad": GradientMonitorCallback(log_every_n_steps=3, per_layer=True),
        "lr": LearningRateMonitorCallback(log_every_n_steps=1, dpi=DPI),
        "progress": TrainingProgressCallback(verbose=False, dpi=DPI),
        "fail": FailOnNoTrainBatches(),
    }


def _anomaly_callbacks() -> dict[str, Any]:
    return {
        "heatmap": AnomalyHeatmapCallback(threshold=0.05, num_samples=4, dpi=DPI),
        "hist": ScoreHistogramCallback(threshold=0.05, dpi=DPI),
        "pca": PCAVisualizationCallback(class_names=["normal", "anomalous"], every_n_epochs=2, dpi=DPI),
    }


def _fit(root: Path, logger: str, module: Any, callbacks: dict[str, Any]) -> dict[str, Any]:
    trainer = make_trainer(root, logger, callbacks=list(callbacks.values()))
    trainer.fit(module)
    return {"root": root, "trainer": trainer, "module": module, "cb": callbacks, "logger": logger}


@pytest.fixture(scope="module", params=LOGGERS)
def detection_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp(f"det_{request.param}")
    return _fit(root, request.param, ShapesDetectionModule(), _detection_callbacks())


@pytest.fixture(scope="module", params=LOGGERS)
def anomaly_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp(f"anom_{request.param}")
    return _fit(root, request.param, AnomalyModule(), _anomaly_callbacks())


def _pngs(run: dict[str, Any]) -> set[str]:
    """PNG names written anywhere under the run's root, checked to be where the logger kind puts them."""
    root: Path = run["root"]
    found = sorted(root.rglob("*.png"))
    expected_dir = {"none": root / "figures", "csv": root / "csv" / "version_0" / "figures"}.get(
        run["logger"]
    )
    for path in found:
        assert path.parent == expected_dir, path
        assert path.read_bytes()[:4] == b"\x89PNG"
    return {p.name for p in found}


def _csv_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    with open(run["root"] / "csv" / "version_0" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _tb(run: dict[str, Any]) -> EventAccumulator:
    events = EventAccumulator(
        str(run["root"] / "tb" / "version_0"), size_guidance={"images": 0, "scalars": 0}
    )
    events.Reload()
    return events


def _logged(run: dict[str, Any]) -> dict[str, dict[int, float]]:
    """{key: {step: value}} as the logger stored it (empty without a logger)."""
    out: dict[str, dict[int, float]] = {}
    if run["logger"] == "csv":
        for row in _csv_rows(run):
            for key, value in row.items():
                if key not in ("epoch", "step") and value != "":
                    out.setdefault(key, {})[int(row["step"])] = float(value)
    elif run["logger"] == "tb":
        events = _tb(run)
        for key in events.Tags()["scalars"]:
            out[key] = {e.step: e.value for e in events.Scalars(key)}
    return out


def _figures(run: dict[str, Any]) -> dict[str, list[int]]:
    """{tag: steps} of the figures that reached the logger: TensorBoard images or PNG files."""
    if run["logger"] == "tb":
        events = _tb(run)
        return {tag: [e.step for e in events.Images(tag)] for tag in events.Tags()["images"]}
    out: dict[str, list[int]] = {}
    for name in sorted(_pngs(run)):
        tag, rest = name.rsplit("_epoch", 1)
        out.setdefault(tag, []).append(int(rest.split("_step")[1][:-4]))
    return out


# -- detection run ----------------------------------------------------------------------------------------
def test_detection_figures(detection_run: dict[str, Any]) -> None:
    pngs = _pngs(detection_run)
    figures = _figures(detection_run)
    if detection_run["logger"] == "tb":
        assert pngs == set()  # TensorBoard took every figure
        assert figures == {"val/detections": [4, 8], "train/lr_schedule": [8], "train/epoch_durations": [8]}
    else:
        assert pngs == {
            "val_detections_epoch000_step000004.png",
            "val_detections_epoch001_step000008.png",
            "train_lr_schedule_epoch002_step000008.png",
            "train_epoch_durations_epoch002_step000008.png",
        }
    # the sanity check drew nothing: two validated epochs, two figures
    assert detection_run["cb"]["vis"].figures_logged == {"val/detections": 2}


def test_gradient_monitor_keys(detection_run: dict[str, Any]) -> None:
    cb = detection_run["cb"]["grad"]
    keys = {
        "grad/norm_total",
        "grad/max_abs",
        "grad/nonfinite_count",
        "grad/norm/net.weight",
        "grad/norm/net.bias",
    }
    assert set(cb.last_values) == keys
    logged = _logged(detection_run)
    if detection_run["logger"] != "none":
        for key in keys:
            assert sorted(logged[key]) == [0, 3, 6], key  # gated on global_step % 3
        assert logged["grad/nonfinite_count"] == {0: 0.0, 3: 0.0, 6: 0.0}
        total = logged["grad/norm_total"]
        parts = [logged["grad/norm/net.weight"], logged["grad/norm/net.bias"]]
        for step in total:
            assert total[step] == pytest.approx(np.hypot(parts[0][step], parts[1][step]), rel=1e-6)


def test_lr_monitor_values(detection_run: dict[str, Any]) -> None:
    cb = detection_run["cb"]["lr"]
    expected = {s: 0.1 * 0.5 ** (s // 2) for s in range(8)}  # StepLR(step_size=2, gamma=0.5) per step
    assert cb.history == {"lr/opt0-SGD/pg0": [[float(s), pytest.approx(v)] for s, v in expected.items()]}
    metrics = detection_run["trainer"].callback_metrics
    assert float(metrics["lr/opt0-SGD/pg0"]) == pytest.approx(expected[7])
    assert float(metrics["momentum/opt0-SGD/pg0"]) == pytest.approx(0.9)
    assert float(metrics["weight_decay/opt0-SGD/pg0"]) == pytest.approx(1e-4)
    if detection_run["logger"] != "none":
        logged = _logged(detection_run)
        assert logged["lr/opt0-SGD/pg0"] == pytest.approx(expected)
        assert logged["momentum/opt0-SGD/pg0"] == pytest.approx(dict.fromkeys(range(8), 0.9))


def test_progress_values(detection_run: dict[str, Any]) -> None:
    cb = detection_run["cb"]["progress"]
    assert [r["epoch"] for r in cb.epochs] == [0.0, 1.0]
    assert [r["percent"] for r in cb.epochs] == [50.0, 100.0]
    assert [r["steps"] for r in cb.epochs] == [4.0, 4.0]
    for r in cb.epochs:
        assert r["val_s"] > 0 and r["train_s"] > 0
        assert r["train_s"] + r["val_s"] == pytest.approx(r["total_s"])
    if detection_run["logger"] != "none":
        logged = _logged(detection_run)
        assert logged["progress/percent"] == {4: 50.0, 8: 100.0}
        assert logged["progress/eta_seconds"][8] == 0.0
        assert logged["progress/eta_seconds"][4] == pytest.approx(cb.epochs[0]["total_s"], rel=1e-5)
        for key in ("epoch_seconds", "train_seconds", "val_seconds", "steps_per_second"):
            assert sorted(logged[f"progress/{key}"]) == [4, 8]


# -- anomaly run ------------------------------------------------------------------------------------------
def test_anomaly_figures(anomaly_run: dict[str, Any]) -> None:
    figures = _figures(anomaly_run)
    assert figures == {
        "val_anomaly_heatmaps" if anomaly_run["logger"] != "tb" else "val/anomaly_heatmaps": [4, 8],
        "val_anomaly_scores" if anomaly_run["logger"] != "tb" else "val/anomaly_scores": [4, 8],
        # every_n_epochs=2: only the second epoch
        "val_pca_projection" if anomaly_run["logger"] != "tb" else "val/pca/projection": [8],
        "val_pca_scree" if anomaly_run["logger"] != "tb" else "val/pca/scree": [8],
    }


def _reference_outputs(module: AnomalyModule) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = AnomalyDataset(module.n_val, offset=10_000)
    images = torch.stack([data[i][0] for i in range(len(data))])
    masks = torch.stack([data[i][1] for i in range(len(data))])
    with torch.no_grad():
        out = module.validation_step((images, masks), 0)
    return out["scores"], masks, out["features"].double()


def test_score_histogram_values(anomaly_run: dict[str, Any]) -> None:
    scores, masks, _ = _reference_outputs(anomaly_run["module"])
    flagged = scores >= 0.05
    tp = (flagged & masks).sum().item()
    fp = (flagged & ~masks).sum().item()
    fn = (~flagged & masks).sum().item()
    values = anomaly_run["cb"]["hist"].last_values
    assert values["precision"].item() == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert values["recall"].item() == pytest.approx(tp / (tp + fn), abs=1e-12)
    # AUROC by brute force over all (anomalous, normal) pixel pairs, within the histogram's bound
    pos, neg = scores[masks].double(), scores[~masks].double()
    auroc = ((pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()).mean().item()
    assert values["auroc"].item() == pytest.approx(auroc, abs=0.01)
    metrics = anomaly_run["trainer"].callback_metrics
    assert float(metrics["val/anomaly/precision"]) == pytest.approx(tp / (tp + fp))
    if anomaly_run["logger"] != "none":
        logged = _logged(anomaly_run)
        keys = ("precision", "recall", "f1", "iou", "specificity", "accuracy", "auroc", "average_precision")
        for key in (*keys, "best_f1", "best_f1_threshold"):
            assert len(logged[f"val/anomaly/{key}"]) == 2, key  # both epochs


def test_pca_values(anomaly_run: dict[str, Any]) -> None:
    _, _, features = _reference_outputs(anomaly_run["module"])
    evals = np.linalg.eigvalsh(np.cov(features.numpy(), rowvar=False))[::-1]
    ratios = evals / evals.sum()
    values = anomaly_run["cb"]["pca"].last_values
    assert values["comp_0"].item() == pytest.approx(ratios[0], abs=1e-9)
    assert values["comp_1"].item() == pytest.approx(ratios[1], abs=1e-9)
    assert values["cumulative"].item() == pytest.approx(ratios[:2].sum(), abs=1e-9)
    if anomaly_run["logger"] != "none":
        logged = _logged(anomaly_run)
        for key in ("comp_0", "comp_1", "cumulative"):
            assert len(logged[f"val/pca/{key}"]) == 1  # every_n_epochs=2


# -- failures, resumption, validate ------------------------------------------------------------------------
def test_plotting_error_warns_and_training_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import objdet.training.callbacks.detection_visualization as module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected plotting bug")

    monkeypatch.setattr(module, "plot_detections", broken)
    cb = DetectionVisualizationCallback(dpi=DPI)
    trainer = make_trainer(tmp_path, "csv", callbacks=[cb], max_epochs=1)
    with pytest.warns(RuntimeWarning, match="injected plotting bug"):
        trainer.fit(ShapesDetectionModule())
    assert trainer.current_epoch == 1 and trainer.global_step == 4
    assert list(tmp_path.rglob("*.png")) == [] and cb.figures_logged == {}


def test_bad_outputs_fail_with_the_callbacks_message(tmp_path: Path) -> None:
    class NoPreds(ShapesDetectionModule):
        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            return {"loss": torch.tensor(0.0)}

    trainer = make_trainer(tmp_path, "none", callbacks=[DetectionVisualizationCallback()], max_epochs=1)
    with pytest.raises(
        ValueError, match=r"DetectionVisualizationCallback: `outputs` of validation_step must"
    ):
        trainer.fit(NoPreds())


def test_resumed_run_continues_counters(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    def callbacks() -> list[Any]:
        return [
            LearningRateMonitorCallback(log_every_n_steps=1, plot=False),
            TrainingProgressCallback(verbose=False, plot=False),
            DetectionVisualizationCallback(num_samples=2, dpi=DPI),
            ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True),
        ]

    first = callbacks()
    make_trainer(tmp_path, "none", callbacks=first, max_epochs=1, enable_checkpointing=True).fit(
        ShapesDetectionModule()
    )
    assert first[2].figures_logged == {"val/detections": 1}
    second = callbacks()
    trainer = make_trainer(tmp_path, "none", callbacks=second, max_epochs=3, enable_checkpointing=True)
    trainer.fit(ShapesDetectionModule(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    lr, progress, vis = second[:3]
    assert [s for s, _ in lr.history["lr/opt0-SGD/pg0"]] == [float(s) for s in range(12)]
    assert [r["epoch"] for r in progress.epochs] == [0.0, 1.0, 2.0]
    assert vis.figures_logged == {"val/detections": 3}


def test_validate_runs_regardless_of_every_n_epochs(tmp_path: Path) -> None:
    cb = DetectionVisualizationCallback(every_n_epochs=5, dpi=DPI)
    trainer = make_trainer(tmp_path, "none", callbacks=[cb])
    trainer.validate(ShapesDetectionModule())
    assert cb.figures_logged == {"val/detections": 1}
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["val_detections_epoch000_step000000.png"]


def test_every_n_epochs_and_sanity_check(tmp_path: Path) -> None:
    cb = DetectionVisualizationCallback(every_n_epochs=2, dpi=DPI)
    trainer = make_trainer(tmp_path, "none", callbacks=[cb], max_epochs=4, num_sanity_val_steps=2)
    trainer.fit(ShapesDetectionModule(n_train=4))
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "val_detections_epoch001_step000002.png",
        "val_detections_epoch003_step000004.png",
    ]
