"""examples/train_detector.py runs end to end (shortened) and writes every kind of figure."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_detector_example_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "examples" / "train_detector.py")]
    cmd += ["--epochs", "2", "--train", "64", "--val", "32", "--batch-size", "16", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 2 epochs" in result.stdout and "val/map_50" in result.stdout
    log_dir = tmp_path / "logs" / "version_0"
    figures = {p.name.rsplit("_epoch", 1)[0] for p in (log_dir / "figures").iterdir()}
    assert figures == {
        "val_curves_pr",
        "val_curves_f1",
        "val_curves_ap",
        "val_detections",
        "train_lr_schedule",
        "train_epoch_durations",
        "val_confusion_matrix",  # in the log dir like every other figure (the callback's default)
    }
    assert len(list((log_dir / "figures").glob("val_confusion_matrix_epoch00*.png"))) == 2
    assert not (tmp_path / "confusion_matrices").exists()
    assert "EMAWeightAveraging" in result.stdout  # the averaged weights were validated
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert "EMAWeightAveraging" in checkpoint["callbacks"]
    with open(log_dir / "metrics.csv") as f:
        header = next(csv.reader(f))
    keys = ("val/map", "val/cm/f1_per_class/disc", "val/ap_50/square", "lr/opt0-cosine/pg0")
    keys += ("grad/norm_total",)
    for key in keys:
        assert key in header, key
    assert "cosine" in header  # Lightning's LearningRateMonitor, next to objdet's
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
