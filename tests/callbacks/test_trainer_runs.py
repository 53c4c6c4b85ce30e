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
    ConfusionMatrixCallback,
    DetectionVisualizationCallback,
    FailOnNoTrainBatches,
    GradientMonitorCallback,
    LearningRateMonitorCallback,
    PCAVisualizationCallback,
    PRCurveCallback,
    ScoreHistogramCallback,
    TrainingProgressCallback,
)
from tests.helpers.lightning_models import (
    AnomalyDataset,
    AnomalyModule,
    ShapesDataset,
    ShapesDetectionModule,
    collate_shapes,
    fake_predictions,
    make_trainer,
)

LOGGERS = ["none", "csv", "tb"]
DPI = 40
CLASSES = ["red", "green", "blue"]


def _detection_callbacks(root: Path) -> dict[str, Any]:
    return {
        "vis": DetectionVisualizationCallback(num_samples=6, class_names=CLASSES, dpi=DPI),
        "cm": ConfusionMatrixCallback(num_classes=3, class_names=CLASSES, dpi=DPI),  # default save_dir
        "pr": PRCurveCallback(class_names=CLASSES, dpi=DPI),
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
    return _fit(root, request.param, ShapesDetectionModule(), _detection_callbacks(root))


@pytest.fixture(scope="module", params=LOGGERS)
def anomaly_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp(f"anom_{request.param}")
    return _fit(root, request.param, AnomalyModule(), _anomaly_callbacks())


def _pngs(run: dict[str, Any]) -> set[str]:
    """PNG names written under the run's root, checked to be where the logger kind puts them."""
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
    # the confusion matrix, without save_dir, goes where every other figure goes
    per_epoch = ["val/detections", "val/curves/pr", "val/curves/f1", "val/curves/ap", "val/confusion_matrix"]
    # validation runs before Lightning counts the epoch's last batch: its values (val_loss, val/map)
    # are logged at steps 3 and 7, the figures of the same epochs at the same steps
    if detection_run["logger"] != "none":
        logged = _logged(detection_run)
        assert sorted(logged["val/map"]) == sorted(logged["val_loss"]) == [3, 7]
    if detection_run["logger"] == "tb":
        assert pngs == set()  # TensorBoard took every figure
        assert figures == {
            **{tag: [3, 7] for tag in per_epoch},
            "train/lr_schedule": [8],
            "train/epoch_durations": [8],
        }
    else:  # PNGs under the log dir; end-of-training figures named after the last epoch that ran (1)
        assert pngs == {
            *(
                f"{tag.replace('/', '_')}_epoch00{e}_step00000{4 * e + 3}.png"
                for tag in per_epoch
                for e in (0, 1)
            ),
            "train_lr_schedule_epoch001_step000008.png",
            "train_epoch_durations_epoch001_step000008.png",
        }
    # the sanity check drew nothing: two validated epochs, two figures
    assert detection_run["cb"]["vis"].figures_logged == {"val/detections": 2}
    assert detection_run["cb"]["pr"].figures_logged == {f"val/curves/{k}": 2 for k in ("pr", "f1", "ap")}
    assert detection_run["cb"]["cm"].figures_logged == {"val/confusion_matrix": 2}


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


def _validation_outputs(module: ShapesDetectionModule) -> tuple[list[dict], list[dict]]:
    """What validation_step returns for the whole validation set (predictions do not depend on weights)."""
    preds: list[dict] = []
    targets: list[dict] = []
    for i in range(0, module.n_val, module.batch_size):
        batch = collate_shapes([ShapesDataset(module.n_val, offset=10_000)[j] for j in range(i, i + 4)])
        preds += fake_predictions(batch["targets"])
        targets += batch["targets"]
    return preds, targets


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def plain_confusion_matrix(
    preds: list[dict], targets: list[dict], c: int, iou_thr: float = 0.5, conf: float = 0.25
) -> list[list[int]]:
    """Brute force: per image, greedy one-to-one matching of all (det, GT) pairs by IoU, then score."""
    m = [[0] * (c + 1) for _ in range(c + 1)]
    for p, t in zip(preds, targets, strict=True):
        dets = [
            (box, float(s), int(lab))
            for box, s, lab in zip(p["boxes"].tolist(), p["scores"], p["labels"], strict=True)
            if s >= conf
        ]
        gts = list(zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True))
        pairs = [
            (-_iou(d[0], g[0]), -d[1], di, gi)
            for di, d in enumerate(dets)
            for gi, g in enumerate(gts)
            if _iou(d[0], g[0]) >= iou_thr
        ]
        det_gt: dict[int, int] = {}
        for _, _, di, gi in sorted(pairs):
            if di not in det_gt and gi not in det_gt.values():
                det_gt[di] = gi
        for di, d in enumerate(dets):
            m[gts[det_gt[di]][1] if di in det_gt else c][d[2]] += 1
        for gi, g in enumerate(gts):
            if gi not in det_gt.values():
                m[g[1]][c] += 1
    return m


def test_confusion_matrix_values(detection_run: dict[str, Any]) -> None:
    from objdet.training.metrics import ConfusionMatrix

    preds, targets = _validation_outputs(detection_run["module"])
    expected = plain_confusion_matrix(preds, targets, 3)
    assert sum(expected[3]) > 0 and expected[0][1] + expected[1][2] + expected[2][0] > 0  # FPs, confusions
    cb = detection_run["cb"]["cm"]
    assert cb.last_values.tolist() == expected
    reference = ConfusionMatrix(num_classes=3)
    reference.update(preds, targets)
    assert reference.compute().tolist() == expected
    # scalars: plain precision / recall / F1 per class and over all classes
    col = [sum(row[j] for row in expected) for j in range(3)]
    row = [sum(expected[i][:4]) for i in range(3)]
    tp = [expected[k][k] for k in range(3)]
    values = {"val/cm/precision": sum(tp) / sum(col), "val/cm/recall": sum(tp) / sum(row)}
    values["val/cm/f1"] = 2 * sum(tp) / (sum(col) + sum(row))
    for k, name in enumerate(CLASSES):
        values[f"val/cm/precision_per_class/{name}"] = tp[k] / col[k]
        values[f"val/cm/recall_per_class/{name}"] = tp[k] / row[k]
        values[f"val/cm/f1_per_class/{name}"] = 2 * tp[k] / (col[k] + row[k])
    metrics = detection_run["trainer"].callback_metrics
    assert {k: float(metrics[k]) for k in values} == pytest.approx(values, rel=1e-6)
    if detection_run["logger"] != "none":
        logged = _logged(detection_run)
        steps = sorted(logged["val_loss"])  # pl_module.log: Lightning's steps of epoch-level values
        assert len(steps) == 2
        for key, value in values.items():
            assert logged[key] == pytest.approx(dict.fromkeys(steps, value), rel=1e-6), key


def _pycocotools_reference(preds: list[dict], targets: list[dict]) -> tuple[Any, Any]:
    """pycocotools' summary and its evaluated COCOeval on the outputs (boxes to xywh float64)."""
    import contextlib
    import io

    from tests.helpers.coco_reference import Image, _cocoeval

    def xywh(boxes: torch.Tensor) -> np.ndarray:
        b = boxes.double().reshape(-1, 4).numpy()
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)

    images = [
        Image(
            xywh(t["boxes"]),
            t["labels"].numpy(),
            np.zeros(len(t["labels"]), dtype=np.int64),
            None,
            xywh(p["boxes"]),
            p["scores"].double().numpy(),
            p["labels"].numpy(),
        )
        for p, t in zip(preds, targets, strict=True)
    ]
    ev = _cocoeval(images)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev


def test_pr_curve_values(detection_run: dict[str, Any]) -> None:
    preds, targets = _validation_outputs(detection_run["module"])
    stats, ev = _pycocotools_reference(preds, targets)
    cb = detection_run["cb"]["pr"]
    assert cb.last_values["map"].item() == pytest.approx(stats[0], abs=1e-6)
    assert cb.last_values["map_50"].item() == pytest.approx(stats[1], abs=1e-6)
    # per-class AP@0.5: pycocotools' precision table at IoU 0.5, area all, maxDets 100
    expected = {"val/map": stats[0], "val/map_50": stats[1], "val/map_75": stats[2], "val/mar_100": stats[8]}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][0, :, k, 0, 2]
        expected[f"val/ap_50/{CLASSES[cat]}"] = float(p[p > -1].mean())
    # best micro F1 over the confidence grid, brute force on pycocotools' per-detection matches at IoU 0.5
    scores, tp, n_gt = [], [], 0
    for e in ev.evalImgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        keep = ~np.asarray(e["dtIgnore"][0], dtype=bool)
        scores += list(np.asarray(e["dtScores"])[keep])
        tp += list(np.asarray(e["dtMatches"][0])[keep] > 0)
        n_gt += int((~np.asarray(e["gtIgnore"], dtype=bool)).sum())
    s, t = np.array(scores), np.array(tp)
    f1 = [2 * t[s >= c].sum() / ((s >= c).sum() + n_gt) for c in np.linspace(0, 1, 1001)]
    expected["val/best_f1"] = max(f1)
    expected["val/best_f1_confidence"] = float(np.linspace(0, 1, 1001)[int(np.argmax(f1))])
    metrics = detection_run["trainer"].callback_metrics
    assert {k: float(metrics[k]) for k in expected} == pytest.approx(expected, abs=1e-6)
    assert set(k for k in metrics if k.startswith("val/") and k != "val_loss" and "/cm/" not in k) == set(
        expected
    )
    if detection_run["logger"] != "none":
        logged = _logged(detection_run)
        steps = sorted(logged["val_loss"])
        for key, value in expected.items():
            assert logged[key] == pytest.approx(dict.fromkeys(steps, value), abs=1e-6), key


# -- anomaly run ------------------------------------------------------------------------------------------
def test_anomaly_figures(anomaly_run: dict[str, Any]) -> None:
    figures = _figures(anomaly_run)
    assert figures == {
        "val_anomaly_heatmaps" if anomaly_run["logger"] != "tb" else "val/anomaly_heatmaps": [3, 7],
        "val_anomaly_scores" if anomaly_run["logger"] != "tb" else "val/anomaly_scores": [3, 7],
        # every_n_epochs=2: only the second epoch
        "val_pca_projection" if anomaly_run["logger"] != "tb" else "val/pca/projection": [7],
        "val_pca_scree" if anomaly_run["logger"] != "tb" else "val/pca/scree": [7],
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
            assert len(logged[f"val/pca/{key}"]) == 2  # every epoch, though drawn every 2 epochs


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


def test_metric_callbacks_log_every_epoch_and_draw_every_n(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    cm = ConfusionMatrixCallback(num_classes=3, save_dir=None, every_n_epochs=2, dpi=DPI)
    pr = PRCurveCallback(every_n_epochs=2, plots=("pr",), dpi=DPI)
    lazy = PRCurveCallback(
        every_n_epochs=2, compute_every_epoch=False, plots=("ap",), tag="lazy", prefix="lazy/"
    )
    seen: list[tuple[int, bool]] = []

    class Spy(ConfusionMatrixCallback):
        def finish_epoch(self, trainer: Any, pl_module: Any) -> None:
            seen.append((trainer.current_epoch, self.drawing_epoch))
            super().finish_epoch(trainer, pl_module)

    spy = Spy(num_classes=3, save_dir=None, every_n_epochs=3, tag="spy", prefix="spy/", dpi=DPI)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/map", mode="max")
    stop = EarlyStopping(monitor="val/cm/f1", mode="max", patience=10)
    trainer = make_trainer(
        tmp_path,
        "csv",
        callbacks=[cm, pr, lazy, spy, checkpoint, stop],
        max_epochs=3,
        num_sanity_val_steps=2,
        enable_checkpointing=True,
    )
    trainer.fit(ShapesDetectionModule(n_train=4))  # 1 step per epoch; monitors find their keys at epoch 0
    assert seen == [(0, False), (1, False), (2, True)]  # not in the sanity check
    logged = _logged({"root": tmp_path, "logger": "csv"})
    assert len(logged["val/map"]) == len(logged["val/cm/f1"]) == len(logged["spy/f1"]) == 3
    assert len(logged["lazy/map"]) == 1  # compute_every_epoch=False: only in drawing epochs
    assert sorted(p.name for p in (tmp_path / "csv" / "version_0" / "figures").iterdir()) == [
        "lazy_ap_epoch001_step000001.png",
        "spy_epoch002_step000002.png",
        "val_confusion_matrix_epoch001_step000001.png",
        "val_curves_pr_epoch001_step000001.png",
    ]
    assert checkpoint.best_model_score is not None


def test_every_n_epochs_and_sanity_check(tmp_path: Path) -> None:
    cb = DetectionVisualizationCallback(every_n_epochs=2, dpi=DPI)
    trainer = make_trainer(tmp_path, "none", callbacks=[cb], max_epochs=4, num_sanity_val_steps=2)
    trainer.fit(ShapesDetectionModule(n_train=4))
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "val_detections_epoch001_step000001.png",
        "val_detections_epoch003_step000003.png",
    ]
