"""PRCurveCallback's calibration (val/ece, val/mce, reliability diagram) and F-beta scalars."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from objdet.training.callbacks import PRCurveCallback
from tests.helpers.lightning_models import ShapesDetectionModule, make_trainer


def _data(scores: list[float] | None = None) -> tuple[list[dict], list[dict]]:
    preds = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30], [50.0, 50, 60, 60]]),
            "scores": torch.tensor(scores or [0.9, 0.6, 0.4]),
            "labels": torch.tensor([0, 2, 2]),
        }
    ]
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]), "labels": torch.tensor([0, 2])}
    ]
    return preds, targets


def _trainer() -> Any:
    return SimpleNamespace(current_epoch=3, global_step=12)


def _run(cb: PRCurveCallback, scores: list[float] | None = None) -> tuple[dict[str, float], Any]:
    preds, targets = _data(scores)
    cb.update_metric(cb.metric, {"preds": preds, "targets": targets})
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    return cb.scalars(values), values


def test_ece_mce_and_fbeta_scalars_and_the_diagram() -> None:
    cb = PRCurveCallback(plots=("pr", "reliability"), calibration_bins=5, fbeta=(2, 0.5))
    scalars, values = _run(cb)
    cal = cb.last_calibration
    assert cal is not None and cal.n_bins == 5 and cal.n_detections == 3
    # bins of width 0.2: {0.4 FP} gap 0.4, {0.6 TP} gap 0.4, {0.9 TP} gap 0.1 -> (0.4 + 0.4 + 0.1) / 3
    assert scalars["val/ece"] == pytest.approx(0.3) and scalars["val/mce"] == pytest.approx(0.4)
    expected = cb.metric.calibration(bins=5)
    assert scalars["val/ece"] == float(expected.ece)
    f2 = cb.last_curves.fbeta(2.0) if cb.last_curves is not None else None
    assert f2 is not None and scalars["val/best_f2"] == float(f2.best_fbeta)
    assert scalars["val/best_f2_confidence"] == float(f2.best_confidence)
    assert "val/best_f0_5" in scalars and "val/best_f0_5_confidence" in scalars
    figures = cb.draw(_trainer(), cb.metric, values)
    assert list(figures) == ["val/curves/pr", "val/curves/reliability"]
    title = figures["val/curves/reliability"].axes[0].get_title()
    assert title == "Reliability diagram (IoU ≥ 0.5, 5 equal-width bins) — epoch 3"


def test_off_by_default() -> None:
    cb = PRCurveCallback()
    scalars, _ = _run(cb)
    assert cb.calibration is False and cb.last_calibration is None
    assert not any(k in scalars for k in ("val/ece", "val/mce"))
    assert PRCurveCallback(calibration=True, calibration_strategy="mass").calibration is True


def test_logits_warn_once_and_log_no_calibration() -> None:
    cb = PRCurveCallback(calibration=True, plots=("f1", "reliability"))
    with pytest.warns(UserWarning, match=r"no calibration logged: .*range over \[-2, 3\]"):
        scalars, values = _run(cb, [3.0, 1.0, -2.0])
    assert cb.last_calibration is None and "val/ece" not in scalars and "val/best_f1" in scalars
    assert list(cb.draw(_trainer(), cb.metric, values)) == ["val/curves/f1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second epoch does not warn again
        cb.after_compute(_trainer(), cb.metric, values)


def test_no_detection_logs_no_calibration() -> None:
    cb = PRCurveCallback(calibration=True)
    values = cb.metric.compute()
    cb.after_compute(_trainer(), cb.metric, values)
    assert cb.last_calibration is not None and cb.last_calibration.n_detections == 0
    assert "val/ece" not in cb.scalars(values)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"calibration_bins": 0}, "`calibration_bins` must be a positive int"),
        ({"calibration_strategy": "quantile"}, "`calibration_strategy` must be 'width' or 'mass'"),
        ({"fbeta": (2.0, -1.0)}, r"`fbeta` must hold finite numbers > 0, got \[-1.0\]"),
        ({"plots": ("reliability", "roc")}, r"`plots` must hold only .* got \['roc'\]"),
    ],
)
def test_bad_arguments(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        PRCurveCallback(**kwargs)


def test_a_real_fit_logs_ece_mce_and_draws_the_diagram(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cb = PRCurveCallback(plots=("reliability",), calibration=True, fbeta=(2,), dpi=40)
    trainer = make_trainer(tmp_path, "csv", callbacks=[cb])
    trainer.fit(ShapesDetectionModule())
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in ("val/ece", "val/mce", "val/best_f2"):
        logged = [float(r[key]) for r in rows if r.get(key)]
        assert len(logged) == 2, key  # two epochs, not the sanity check
        assert all(0.0 <= v <= 1.0 for v in logged)
    ece = [float(r["val/ece"]) for r in rows if r.get("val/ece")]
    mce = [float(r["val/mce"]) for r in rows if r.get("val/mce")]
    assert all(e <= m + 1e-7 for e, m in zip(ece, mce, strict=True))
    pngs = sorted((tmp_path / "csv" / "version_0" / "figures").glob("val_curves_reliability_epoch*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
