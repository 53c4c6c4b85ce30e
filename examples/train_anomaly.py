"""objdet example: a tiny convolutional autoencoder finds defects in synthetic textures.

Normal images are woven textures (two sine gratings at a random angle and phase, plus noise);
defective validation images carry one scratch, spot or flat patch with its pixel mask. The
autoencoder is trained on normal images only; the anomaly score of a pixel is the log of its
(smoothed) squared reconstruction error, standardised with statistics of the training
errors at the same position, so a score of 3 means "3 standard deviations above a normal
pixel there". The image score
is the largest pixel score.

Callbacks used: AnomalyHeatmapCallback, ScoreHistogramCallback (pixel level, and image level
through ``extract``), PCAVisualizationCallback (encoder features coloured by defect type),
LearningRateMonitorCallback, GradientMonitorCallback, TrainingProgressCallback and
FailOnNoTrainBatches from objdet, with Lightning's ModelCheckpoint and EarlyStopping. Figures
go to the logger: PNG files under ``<out>/logs/version_<n>/figures`` with the default CSV
logger, TensorBoard images with ``--tensorboard``.

Run with ``python examples/train_anomaly.py [--epochs 10] [--out out/anomaly]`` (about a
minute on an idle 2-core CPU machine).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from objdet.training import (
    AnomalyHeatmapCallback,
    FailOnNoTrainBatches,
    GradientMonitorCallback,
    LearningRateMonitorCallback,
    PCAVisualizationCallback,
    ScoreHistogramCallback,
    TrainingProgressCallback,
)

SIZE = 48
DEFECTS = ["normal", "scratch", "spot", "contamination"]


# -- synthetic data ------------------------------------------------------------------------------------
def textures(n: int, g: torch.Generator) -> Tensor:
    """(n, 1, SIZE, SIZE) woven textures in about [0, 1]."""
    yy, xx = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij"
    )
    theta = (torch.rand(n, 1, 1, generator=g) - 0.5) * 0.5  # +-14 degrees
    phase = torch.rand(n, 2, 1, 1, generator=g) * 2 * math.pi
    freq = 0.75 + 0.1 * torch.rand(n, 1, 1, generator=g)
    u = xx * torch.cos(theta) + yy * torch.sin(theta)
    v = -xx * torch.sin(theta) + yy * torch.cos(theta)
    img = 0.5 + 0.22 * torch.sin(freq * u + phase[:, 0]) + 0.12 * torch.sin(0.5 * freq * v + phase[:, 1])
    img = img + 0.04 * torch.randn(n, SIZE, SIZE, generator=g)
    return img.unsqueeze(1)


def add_defect(img: Tensor, kind: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """One defect ``kind`` (1 scratch, 2 spot, 3 contamination) on a (1, H, W) image: (image, mask)."""
    yy, xx = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij"
    )
    cy, cx = (8 + torch.rand(2, generator=g) * (SIZE - 16)).tolist()
    sign = 1.0 if torch.rand(1, generator=g).item() < 0.5 else -1.0
    img = img.clone()
    if kind == 1:  # scratch: a thin line segment
        angle = torch.rand(1, generator=g).item() * math.pi
        length = 10 + torch.rand(1, generator=g).item() * 14
        dx, dy = math.cos(angle), math.sin(angle)
        t = ((xx - cx) * dx + (yy - cy) * dy).clamp(-length / 2, length / 2)
        dist = torch.hypot(xx - cx - t * dx, yy - cy - t * dy)
        mask = dist <= 1.2
        img[0] = torch.where(mask, img[0] + sign * 0.4, img[0])
    elif kind == 2:  # spot: a soft disc
        radius = 3 + torch.rand(1, generator=g).item() * 3
        r = torch.hypot(xx - cx, yy - cy)
        mask = r <= radius
        img[0] = img[0] + sign * 0.45 * torch.exp(-((r / radius) ** 4))
    else:  # contamination: coarse grainy noise over an irregular blob
        radius = 4 + torch.rand(1, generator=g).item() * 3
        wobble = 1 + 0.3 * torch.sin(
            3 * torch.atan2(yy - cy, xx - cx) + 6 * torch.rand(1, generator=g).item()
        )
        mask = torch.hypot(xx - cx, yy - cy) <= radius * wobble
        grain = F.interpolate(torch.rand(1, 1, SIZE // 2, SIZE // 2, generator=g), size=(SIZE, SIZE))[0, 0]
        img[0] = torch.where(mask, 0.15 + 0.7 * grain, img[0])
    return img.clamp(0.0, 1.0), mask


def make_data(n_train: int, n_val: int, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(seed)
    train = textures(n_train, g).clamp(0.0, 1.0)
    val = textures(n_val, g).clamp(0.0, 1.0)
    masks = torch.zeros(n_val, SIZE, SIZE, dtype=torch.bool)
    kinds = torch.zeros(n_val, dtype=torch.long)
    for i in range(n_val):
        kind = i % 6 if i % 6 < len(DEFECTS) else 0  # 1/2 normal, 1/6 of each defect
        if kind:
            val[i], masks[i] = add_defect(val[i], kind, g)
            kinds[i] = kind
    return TensorDataset(train), TensorDataset(val, masks, kinds)


# -- model ---------------------------------------------------------------------------------------------
class TextureAutoencoder(pl.LightningModule):
    """Autoencoder with a 4x spatial bottleneck; scores are standardised log reconstruction errors."""

    def __init__(self, lr: float = 3e-3, epochs: int = 10, steps_per_epoch: int = 10) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1, padding_mode="reflect"),
            nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, padding_mode="reflect"),
            nn.GELU(),
            nn.Conv2d(32, 6, 1),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(6, 32, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(16, 1, 3, padding=1, padding_mode="reflect"),
        )
        # running mean / std of the log pixel error on normal training images, per pixel position
        # (so that the larger errors near the borders are not taken for defects)
        self.register_buffer("err_mean", torch.zeros(SIZE, SIZE))
        self.register_buffer("err_std", torch.ones(SIZE, SIZE))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z

    def log_error(self, x: Tensor, recon: Tensor) -> Tensor:
        err = F.avg_pool2d((recon - x) ** 2, 3, stride=1, padding=1, count_include_pad=False)
        return torch.log(err[:, 0] + 1e-6)

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        (x,) = batch
        recon, _ = self(x)
        loss = F.mse_loss(recon, x)
        with torch.no_grad():
            e = self.log_error(x, recon)
            self.err_mean.lerp_(e.mean(0), 0.1)
            self.err_std.lerp_(e.std(0), 0.1)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> dict[str, Tensor]:
        x, masks, kinds = batch
        recon, z = self(x)
        scores = (self.log_error(x, recon) - self.err_mean) / self.err_std
        self.log("val/loss", F.mse_loss(recon, x))
        return {
            "scores": scores,  # (B, H, W) raw, unbounded
            "targets": masks,  # (B, H, W) bool
            "images": x,
            "features": torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1),  # (B, 12) per image
            "labels": kinds,  # defect type, for the PCA colours
        }

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=self.hparams.lr,
            total_steps=self.hparams.epochs * self.hparams.steps_per_epoch,
            pct_start=0.25,
        )
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "interval": "step", "name": "onecycle"},
        }


def image_level(outputs: dict[str, Tensor], batch: Any) -> dict[str, Tensor]:
    """``extract`` for the image-level histogram: the largest pixel score vs "has a defect"."""
    return {"scores": outputs["scores"].flatten(1).amax(1), "targets": outputs["targets"].flatten(1).any(1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train", type=int, default=512, help="normal training images")
    parser.add_argument("--val", type=int, default=192, help="validation images (half with a defect)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--threshold", type=float, default=3.0, help="pixel score threshold (standard deviations)"
    )
    parser.add_argument(
        "--image-threshold", type=float, default=3.5, help="threshold on the largest pixel score"
    )
    parser.add_argument("--plot-every", type=int, default=4, help="epochs between heatmap / PCA figures")
    parser.add_argument("--out", type=Path, default=Path("out/anomaly"))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)"
    )
    parser.add_argument(
        "--tensorboard", action="store_true", help="log to TensorBoard instead of CSV + PNG files"
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train, val = make_data(args.train, args.val)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val, batch_size=64)
    model = TextureAutoencoder(epochs=args.epochs, steps_per_epoch=len(train_loader))
    logger: Any = (
        TensorBoardLogger(str(args.out), name="logs")
        if args.tensorboard
        else CSVLogger(str(args.out), name="logs")
    )
    callbacks = [
        AnomalyHeatmapCallback(threshold=args.threshold, num_samples=6, every_n_epochs=args.plot_every),
        ScoreHistogramCallback(
            threshold=args.threshold,
            prefix="val/pixel/",
            tag="val/pixel_scores",
            metric_kwargs={"score_range": (-6.0, 14.0)},
        ),
        ScoreHistogramCallback(
            threshold=args.image_threshold,
            prefix="val/image/",
            tag="val/image_scores",
            extract=image_level,
            metric_kwargs={"score_range": (-6.0, 14.0)},
        ),
        PCAVisualizationCallback(class_names=DEFECTS, every_n_epochs=args.plot_every),
        LearningRateMonitorCallback(log_every_n_steps=1),
        GradientMonitorCallback(log_every_n_steps=5, per_layer=False),
        TrainingProgressCallback(),
        FailOnNoTrainBatches(),
        ModelCheckpoint(
            dirpath=args.out / "checkpoints", monitor="val/image/auroc", mode="max", save_last=True
        ),
        EarlyStopping(monitor="val/pixel/average_precision", mode="max", patience=8),
    ]
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=callbacks,
        log_every_n_steps=5,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(args.out),
    )
    start = time.perf_counter()
    trainer.fit(model, train_loader, val_loader)
    metrics = trainer.callback_metrics
    print(f"\ntrained {trainer.current_epoch} epochs in {time.perf_counter() - start:.1f} s")
    for key in (
        "val/pixel/auroc",
        "val/pixel/average_precision",
        "val/pixel/f1",
        "val/image/auroc",
        "val/image/f1",
    ):
        print(f"  {key:30s} {float(metrics[key]):.4f}")
    figures = sorted(Path(logger.log_dir).rglob("*.png"))
    print(
        f"{len(figures)} figures under {Path(logger.log_dir) / 'figures'}"
        if figures
        else f"logs: {logger.log_dir}"
    )


if __name__ == "__main__":
    main()
