"""Run progress and epoch durations: logged per epoch, printed on rank 0, plotted at the end."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from objdet.plotting.training import plot_epoch_durations
from objdet.training.callbacks._base import FigureCallback

__all__ = ["TrainingProgressCallback"]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 90:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TrainingProgressCallback(FigureCallback):
    """Per training epoch: progress in percent, wall-clock durations and an estimate of the time left.

    At the end of every training epoch (after its validation) it logs, at ``trainer.global_step``:

    * ``{prefix}percent``: share of the run done, from ``max_epochs`` or ``max_steps``
      (whichever ends the run first; not logged when neither limits it);
    * ``{prefix}epoch_seconds``, ``{prefix}train_seconds``, ``{prefix}val_seconds``: wall time of
      the epoch, split into training and the validation runs inside it (sanity check excluded);
    * ``{prefix}steps_per_second``: optimizer steps per second of training time;
    * ``{prefix}eta_seconds``: the time left, from the mean of the last three epochs.

    With ``verbose=True`` rank 0 also prints one line per epoch
    (``epoch 3/10 (40.0%): 2.3 s (train 1.9 s, val 0.4 s) ...``). Every epoch's record is
    kept in ``epochs`` (saved in checkpoints, so a resumed run continues it); with
    ``plot=True`` the durations are drawn at the end of training under ``tag``.
    Times are measured on each rank; rank 0's are logged.
    """

    persistent = (*FigureCallback.persistent, "epochs")

    def __init__(
        self,
        verbose: bool = True,
        plot: bool = True,
        prefix: str = "progress/",
        tag: str = "train/epoch_durations",
        save_dir: str | Path | None = None,
        dpi: float = 100,
    ) -> None:
        super().__init__(tag, save_dir=save_dir, dpi=dpi)
        self.verbose = verbose
        self.plot = plot
        self.prefix = prefix
        #: one record per finished epoch: epoch, steps, train_s, val_s, total_s, percent
        self.epochs: list[dict[str, float]] = []
        self.last_values: dict[str, float] = {}
        self._epoch_start: float | None = None
        self._val_start: float | None = None
        self._val_seconds = 0.0
        self._steps_at_start = 0

    @staticmethod
    def fraction_done(trainer: pl.Trainer) -> float | None:
        """Share of the run done after the current epoch (None when nothing limits the run)."""
        fractions = []
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            fractions.append((trainer.current_epoch + 1) / trainer.max_epochs)
        if trainer.max_steps is not None and trainer.max_steps > 0:
            fractions.append(trainer.global_step / trainer.max_steps)
        return min(1.0, max(fractions)) if fractions else None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._val_seconds = 0.0
        self._steps_at_start = trainer.global_step

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._epoch_start is not None:
            self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None:
            self._val_seconds += time.perf_counter() - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._epoch_start is None:
            return
        total = time.perf_counter() - self._epoch_start
        self._epoch_start = None
        val = min(self._val_seconds, total)
        train = total - val
        steps = trainer.global_step - self._steps_at_start
        fraction = self.fraction_done(trainer)
        record = {
            "epoch": float(trainer.current_epoch),
            "steps": float(steps),
            "train_s": train,
            "val_s": val,
            "total_s": total,
            "percent": float("nan") if fraction is None else 100.0 * fraction,
        }
        self.epochs.append(record)
        p = self.prefix
        values = {f"{p}epoch_seconds": total, f"{p}train_seconds": train, f"{p}val_seconds": val}
        if train > 0:
            values[f"{p}steps_per_second"] = steps / train
        eta = None
        if fraction is not None:
            recent = [r["total_s"] for r in self.epochs[-3:]]
            epochs_left = (1.0 - fraction) / fraction * (trainer.current_epoch + 1) if fraction > 0 else 0.0
            eta = sum(recent) / len(recent) * epochs_left
            values[f"{p}percent"] = 100.0 * fraction
            values[f"{p}eta_seconds"] = eta
        self.last_values = values
        self.log_scalars(trainer, values)
        if self.verbose:
            of = f"/{trainer.max_epochs}" if trainer.max_epochs is not None and trainer.max_epochs > 0 else ""
            done = "" if fraction is None else f" ({100.0 * fraction:.1f}%)"
            rate = f", {steps / train:.3g} steps/s" if train > 0 and steps else ""
            elapsed = sum(r["total_s"] for r in self.epochs)
            left = "" if eta is None else f", ETA {_duration(eta)}"
            rank_zero_info(
                f"epoch {trainer.current_epoch + 1}{of}{done}: {_duration(total)} "
                f"(train {_duration(train)}, val {_duration(val)}){rate}; elapsed {_duration(elapsed)}{left}"
            )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.plot and self.epochs:
            epochs = list(self.epochs)
            self.draw_and_log(
                trainer,
                lambda: plot_epoch_durations(
                    [r["train_s"] for r in epochs],
                    [r["val_s"] for r in epochs],
                    epochs=[int(r["epoch"]) for r in epochs],
                )[0],
                epoch=self.last_epoch(trainer),
            )
