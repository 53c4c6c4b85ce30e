"""Turn Lightning's silent "no training batches" into an error that says why."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

__all__ = ["FailOnNoTrainBatches"]


def _loaders(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [dl for v in value.values() for dl in _loaders(v)]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and not hasattr(value, "dataset"):
        return [dl for v in value for dl in _loaders(v)]
    return [value]


def describe_loader(loader: Any) -> str:
    """``dataset size N, batch_size B, drop_last D, K samples per rank`` as far as the loader tells."""
    parts = []
    dataset = getattr(loader, "dataset", None)
    try:
        parts.append(f"dataset size {len(dataset)}")  # type: ignore[arg-type]
    except TypeError:
        parts.append("dataset of unknown size" if dataset is not None else f"a {type(loader).__name__}")
    batch_sampler = getattr(loader, "batch_sampler", None)
    batch_size = getattr(loader, "batch_size", None) or getattr(batch_sampler, "batch_size", None)
    if batch_size is not None:
        parts.append(f"batch_size {batch_size}")
    drop_last = getattr(loader, "drop_last", None)
    if drop_last is None:
        drop_last = getattr(batch_sampler, "drop_last", None)
    if drop_last is not None:
        parts.append(f"drop_last={drop_last}")
    sampler = getattr(loader, "sampler", None)
    if sampler is not None and hasattr(sampler, "num_replicas"):
        with contextlib.suppress(TypeError):
            parts.append(f"{len(sampler)} samples per rank after {type(sampler).__name__}")
    return ", ".join(parts)


class FailOnNoTrainBatches(Callback):
    """Raise a ``ValueError`` when ``Trainer.fit`` would train (or trained) on no batch at all.

    Lightning ends ``fit`` quietly when the training dataloader has no batch (dataset smaller
    than the batch size with ``drop_last=True``, too many devices for the data,
    ``limit_train_batches=0``, an empty ``IterableDataset`` ...). This callback makes that an
    error naming the dataset size, batch size, ``drop_last``, samples per rank, world size
    and ``limit_train_batches``, raised on every rank:

    * at the end of a training epoch in which no batch ran (e.g. an empty iterable dataset);
    * at the end of ``fit`` when the training loop was skipped for lack of batches (Lightning
      calls no training hook then, so this is the first point at which it is known).
    """

    def __init__(self) -> None:
        self._batches_in_epoch = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._batches_in_epoch = 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batches_in_epoch += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._batches_in_epoch == 0:
            raise ValueError(self.message(trainer, f"training epoch {trainer.current_epoch} ran no batch"))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.limit_train_batches == 0 or trainer.num_training_batches == 0:
            raise ValueError(self.message(trainer, "the training dataloader has no batch"))

    @staticmethod
    def message(trainer: pl.Trainer, what: str) -> str:
        try:
            loaders = _loaders(trainer.train_dataloader)
        except Exception:  # the property may fail when the loop never set up its data
            loaders = []
        described = "; ".join(describe_loader(dl) for dl in loaders) or "no training dataloader was loaded"
        return (
            f"FailOnNoTrainBatches: {what}: {described}; world size {trainer.world_size}, "
            f"limit_train_batches={trainer.limit_train_batches}. Expected at least one batch per rank and "
            "epoch: use more data, a smaller batch_size, drop_last=False or fewer devices."
        )
