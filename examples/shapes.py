"""Synthetic shapes and a tiny CenterNet-style detector for the examples (CPU, trains in seconds).

* :func:`make_shapes`: 64 x 64 RGB images with 1-4 squares, discs and triangles of random
  colour and size on a noisy gradient background, with their boxes (xyxy pixels) and labels
  (0 square, 1 disc, 2 triangle).
* :class:`ShapesDataModule`: train / val loaders of dict batches ``{"images": (B, 3, H, W),
  "targets": [{"boxes", "labels"}, ...]}``.
* :class:`TinyCenterNet`: a stride-4 centre heatmap per class plus box size and offset
  (CenterNet's recipe); ``validation_step`` returns ``{"preds", "targets"}`` in the torchmetrics
  detection format, as objdet's detection callbacks read them.

Import it from a script in this folder (``from shapes import ...``).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

CLASSES = ["square", "disc", "triangle"]
SIZE = 64
STRIDE = 4


def make_shapes(n: int, seed: int = 0, size: int = SIZE) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """``n`` images (n, 3, size, size) in [0, 1] and one target dict per image."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32) + 0.5,
        torch.arange(size, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    images = torch.empty(n, 3, size, size)
    targets = []
    for i in range(n):
        base = 0.25 + 0.3 * torch.rand(3, 1, 1, generator=g)
        slope = (torch.rand(3, 2, generator=g) - 0.5) * 0.3
        img = base + slope[:, :1, None] * (xx / size) + slope[:, 1:, None] * (yy / size)
        img = img + 0.03 * torch.randn(3, size, size, generator=g)
        boxes, labels = [], []
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
            cls = int(torch.randint(0, 3, (1,), generator=g))
            s = 10 + 16 * torch.rand(1, generator=g).item()
            cx, cy = (s / 2 + torch.rand(2, generator=g) * (size - s)).tolist()
            color = torch.rand(3, generator=g)
            color = color / color.max().clamp_min(1e-6) * (0.75 + 0.25 * torch.rand(1, generator=g))
            if cls == 0:
                mask = ((xx - cx).abs() <= s / 2) & ((yy - cy).abs() <= s / 2)
            elif cls == 1:
                mask = torch.hypot(xx - cx, yy - cy) <= s / 2
            else:  # upward triangle inside the s x s box
                top, bottom = cy - s / 2, cy + s / 2
                half_width = (yy - top) / s * (s / 2)
                mask = (yy >= top) & (yy <= bottom) & ((xx - cx).abs() <= half_width)
            if not mask.any():
                continue
            img = torch.where(mask, color[:, None, None], img)
            ys, xs = torch.nonzero(mask, as_tuple=True)
            boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1.0, ys.max().item() + 1.0])
            labels.append(cls)
        images[i] = img.clamp(0.0, 1.0)
        targets.append(
            {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
        )
    return images, targets


class ShapesDataset(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        self.images, self.targets = make_shapes(n, seed)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.images[i], self.targets[i]


def collate(items: list[tuple[Tensor, dict[str, Tensor]]]) -> dict[str, Any]:
    return {"images": torch.stack([im for im, _ in items]), "targets": [t for _, t in items]}


class ShapesDataModule(pl.LightningDataModule):
    def __init__(self, n_train: int = 1024, n_val: int = 128, batch_size: int = 32) -> None:
        super().__init__()
        self.n_train, self.n_val, self.batch_size = n_train, n_val, batch_size

    def setup(self, stage: str) -> None:
        if not hasattr(self, "train_set"):
            self.train_set = ShapesDataset(self.n_train, seed=1)
            self.val_set = ShapesDataset(self.n_val, seed=2)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, collate_fn=collate, drop_last=True
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=64, collate_fn=collate)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class TinyCenterNet(pl.LightningModule):
    """Centre heatmaps (focal loss), log box sizes and sub-cell offsets (L1) at stride 4."""

    def __init__(
        self, num_classes: int = 3, lr: float = 4e-3, max_detections: int = 20, epochs: int = 12
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(
            _block(3, 16, 1), _block(16, 32, 2), _block(32, 48, 2), _block(48, 64, 1), _block(64, 64, 1)
        )
        self.head = nn.Sequential(
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(64, num_classes + 4, 1)
        )
        with torch.no_grad():  # start with a low centre probability everywhere (CenterNet's prior)
            self.head[-1].bias[:num_classes].fill_(-2.2)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))

    def encode(self, targets: list[dict[str, Tensor]], h: int, w: int) -> tuple[Tensor, Tensor, Tensor]:
        """Gaussian centre heatmaps (B, C, h, w), regression targets (B, 4, h, w) and their mask (B, h, w)."""
        c = self.hparams.num_classes
        heat = torch.zeros(len(targets), c, h, w, device=self.device)
        reg = torch.zeros(len(targets), 4, h, w, device=self.device)
        mask = torch.zeros(len(targets), h, w, dtype=torch.bool, device=self.device)
        ys = torch.arange(h, device=self.device, dtype=torch.float32).view(-1, 1)
        xs = torch.arange(w, device=self.device, dtype=torch.float32).view(1, -1)
        for b, t in enumerate(targets):
            for box, label in zip(t["boxes"].to(self.device), t["labels"].tolist(), strict=True):
                cx, cy = (box[0] + box[2]) / 2 / STRIDE, (box[1] + box[3]) / 2 / STRIDE
                bw, bh = box[2] - box[0], box[3] - box[1]
                sigma = max(0.5, float(min(bw, bh)) / STRIDE / 4)
                ix, iy = int(cx.clamp(0, w - 1)), int(cy.clamp(0, h - 1))
                gauss = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
                heat[b, label] = torch.maximum(heat[b, label], gauss)
                reg[b, :, iy, ix] = torch.stack(
                    [torch.log(bw / STRIDE), torch.log(bh / STRIDE), cx - ix, cy - iy]
                )
                mask[b, iy, ix] = True
        return heat, reg, mask

    def loss(self, out: Tensor, targets: list[dict[str, Tensor]]) -> Tensor:
        c = self.hparams.num_classes
        heat, reg, mask = self.encode(targets, out.shape[2], out.shape[3])
        p = out[:, :c].sigmoid().clamp(1e-4, 1 - 1e-4)
        pos = heat.eq(1.0)
        focal = torch.where(pos, (1 - p) ** 2 * torch.log(p), (1 - heat) ** 4 * p**2 * torch.log(1 - p))
        n = pos.sum().clamp_min(1)
        reg_loss = F.l1_loss(
            out[:, c:].permute(0, 2, 3, 1)[mask], reg.permute(0, 2, 3, 1)[mask], reduction="sum"
        )
        return -focal.sum() / n + reg_loss / n

    def decode(self, out: Tensor, score_floor: float = 0.05) -> list[dict[str, Tensor]]:
        """Top ``max_detections`` local maxima of the heatmaps per image (scores >= score_floor)."""
        c = self.hparams.num_classes
        b, _, h, w = out.shape
        heat = out[:, :c].sigmoid()
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        scores, idx = peaks.reshape(b, -1).topk(min(self.hparams.max_detections, c * h * w))
        labels = idx // (h * w)
        cell = idx % (h * w)
        iy, ix = (cell // w).float(), (cell % w).float()
        reg = out[:, c:].reshape(b, 4, -1)
        r = torch.gather(reg, 2, cell[:, None, :].expand(-1, 4, -1))
        cx, cy = (ix + r[:, 2]) * STRIDE, (iy + r[:, 3]) * STRIDE
        bw, bh = r[:, 0].clamp(max=6).exp() * STRIDE, r[:, 1].clamp(max=6).exp() * STRIDE
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1).clamp(0, SIZE)
        preds = []
        for i in range(b):
            keep = scores[i] >= score_floor
            preds.append({"boxes": boxes[i][keep], "scores": scores[i][keep], "labels": labels[i][keep]})
        return preds

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self.loss(self(batch["images"]), batch["targets"])
        self.log("train/loss", loss, batch_size=len(batch["targets"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out = self(batch["images"])
        self.log("val/loss", self.loss(out, batch["targets"]), batch_size=len(batch["targets"]))
        return {"preds": self.decode(out), "targets": batch["targets"]}

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "name": "cosine"}}


def _demo() -> None:  # pragma: no cover - a quick look: python examples/shapes.py
    import time

    from objdet.training import DetectionVisualizationCallback
    from objdet.training.metrics import MeanAveragePrecision

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dm = ShapesDataModule()
    model = TinyCenterNet()
    trainer = pl.Trainer(
        max_epochs=model.hparams.epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            DetectionVisualizationCallback(class_names=CLASSES, save_dir="out/shapes", every_n_epochs=4)
        ],
    )
    t0 = time.perf_counter()
    trainer.fit(model, dm)
    print(f"fit: {time.perf_counter() - t0:.1f} s")
    metric = MeanAveragePrecision()
    model.eval()
    with torch.no_grad():
        for batch in dm.val_dataloader():
            metric.update(model.decode(model(batch["images"])), batch["targets"])
    print({k: round(float(v), 3) for k, v in metric.compute().items() if v.numel() == 1})


if __name__ == "__main__":
    _demo()
