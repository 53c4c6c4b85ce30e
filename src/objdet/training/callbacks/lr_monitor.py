"""Learning rate, momentum and weight decay of every optimizer and parameter group; LR schedule plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from objdet.plotting.training import plot_lr_schedule
from objdet.training.callbacks._base import FigureCallback

__all__ = ["LearningRateMonitorCallback"]


class LearningRateMonitorCallback(FigureCallback):
    """Log learning rate, momentum (``betas[0]`` for Adam-like optimizers) and weight decay.

    Naming scheme (never colliding): for optimizer ``i`` of ``trainer.optimizers`` and its
    parameter group ``j``::

        {prefix}lr/opt{i}-{name}/pg{j}[-{group name}]
        {prefix}momentum/opt{i}-{name}/pg{j}[-{group name}]
        {prefix}weight_decay/opt{i}-{name}/pg{j}[-{group name}]

    where ``name`` is the ``name`` of the optimizer's LR scheduler config if it has one, else
    the optimizer class name, and ``-{group name}`` is added when the group has a ``"name"``
    entry. The optimizer index and group index make every key unique whatever the names are:
    e.g. ``lr/opt0-AdamW/pg0``, ``lr/opt0-AdamW/pg1-backbone``, ``lr/opt1-SGD/pg0``.
    Momentum is logged only for groups that have ``momentum`` or ``betas``; weight decay only
    for groups that have ``weight_decay``.

    Values are read at the start of a training batch (the values the coming optimizer step
    uses) every ``log_every_n_steps`` optimizer steps (default: the trainer's
    ``log_every_n_steps``; each step once, also with gradient accumulation) with
    ``logging_interval="step"``, or at the start of every training epoch with ``"epoch"``.
    They go to every logger (``log_metrics`` at ``step = trainer.global_step``) and into
    ``trainer.callback_metrics`` on every rank; without a logger they are still recorded.

    The learning rates are kept in ``history`` (``{key: [[step, lr], ...]}``; saved in
    checkpoints, so a resumed run continues it; halved by dropping every other point when a
    key exceeds ``max_history`` points). With ``plot=True`` the schedule is drawn at the end
    of training (rank 0) and logged under ``tag`` (see :func:`objdet.plotting.training.plot_lr_schedule`).
    """

    persistent = (*FigureCallback.persistent, "history", "epoch_starts")

    def __init__(
        self,
        logging_interval: Literal["step", "epoch"] = "step",
        log_every_n_steps: int | None = None,
        log_momentum: bool = True,
        log_weight_decay: bool = True,
        plot: bool = True,
        max_history: int = 10_000,
        prefix: str = "",
        tag: str = "train/lr_schedule",
        save_dir: str | Path | None = None,
        dpi: float = 100,
    ) -> None:
        super().__init__(tag, save_dir=save_dir, dpi=dpi)
        if logging_interval not in ("step", "epoch"):
            raise ValueError(f"`logging_interval` must be 'step' or 'epoch', got {logging_interval!r}")
        if log_every_n_steps is not None and (
            not isinstance(log_every_n_steps, int) or log_every_n_steps < 1
        ):
            raise ValueError(f"`log_every_n_steps` must be a positive int or None, got {log_every_n_steps!r}")
        if not isinstance(max_history, int) or max_history < 2:
            raise ValueError(f"`max_history` must be an int >= 2, got {max_history!r}")
        self.logging_interval = logging_interval
        self.log_every_n_steps = log_every_n_steps
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.plot = plot
        self.max_history = max_history
        self.prefix = prefix
        self.history: dict[str, list[list[float]]] = {}
        #: optimizer step at which each training epoch started (for the plot's epoch axis)
        self.epoch_starts: list[int] = []
        self.last_values: dict[str, float] = {}
        self._last_step = -1

    # -- naming ----------------------------------------------------------------------------------
    @staticmethod
    def optimizer_names(trainer: pl.Trainer) -> list[str]:
        """``opt{i}-{scheduler name or optimizer class}`` for every optimizer of the trainer."""
        scheduler_names = {
            id(config.scheduler.optimizer): config.name
            for config in trainer.lr_scheduler_configs
            if config.name is not None
        }
        names = []
        for i, opt in enumerate(trainer.optimizers):
            inner = getattr(opt, "optimizer", opt)  # wrapped optimizers (e.g. DeepSpeed)
            name = scheduler_names.get(id(opt)) or scheduler_names.get(id(inner)) or type(inner).__name__
            names.append(f"opt{i}-{name}")
        return names

    def read(self, trainer: pl.Trainer) -> dict[str, float]:
        """Current values of all optimizers and groups under the documented keys."""
        values: dict[str, float] = {}
        for opt, opt_name in zip(trainer.optimizers, self.optimizer_names(trainer), strict=True):
            for j, group in enumerate(getattr(opt, "optimizer", opt).param_groups):
                group_name = f"pg{j}" + (f"-{group['name']}" if group.get("name") else "")
                suffix = f"{opt_name}/{group_name}"
                values[f"{self.prefix}lr/{suffix}"] = float(group["lr"])
                if self.log_momentum:
                    if "betas" in group:
                        values[f"{self.prefix}momentum/{suffix}"] = float(group["betas"][0])
                    elif "momentum" in group:
                        values[f"{self.prefix}momentum/{suffix}"] = float(group["momentum"])
                if self.log_weight_decay and "weight_decay" in group:
                    values[f"{self.prefix}weight_decay/{suffix}"] = float(group["weight_decay"])
        return values

    # -- hooks -----------------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval != "step":
            return
        step = trainer.global_step
        every = self.log_every_n_steps or int(getattr(trainer, "log_every_n_steps", 50))
        if step == self._last_step or step % every != 0:
            return
        self._last_step = step
        self._record(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(self.epoch_starts) <= trainer.current_epoch:
            self.epoch_starts.append(trainer.global_step)
        if self.logging_interval == "epoch":
            self._record(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.plot and any(self.history.values()):
            history = {k: list(v) for k, v in self.history.items()}
            starts = list(self.epoch_starts)
            self.draw_and_log(
                trainer, lambda: plot_lr_schedule(history, starts)[0], epoch=self.last_epoch(trainer)
            )

    def _record(self, trainer: pl.Trainer) -> None:
        values = self.read(trainer)
        self.last_values = values
        device = trainer.strategy.root_device
        trainer.callback_metrics.update({k: torch.tensor(v, device=device) for k, v in values.items()})
        self.log_scalars(trainer, values)
        lr_prefix = f"{self.prefix}lr/"
        for key, value in values.items():
            if key.startswith(lr_prefix):
                points = self.history.setdefault(key, [])
                points.append([float(trainer.global_step), value])
                if len(points) > self.max_history:
                    self.history[key] = points[::2]
