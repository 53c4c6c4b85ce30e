"""objdet example: a tiny CenterNet-style detector learns to find squares, discs and triangles.

The data are synthetic (``shapes.py`` next to this file): 64 x 64 images with 1-4 shapes of
random colour and size on a noisy gradient. The detector predicts a centre heatmap per class
and each centre's box size at stride 4; ``validation_step`` returns ``{"preds", "targets"}``
in the torchmetrics detection format, which is all objdet's detection callbacks read.

Callbacks used: ConfusionMatrixCallback, PRCurveCallback (PR curves, F1 vs confidence, AP per
class), DetectionVisualizationCallback, GradientMonitorCallback, LearningRateMonitorCallback,
TrainingProgressCallback and FailOnNoTrainBatches from objdet, with Lightning's
ModelCheckpoint and EarlyStopping (both on ``val/map``), LearningRateMonitor and
EMAWeightAveraging (validation, and so every metric and figure, sees the exponential moving
average of the weights; ``--no-ema`` turns it off). Figures go to the logger: PNG files under
``<out>/logs/version_<n>/figures`` with the default CSV logger, TensorBoard images with
``--tensorboard``.

Run with ``python examples/train_detector.py [--epochs 20] [--out out/detector]`` (about a
minute on an idle 2-core CPU machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    EMAWeightAveraging,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import CLASSES, ShapesDataModule, TinyCenterNet

from objdet.training import (
    ConfusionMatrixCallback,
    DetectionVisualizationCallback,
    FailOnNoTrainBatches,
    GradientMonitorCallback,
    LearningRateMonitorCallback,
    PRCurveCallback,
    TrainingProgressCallback,
)


def detection_callbacks(out: Path, plot_every: int, conf_threshold: float, ema: bool = True) -> list[Any]:
    """objdet's detection callbacks and Lightning's checkpointing, early stopping, LR monitor and EMA."""
    # EMAWeightAveraging swaps the averaged weights in for validation (and back after it): the
    # outputs objdet's callbacks read come from the averaged model, whatever the callback order
    averaging = [EMAWeightAveraging(decay=0.99)] if ema else []
    return [
        *averaging,
        ConfusionMatrixCallback(
            num_classes=len(CLASSES),
            class_names=CLASSES,
            iou_threshold=0.5,
            conf_threshold=conf_threshold,
            every_n_epochs=plot_every,
        ),
        PRCurveCallback(class_names=CLASSES, plots=("pr", "f1", "ap"), every_n_epochs=plot_every),
        DetectionVisualizationCallback(
            num_samples=8, score_threshold=conf_threshold, class_names=CLASSES, every_n_epochs=plot_every
        ),
        GradientMonitorCallback(log_every_n_steps=10),
        LearningRateMonitorCallback(log_every_n_steps=10),
        TrainingProgressCallback(),
        FailOnNoTrainBatches(),
        ModelCheckpoint(dirpath=out / "checkpoints", monitor="val/map", mode="max", save_last=True),
        EarlyStopping(monitor="val/map", mode="max", patience=6),
        LearningRateMonitor(logging_interval="epoch"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train", type=int, default=1024, help="training images")
    parser.add_argument("--val", type=int, default=128, help="validation images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--conf-threshold", type=float, default=0.3, help="confusion matrix / drawing")
    parser.add_argument(
        "--plot-every", type=int, default=1, help="validated epochs between figures (and mAP values)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/detector"))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)"
    )
    parser.add_argument(
        "--tensorboard", action="store_true", help="log to TensorBoard instead of CSV + PNG files"
    )
    parser.add_argument("--no-ema", action="store_true", help="without Lightning's EMAWeightAveraging")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    data = ShapesDataModule(n_train=args.train, n_val=args.val, batch_size=args.batch_size)
    model = TinyCenterNet(num_classes=len(CLASSES), epochs=args.epochs)
    logger: Any = (
        TensorBoardLogger(str(args.out), name="logs")
        if args.tensorboard
        else CSVLogger(str(args.out), name="logs")
    )
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=detection_callbacks(args.out, args.plot_every, args.conf_threshold, ema=not args.no_ema),
        log_every_n_steps=10,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(args.out),
    )
    start = time.perf_counter()
    trainer.fit(model, data)
    metrics = trainer.callback_metrics
    print(f"\ntrained {trainer.current_epoch} epochs in {time.perf_counter() - start:.1f} s")
    if not args.no_ema:
        print("validated with the EMAWeightAveraging weights (decay 0.99)")
    keys = ["val/map", "val/map_50", "val/map_75", "val/best_f1", "val/best_f1_confidence"]
    keys += ["val/cm/precision", "val/cm/recall", "val/cm/f1"]
    keys += [f"val/ap_50/{name}" for name in CLASSES]
    for key in keys:
        if key in metrics:
            print(f"  {key:30s} {float(metrics[key]):.4f}")
    figures = sorted(Path(logger.log_dir).rglob("*.png"))
    print(
        f"{len(figures)} figures under {Path(logger.log_dir) / 'figures'}"
        if figures
        else f"logs: {logger.log_dir}"
    )


if __name__ == "__main__":
    main()
