"""Gradient and LR monitors, FailOnNoTrainBatches, and the per-callback sample selection, checked by hand."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from objdet.training import (
    AnomalyHeatmapCallback,
    DetectionVisualizationCallback,
    FailOnNoTrainBatches,
    GradientMonitorCallback,
    LearningRateMonitorCallback,
)
from tests.helpers.lightning_models import ShapesDataset, ShapesDetectionModule, collate_shapes, make_trainer


# -- gradient monitor ----------------------------------------------------------------------------------
class _GradRecorder(Callback):
    """Copies of the gradients at every optimizer step (runs after the monitor in the callback list)."""

    def __init__(self) -> None:
        self.grads: dict[int, dict[str, torch.Tensor]] = {}

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self.grads[trainer.global_step] = {
            n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None
        }


def test_gradient_monitor_matches_brute_force_and_is_gated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = torch._foreach_norm

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "_foreach_norm", counting)
    monitor = GradientMonitorCallback(log_every_n_steps=3, per_layer=True)
    recorder = _GradRecorder()
    seen: dict[int, dict[str, float]] = {}

    class Snapshot(Callback):
        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            if trainer.global_step % 3 == 0:
                seen[trainer.global_step] = dict(monitor.last_values)

    make_trainer(tmp_path, "none", callbacks=[monitor, recorder, Snapshot()], max_epochs=2).fit(
        ShapesDetectionModule()
    )
    assert sorted(seen) == [0, 3, 6]
    assert len(calls) == 2 * 3  # two _foreach_norm calls per logged step, none on the other 5 steps
    for step, values in seen.items():
        grads = recorder.grads[step]
        flat = torch.cat([g.reshape(-1) for g in grads.values()]).double()
        assert values["grad/norm_total"] == pytest.approx(math.sqrt((flat**2).sum().item()), rel=1e-6)
        assert values["grad/max_abs"] == pytest.approx(flat.abs().max().item(), rel=1e-6)
        assert values["grad/nonfinite_count"] == 0
        for name, g in grads.items():
            assert values[f"grad/norm/{name}"] == pytest.approx(g.double().norm().item(), rel=1e-6)


def _fake_trainer(step: int, optimizers: list[Any]) -> Any:
    return SimpleNamespace(global_step=step, is_global_zero=True, optimizers=optimizers, loggers=[])


def test_gradient_monitor_one_host_transfer_and_nonfinite(monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    model[0].weight.grad[0, :2] = torch.tensor([math.nan, math.inf])
    model[1].bias.grad[1] = -math.inf
    monitor = GradientMonitorCallback(log_every_n_steps=1, per_layer=True, norm_type=1.0)
    monitor.on_fit_start(None, model)  # type: ignore[arg-type]
    transfers: list[str] = []
    for name in ("tolist", "item", "cpu", "numpy", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, name)

        def spy(self: torch.Tensor, *a: Any, _name: str = name, _orig: Any = original, **k: Any) -> Any:
            transfers.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    with pytest.warns(RuntimeWarning, match=r"gradients explode at step 0: total norm nan .* 3 non-finite"):
        monitor.on_before_optimizer_step(_fake_trainer(0, [opt]), model, opt)  # type: ignore[arg-type]
    monkeypatch.undo()
    assert transfers == ["cpu", "tolist"]  # one device-to-host copy of everything
    values = monitor.last_values
    assert values["grad/nonfinite_count"] == 3
    assert math.isnan(values["grad/norm_total"]) and math.isnan(values["grad/max_abs"])
    assert values["grad/norm/1.weight"] == 6.0 and values["grad/norm/0.bias"] == 3.0  # L1 norms
    assert values["grad/norm/1.bias"] == math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per run
        monitor.on_before_optimizer_step(_fake_trainer(1, [opt]), model, opt)  # type: ignore[arg-type]
    assert monitor.state_dict()["warned_exploding"] is True


def test_gradient_monitor_vanishing_and_several_optimizers() -> None:
    model = nn.Linear(3, 1)
    opt_a = torch.optim.SGD([model.weight], lr=0.1)
    opt_b = torch.optim.SGD([model.bias], lr=0.1)
    model.weight.grad = torch.full((1, 3), 1e-12)
    model.bias.grad = torch.tensor([3.0])
    monitor = GradientMonitorCallback(log_every_n_steps=1)
    with pytest.warns(RuntimeWarning, match="gradients vanish at step 0"):
        monitor.on_before_optimizer_step(_fake_trainer(0, [opt_a, opt_b]), model, opt_a)  # type: ignore[arg-type]
    assert set(monitor.last_values) == {
        "grad/opt0/norm_total",
        "grad/opt0/max_abs",
        "grad/opt0/nonfinite_count",
    }
    monitor.on_before_optimizer_step(_fake_trainer(0, [opt_a, opt_b]), model, opt_b)  # type: ignore[arg-type]
    assert monitor.last_values["grad/opt1/norm_total"] == 3.0
    with pytest.raises(ValueError, match="log_every_n_steps"):
        GradientMonitorCallback(log_every_n_steps=0)


# -- LR monitor ------------------------------------------------------------------------------------------
def test_lr_monitor_naming_never_collides() -> None:
    a, b, c = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2)
    sgd1 = torch.optim.SGD(
        [{"params": a.parameters(), "name": "backbone"}, {"params": b.parameters(), "lr": 0.5}],
        lr=0.1,
        momentum=0.9,
    )
    sgd2 = torch.optim.SGD(c.parameters(), lr=0.2)
    adam = torch.optim.AdamW(c.parameters(), lr=3e-4, betas=(0.8, 0.99), weight_decay=0.05)
    sched = SimpleNamespace(scheduler=SimpleNamespace(optimizer=adam), name="warmup")
    trainer = SimpleNamespace(optimizers=[sgd1, sgd2, adam], lr_scheduler_configs=[sched])
    values = LearningRateMonitorCallback().read(trainer)  # type: ignore[arg-type]
    assert values == {
        "lr/opt0-SGD/pg0-backbone": 0.1,
        "momentum/opt0-SGD/pg0-backbone": 0.9,
        "weight_decay/opt0-SGD/pg0-backbone": 0.0,
        "lr/opt0-SGD/pg1": 0.5,
        "momentum/opt0-SGD/pg1": 0.9,
        "weight_decay/opt0-SGD/pg1": 0.0,
        "lr/opt1-SGD/pg0": 0.2,
        "momentum/opt1-SGD/pg0": 0.0,
        "weight_decay/opt1-SGD/pg0": 0.0,
        "lr/opt2-warmup/pg0": 3e-4,
        "momentum/opt2-warmup/pg0": 0.8,
        "weight_decay/opt2-warmup/pg0": 0.05,
    }
    only_lr = LearningRateMonitorCallback(log_momentum=False, log_weight_decay=False, prefix="optim/")
    assert list(only_lr.read(trainer)) == [  # type: ignore[arg-type]
        "optim/lr/opt0-SGD/pg0-backbone",
        "optim/lr/opt0-SGD/pg1",
        "optim/lr/opt1-SGD/pg0",
        "optim/lr/opt2-warmup/pg0",
    ]


def test_lr_monitor_epoch_interval_accumulation_and_history_cap(tmp_path: Path) -> None:
    per_epoch = LearningRateMonitorCallback(logging_interval="epoch", plot=False, tag="train/lr_per_epoch")
    per_step = LearningRateMonitorCallback(log_every_n_steps=1, max_history=4, plot=False)
    trainer = make_trainer(
        tmp_path, "csv", callbacks=[per_epoch, per_step], max_epochs=3, accumulate_grad_batches=2
    )
    trainer.fit(ShapesDetectionModule())  # 4 batches per epoch, 2 optimizer steps per epoch
    assert per_epoch.history == {"lr/opt0-SGD/pg0": [[0.0, 0.1], [2.0, 0.05], [4.0, 0.025]]}
    # steps 0..5 each recorded once despite 2 batches per step; the 5th point exceeded max_history=4,
    # so every other point was dropped ([0, 2, 4]) before step 5 was added
    assert per_step.history["lr/opt0-SGD/pg0"] == [[0.0, 0.1], [2.0, 0.05], [4.0, 0.025], [5.0, 0.025]]
    with pytest.raises(ValueError, match="logging_interval"):
        LearningRateMonitorCallback(logging_interval="batch")  # type: ignore[arg-type]


# -- FailOnNoTrainBatches --------------------------------------------------------------------------------
class _SmallData(ShapesDetectionModule):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(ShapesDataset(3), batch_size=4, drop_last=True, collate_fn=collate_shapes)


class _Empty(IterableDataset):
    def __iter__(self) -> Any:
        return iter(())


class _EmptyIterable(ShapesDetectionModule):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Empty(), batch_size=4, collate_fn=collate_shapes)


def test_fail_on_no_train_batches(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, "none", callbacks=[FailOnNoTrainBatches()], num_sanity_val_steps=0)
    with pytest.raises(ValueError) as err:
        trainer.fit(_SmallData())
    msg = str(err.value)
    for part in ("no batch", "dataset size 3", "batch_size 4", "drop_last=True", "world size 1"):
        assert part in msg, msg
    trainer = make_trainer(tmp_path, "none", callbacks=[FailOnNoTrainBatches()], limit_train_batches=0)
    with pytest.raises(ValueError, match="limit_train_batches=0"):
        trainer.fit(ShapesDetectionModule())
    trainer = make_trainer(tmp_path, "none", callbacks=[FailOnNoTrainBatches()], num_sanity_val_steps=0)
    with pytest.raises(
        ValueError, match="training epoch 0 ran no batch: dataset of unknown size, batch_size 4"
    ):
        trainer.fit(_EmptyIterable())
    # without the callback Lightning finishes quietly; with it and data, nothing happens
    make_trainer(tmp_path, "none", max_epochs=1, num_sanity_val_steps=0).fit(_SmallData())
    make_trainer(tmp_path, "none", callbacks=[FailOnNoTrainBatches()], max_epochs=1).fit(
        ShapesDetectionModule()
    )


# -- sample selection ------------------------------------------------------------------------------------
def _rank0() -> Any:
    return SimpleNamespace(is_global_zero=True)


def test_detection_visualization_keeps_only_what_it_draws() -> None:
    cb = DetectionVisualizationCallback(num_samples=3, score_threshold=0.5, max_detections=2)
    images = torch.rand(2, 3, 8, 8)
    pred = {
        "boxes": torch.arange(20.0).reshape(5, 4),
        "scores": torch.tensor([0.9, 0.2, 0.7, 0.95, 0.5]),
        "labels": torch.tensor([0, 1, 2, 0, 1]),
    }
    target = {"boxes": torch.zeros(1, 4), "labels": torch.tensor([2])}
    for _ in range(3):  # 6 images offered, 3 kept
        cb.update_batch(
            _rank0(), None, {"preds": [pred, pred], "targets": [target, target], "images": images}
        )  # type: ignore[arg-type]
    assert len(cb._images) == 3
    kept = cb._preds[0]
    # the 2 best of the scores >= 0.5, with their boxes and labels
    assert torch.equal(kept["scores"], pred["scores"][[3, 0]])
    assert torch.equal(kept["boxes"], pred["boxes"][[3, 0]]) and torch.equal(
        kept["labels"], pred["labels"][[3, 0]]
    )
    with pytest.raises(ValueError, match=r"got 2 preds, 1 targets and 2 images"):
        cb.update_batch(_rank0(), None, {"preds": [pred, pred], "targets": [target], "images": images})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`preds\[0\]` must be a dict with 'boxes', 'scores' and 'labels'"):
        cb.reset_epoch(None, None)  # type: ignore[arg-type]
        cb.update_batch(_rank0(), None, {"preds": [{"boxes": 1}], "targets": [target], "images": images[:1]})  # type: ignore[arg-type]


def test_anomaly_heatmap_balances_anomalous_and_normal() -> None:
    cb = AnomalyHeatmapCallback(num_samples=4)
    scores = torch.arange(6.0)[:, None, None].expand(6, 4, 4)
    targets = torch.zeros(6, 4, 4, dtype=torch.bool)
    targets[[1, 4], 0, 0] = True  # two anomalous samples among six
    cb.update_batch(_rank0(), None, {"scores": scores, "targets": targets})  # type: ignore[arg-type]
    chosen = cb._chosen()
    assert [float(s.max()) for s, _, _ in chosen] == [1.0, 4.0, 0.0, 2.0]
    cb = AnomalyHeatmapCallback(num_samples=3, balance=False)
    cb.update_batch(_rank0(), None, {"scores": scores, "targets": targets})  # type: ignore[arg-type]
    assert [float(s.max()) for s, _, _ in cb._chosen()] == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match=r"`targets` has shape \(6, 2, 2\), expected the shape of `scores`"):
        cb.update_batch(_rank0(), None, {"scores": scores, "targets": targets[:, :2, :2]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`scores` must be \(B, H, W\) or \(B, 1, H, W\)"):
        cb.update_batch(_rank0(), None, {"scores": torch.zeros(3)})  # type: ignore[arg-type]
