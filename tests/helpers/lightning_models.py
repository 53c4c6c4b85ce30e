"""Tiny Lightning modules and synthetic data for callback tests (CPU, a fraction of a second per fit).

* :func:`shapes_sample` / :class:`ShapesDetectionModule`: images with coloured squares, their GT
  boxes, and a "detector" whose validation_step returns the GT boxes jittered, scored, some
  with the wrong class, with a false positive per image (the callbacks never call the model,
  so a learned detector is not needed to test them); the predictions of an image depend on
  it alone, not on the batching (one process and DDP see the same). Batches are dicts
  ``{"images", "targets"}``.
* :func:`anomaly_batch` / :class:`AnomalyModule`: textures with bright defects, a one-layer
  convolutional autoencoder; validation_step returns ``scores`` (B, H, W), ``targets``,
  ``features`` (B, C) and image ``labels``. Batches are tuples ``(images, masks)``.

Everything is module level so that it pickles for spawned DDP processes.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset


# -- detection ---------------------------------------------------------------------------------------
def shapes_sample(index: int, size: int = 32, num_classes: int = 3) -> tuple[Tensor, dict[str, Tensor]]:
    """Image (3, size, size) in [0, 1] with 1-3 squares of class = colour channel, and its target."""
    g = torch.Generator().manual_seed(1000 + index)
    image = 0.1 + 0.05 * torch.rand(3, size, size, generator=g)
    boxes, labels = [], []
    for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
        s = int(torch.randint(size // 5, size // 2, (1,), generator=g))
        x, y = torch.randint(0, size - s, (2,), generator=g).tolist()
        c = int(torch.randint(0, num_classes, (1,), generator=g))
        image[c % 3, y : y + s, x : x + s] = 0.9
        boxes.append([float(x), float(y), float(x + s), float(y + s)])
        labels.append(c)
    return image, {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}


class ShapesDataset(Dataset):
    def __init__(self, n: int, offset: int = 0, size: int = 32) -> None:
        self.n, self.offset, self.size = n, offset, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return shapes_sample(self.offset + i, self.size)


def collate_shapes(items: list[tuple[Tensor, dict[str, Tensor]]]) -> dict[str, Any]:
    return {"images": torch.stack([im for im, _ in items]), "targets": [t for _, t in items]}


def image_seed(target: dict[str, Tensor]) -> int:
    """A seed that depends only on the image's ground truth (so predictions do not depend on batching)."""
    return int(target["boxes"].sum().item() * 16) + 1009 * int(target["labels"].sum().item())


def fake_predictions(targets: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
    """Per image (seeded by its GT): the GT boxes jittered by ~1 px with scores in [0.6, 1), one in four
    given the next class, plus one false positive of class 1 at (2, 2, 12, 12) scored 0.3-0.7."""
    preds = []
    for t in targets:
        g = torch.Generator().manual_seed(image_seed(t))
        n = t["boxes"].shape[0]
        boxes = t["boxes"] + torch.randn(n, 4, generator=g)
        labels = torch.where(torch.rand(n, generator=g) < 0.25, (t["labels"] + 1) % 3, t["labels"])
        fp = torch.tensor([[2.0, 2.0, 12.0, 12.0]])
        preds.append(
            {
                "boxes": torch.cat([boxes, fp]),
                "scores": torch.cat(
                    [0.6 + 0.4 * torch.rand(n, generator=g), 0.3 + 0.4 * torch.rand(1, generator=g)]
                ),
                "labels": torch.cat([labels, torch.tensor([1])]),
            }
        )
    return preds


class ShapesDetectionModule(pl.LightningModule):
    """A linear "model" trained on pixel means (for a loss); validation returns fake predictions."""

    def __init__(self, n_train: int = 16, n_val: int = 8, batch_size: int = 4, lr: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Linear(3, 1)
        self.n_train, self.n_val, self.batch_size, self.lr = n_train, n_val, batch_size, lr

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        x = batch["images"].mean((2, 3))
        return (self.net(x) - 1.0).pow(2).mean()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        loss = self.net(batch["images"].mean((2, 3))).pow(2).mean()
        self.log("val_loss", loss, batch_size=len(batch["targets"]))
        return {"preds": fake_predictions(batch["targets"]), "targets": batch["targets"]}

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(ShapesDataset(self.n_train), batch_size=self.batch_size, collate_fn=collate_shapes)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            ShapesDataset(self.n_val, offset=10_000), batch_size=self.batch_size, collate_fn=collate_shapes
        )


# -- anomaly -----------------------------------------------------------------------------------------
def anomaly_sample(index: int, size: int = 16) -> tuple[Tensor, Tensor]:
    """(1, size, size) stripes + noise; every third image has a bright square defect (mask returned)."""
    g = torch.Generator().manual_seed(2000 + index)
    yy = torch.arange(size, dtype=torch.float32).view(-1, 1).expand(size, size)
    image = 0.5 + 0.25 * torch.sin(yy * 0.8) + 0.05 * torch.randn(size, size, generator=g)
    mask = torch.zeros(size, size, dtype=torch.bool)
    if index % 3 == 2:
        s = size // 4
        x, y = torch.randint(0, size - s, (2,), generator=g).tolist()
        mask[y : y + s, x : x + s] = True
        image = torch.where(mask, torch.ones(()), image)
    return image.unsqueeze(0), mask


class AnomalyDataset(Dataset):
    def __init__(self, n: int, offset: int = 0, size: int = 16) -> None:
        self.n, self.offset, self.size = n, offset, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return anomaly_sample(self.offset + i, self.size)


class AnomalyModule(pl.LightningModule):
    """Conv autoencoder; validation returns per-pixel squared errors, masks, pooled features, labels."""

    def __init__(self, n_train: int = 16, n_val: int = 12, batch_size: int = 4, lr: float = 0.01) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(1, 4, 3, padding=1)
        self.decoder = nn.Conv2d(4, 1, 3, padding=1)
        self.n_train, self.n_val, self.batch_size, self.lr = n_train, n_val, batch_size, lr

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.tanh(self.encoder(x))
        return self.decoder(z), z

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        recon, _ = self(batch[0])
        return (recon - batch[0]).pow(2).mean()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        images, masks = batch
        recon, z = self(images)
        return {
            "scores": (recon - images).pow(2)[:, 0],
            "targets": masks,
            "features": z.mean((2, 3)),
            "labels": masks.flatten(1).any(1).long(),
        }

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(AnomalyDataset(self.n_train), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(AnomalyDataset(self.n_val, offset=10_000), batch_size=self.batch_size)


# -- trainer -----------------------------------------------------------------------------------------
def make_trainer(root: Any, logger: Any = "none", **kwargs: Any) -> pl.Trainer:
    """A quiet CPU trainer under ``root``; ``logger`` is "none", "csv" or "tb" (saved under root/<logger>)
    or a logger object."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: Any = logger
    if isinstance(logger, str):
        loggers = {
            "none": False,
            "csv": lambda: CSVLogger(str(root), name="csv"),
            "tb": lambda: TensorBoardLogger(str(root), name="tb"),
        }[logger]
    options: dict[str, Any] = {
        "default_root_dir": str(root),
        "max_epochs": 2,
        "accelerator": "cpu",
        "devices": 1,
        "logger": loggers() if callable(loggers) and isinstance(logger, str) else loggers,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "log_every_n_steps": 1,
    }
    options.update(kwargs)
    return pl.Trainer(**options)
