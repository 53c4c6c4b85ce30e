"""The detection callbacks with real W&B (offline) and MLflow (local file store) loggers, not fakes.

One tiny fit per logger (2 epochs of 4 steps, module-scoped), then each check reads back what
the tool itself stored: MLflow's metric histories and artifacts through ``MlflowClient``, W&B's
history rows from the offline run file (``run-<id>.wandb``) and its media files. Nothing goes to
the network: W&B runs with ``WANDB_MODE=offline``, MLflow with a ``file:`` tracking URI, both
under the test's temporary directory. Skipped when the package is not installed.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from objdet.training import (
    ConfusionMatrixCallback,
    GradientMonitorCallback,
    LearningRateMonitorCallback,
    PRCurveCallback,
    TrainingProgressCallback,
)
from tests.helpers.lightning_models import ShapesDetectionModule, make_trainer

DPI = 40
#: a "/" in a class name must not open a folder in MLflow's file store
CLASSES = ["red", "green/lime", "blue"]
SAFE = ["red", "green_lime", "blue"]
PER_EPOCH_FIGURES = ["val/confusion_matrix", "val/curves/pr", "val/curves/f1", "val/curves/ap"]


def _callbacks() -> list[Any]:
    return [
        ConfusionMatrixCallback(num_classes=3, class_names=CLASSES, dpi=DPI),
        PRCurveCallback(class_names=CLASSES, dpi=DPI),
        GradientMonitorCallback(log_every_n_steps=3, per_layer=True),
        LearningRateMonitorCallback(log_every_n_steps=1, dpi=DPI),
        TrainingProgressCallback(verbose=False, dpi=DPI),
    ]


def _expected_scalars(trainer: Any) -> dict[str, float]:
    """The callbacks' epoch-level scalars (what every logger must hold at the last validation step)."""
    keys = ["val/cm/precision", "val/cm/recall", "val/cm/f1", "val/map", "val/map_50", "val/best_f1"]
    keys += [f"val/cm/{stat}_per_class/{name}" for stat in ("precision", "recall", "f1") for name in SAFE]
    keys += [f"val/ap_50/{name}" for name in SAFE]
    metrics = trainer.callback_metrics
    assert set(keys) <= set(metrics), sorted(set(keys) - set(metrics))
    return {k: float(metrics[k]) for k in keys}


def _no_name_is_a_folder_of_another(names: set[str]) -> None:
    for name in names:
        clash = sorted(other for other in names if other.startswith(name + "/"))
        assert not clash, f"{name!r} is also a folder of {clash}"


# ------------------------------------------------------------------------------------------------ MLflow
@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    root = tmp_path_factory.mktemp("mlflow")
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        logger = MLFlowLogger(experiment_name="objdet", tracking_uri=f"file:{root / 'mlruns'}")
        torch.manual_seed(0)
        trainer = make_trainer(root, logger, callbacks=_callbacks())
        trainer.fit(ShapesDetectionModule())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"root": root, "trainer": trainer, "logger": logger}


def test_mlflow_scalars(mlflow_run: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    logger = mlflow_run["logger"]
    client = MlflowClient(tracking_uri=logger._tracking_uri)
    run = client.get_run(logger.run_id)
    names = set(run.data.metrics)
    _no_name_is_a_folder_of_another(names)
    expected = _expected_scalars(mlflow_run["trainer"])
    assert set(expected) <= names, sorted(set(expected) - names)
    val_steps = sorted(m.step for m in client.get_metric_history(logger.run_id, "val_loss"))
    assert val_steps == [3, 7]
    for key, value in expected.items():
        history = client.get_metric_history(logger.run_id, key)
        assert sorted(m.step for m in history) == val_steps, key
        assert run.data.metrics[key] == pytest.approx(value, rel=1e-6), key
    lr = {m.step: m.value for m in client.get_metric_history(logger.run_id, "lr/opt0-SGD/pg0")}
    assert lr == pytest.approx({s: 0.1 * 0.5 ** (s // 2) for s in range(8)})
    # the monitors' scalars are in the store too
    assert {"grad/norm_total", "progress/percent", "momentum/opt0-SGD/pg0"} <= names


def test_mlflow_figures(mlflow_run: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    logger = mlflow_run["logger"]
    client = MlflowClient(tracking_uri=logger._tracking_uri)
    files = {Path(a.path).name: a for a in client.list_artifacts(logger.run_id, "figures")}
    expected = {
        *(
            f"{t.replace('/', '_')}_epoch00{e}_step00000{4 * e + 3}.png"
            for t in PER_EPOCH_FIGURES
            for e in (0, 1)
        ),
        "train_lr_schedule_epoch001_step000008.png",
        "train_epoch_durations_epoch001_step000008.png",
    }
    assert set(files) == expected
    local = Path(client.download_artifacts(logger.run_id, "figures", str(mlflow_run["root"] / "dl")))
    for name in expected:
        assert (local / name).read_bytes()[:4] == b"\x89PNG", name
        assert files[name].file_size > 1000, name
    # no PNG was written next to the run (MLflow took every figure)
    assert not list((mlflow_run["root"]).glob("figures/*.png"))


# ------------------------------------------------------------------------------------------------ W&B
def _wandb_records(path: Path) -> Iterator[bytes]:
    """Records of a W&B run file: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of
    chunks, each ``crc32 (4) | length (2) | kind (1) | data`` (kind 1 whole, 2/3/4 first/middle/last)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk


def _wandb_history(run_dir: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
    """History rows of the offline run, read once the run file holds its final ``exit`` record
    (W&B's writer runs in another process: the file may lag behind ``wandb.finish()``)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        rows, kinds = [], []
        for data in _wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kinds.append(record.WhichOneof("record_type"))
            if kinds[-1] == "history":
                rows.append(
                    {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
                )
        if "exit" in kinds:
            return rows
        assert time.monotonic() < deadline, f"no exit record in {path} after {timeout} s: {kinds}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("wandb")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    root = tmp_path_factory.mktemp("wandb")
    env = {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_CONFIG_DIR": str(root / "config"),
        "WANDB_CACHE_DIR": str(root / "cache"),
        "WANDB_DATA_DIR": str(root / "data"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        logger = WandbLogger(save_dir=str(root), offline=True, project="objdet")
        torch.manual_seed(0)
        trainer = make_trainer(root, logger, callbacks=_callbacks())
        trainer.fit(ShapesDetectionModule())
        run_dir = Path(logger.experiment.dir).parent
        wandb.finish()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"root": root, "trainer": trainer, "run_dir": run_dir, "history": _wandb_history(run_dir)}


def test_wandb_scalars(wandb_run: dict[str, Any]) -> None:
    rows = wandb_run["history"]
    scalars = {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and "/_" not in k}
    scalars -= {k for k in scalars if k.rsplit("/", 1)[-1] in ("width", "height", "count")}  # image rows
    _no_name_is_a_folder_of_another(scalars)
    expected = _expected_scalars(wandb_run["trainer"])
    steps: dict[str, list[int]] = {}
    last: dict[str, float] = {}
    for row in rows:
        for key in expected:
            if key in row:
                steps.setdefault(key, []).append(row["trainer/global_step"])
                last[key] = row[key]
    val_steps = [row["trainer/global_step"] for row in rows if "val_loss" in row]
    assert val_steps == [3, 7]
    assert steps == dict.fromkeys(expected, val_steps)
    assert last == pytest.approx(expected, rel=1e-6)
    lr = {row["trainer/global_step"]: row["lr/opt0-SGD/pg0"] for row in rows if "lr/opt0-SGD/pg0" in row}
    assert lr == pytest.approx({s: 0.1 * 0.5 ** (s // 2) for s in range(8)})


def test_wandb_figures(wandb_run: dict[str, Any]) -> None:
    rows = wandb_run["history"]
    figures: dict[str, list[int]] = {}
    for row in rows:
        for key, value in row.items():
            if key.endswith("/_type") and value == "images/separated":
                tag = key[: -len("/_type")]
                figures.setdefault(tag, []).append(row["trainer/global_step"])
                (name,) = row[f"{tag}/filenames"]
                png = wandb_run["run_dir"] / "files" / name
                assert png.read_bytes()[:4] == b"\x89PNG", png
    # the figures of an epoch at the step of its val_loss / val/map
    assert figures == {
        **{tag: [3, 7] for tag in PER_EPOCH_FIGURES},
        "train/lr_schedule": [8],
        "train/epoch_durations": [8],
    }
    assert not list(wandb_run["root"].glob("figures/*.png"))  # W&B took every figure
