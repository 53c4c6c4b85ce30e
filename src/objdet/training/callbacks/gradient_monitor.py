"""Gradient norms, largest gradient and non-finite gradient count, every n optimizer steps."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torch.optim import Optimizer

from objdet.training.callbacks._base import FigureCallback

__all__ = ["GradientMonitorCallback"]


class GradientMonitorCallback(FigureCallback):
    """Log gradient statistics just before the optimizer step, every ``log_every_n_steps`` steps.

    Logged keys (``prefix`` defaults to ``"grad/"``), at ``step = trainer.global_step``:

    * ``grad/norm_total``: the ``norm_type`` norm of all gradients of the optimizer's parameters
      taken together (as ``torch.nn.utils.clip_grad_norm_`` computes it);
    * ``grad/max_abs``: the largest absolute gradient value;
    * ``grad/nonfinite_count``: how many gradient values are NaN or infinite;
    * with ``per_layer=True``, ``grad/norm/<parameter name>`` for every parameter with a gradient.

    With several optimizers the keys get the optimizer index: ``grad/opt1/norm_total``.

    Cost: nothing at all on other steps (the step test comes first); on a logged step, a few
    ``torch._foreach_norm`` kernels on the gradients' device and exactly one host transfer of
    all values stacked together. Gradients are read in ``on_before_optimizer_step`` (after AMP
    unscaling and DDP's all-reduce, so identical on every rank); only global rank 0 computes
    and logs. Values also go to ``last_values``.

    Warns once per run (flags kept in checkpoints) when the total norm is below
    ``vanishing_threshold``, or above ``exploding_threshold`` or non-finite; ``None`` disables
    a warning.
    """

    persistent = (*FigureCallback.persistent, "warned_vanishing", "warned_exploding")

    def __init__(
        self,
        log_every_n_steps: int = 100,
        per_layer: bool = False,
        norm_type: float = 2.0,
        vanishing_threshold: float | None = 1e-8,
        exploding_threshold: float | None = 1e4,
        prefix: str = "grad/",
    ) -> None:
        super().__init__(tag=prefix.rstrip("/") or "grad")
        if not isinstance(log_every_n_steps, int) or log_every_n_steps < 1:
            raise ValueError(f"`log_every_n_steps` must be a positive int, got {log_every_n_steps!r}")
        norm_type = float(norm_type)
        if not (norm_type > 0):
            raise ValueError(f"`norm_type` must be positive (or inf), got {norm_type!r}")
        self.log_every_n_steps = log_every_n_steps
        self.per_layer = per_layer
        self.norm_type = norm_type
        self.vanishing_threshold = vanishing_threshold
        self.exploding_threshold = exploding_threshold
        self.prefix = prefix
        self.warned_vanishing = False
        self.warned_exploding = False
        self.last_values: dict[str, float] = {}
        self._names: dict[int, str] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._names = {id(p): name for name, p in pl_module.named_parameters()}

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if trainer.global_step % self.log_every_n_steps != 0 or not trainer.is_global_zero:
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        prefix = self.prefix
        if len(trainer.optimizers) > 1:
            index = next((i for i, opt in enumerate(trainer.optimizers) if opt is optimizer), 0)
            prefix = f"{prefix}opt{index}/"
        values = self._statistics(params)
        self.last_values = {f"{prefix}{k}": v for k, v in values.items()}
        self.log_scalars(trainer, self.last_values)
        self._warn(values["norm_total"], values["nonfinite_count"], trainer.global_step)

    def _statistics(self, params: list[Tensor]) -> dict[str, float]:
        grads: list[Tensor] = []
        for p in params:
            g = p.grad
            assert g is not None  # params were filtered on it
            grads.append(g.coalesce().values() if g.is_sparse else g)
        device = grads[0].device
        norms = torch.stack([n.to(device, torch.float64) for n in torch._foreach_norm(grads, self.norm_type)])
        maxima = torch.stack([m.to(device, torch.float64) for m in torch._foreach_norm(grads, math.inf)])
        nonfinite = torch.stack([torch.count_nonzero(~torch.isfinite(g)).to(device) for g in grads]).sum()
        total = torch.linalg.vector_norm(norms, self.norm_type)
        head = torch.stack([total, maxima.max(), nonfinite.to(torch.float64)])
        flat = torch.cat([head, norms]) if self.per_layer else head
        numbers = flat.cpu().tolist()  # the only host transfer
        out = {"norm_total": numbers[0], "max_abs": numbers[1], "nonfinite_count": numbers[2]}
        if self.per_layer:
            for p, value in zip(params, numbers[3:], strict=True):
                out[f"norm/{self._names.get(id(p), f'param{id(p)}')}"] = value
        return out

    def _warn(self, total: float, nonfinite: float, step: int) -> None:
        if (
            self.exploding_threshold is not None
            and not self.warned_exploding
            and (nonfinite > 0 or not math.isfinite(total) or total > self.exploding_threshold)
        ):
            self.warned_exploding = True
            rank_zero_warn(
                f"{type(self).__name__}: gradients explode at step {step}: total norm {total:.4g} "
                f"(threshold {self.exploding_threshold:g}), {int(nonfinite)} non-finite values. "
                "Warned once per run.",
                category=RuntimeWarning,
            )
        if (
            self.vanishing_threshold is not None
            and not self.warned_vanishing
            and math.isfinite(total)
            and total < self.vanishing_threshold
        ):
            self.warned_vanishing = True
            rank_zero_warn(
                f"{type(self).__name__}: gradients vanish at step {step}: total norm {total:.4g} "
                f"< {self.vanishing_threshold:g}. Warned once per run.",
                category=RuntimeWarning,
            )
