"""examples/train_anomaly.py runs end to end (shortened) and writes every kind of figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_anomaly_example_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "examples" / "train_anomaly.py")]
    cmd += ["--epochs", "2", "--train", "128", "--val", "48", "--plot-every", "2", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val/pixel/auroc" in result.stdout and "val/image/auroc" in result.stdout
    figures = {p.name.rsplit("_epoch", 1)[0] for p in (tmp_path / "logs" / "version_0" / "figures").iterdir()}
    assert figures == {
        "val_anomaly_heatmaps",
        "val_pixel_scores",
        "val_image_scores",
        "val_pca_projection",
        "val_pca_scree",
        "train_lr_schedule",
        "train_epoch_durations",
    }
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
