"""TIDECallback: arguments, scalars, drawing, and a real CPU fit with CSVLogger."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import objdet.training
from objdet.training import TIDECallback
from objdet.training.metrics import TIDE
from tests.callbacks.test_trainer_runs import _validation_outputs
from tests.helpers.lightning_models import ShapesDetectionModule, make_trainer

KEYS = ("ap", "cls", "loc", "both", "dupe", "bkg", "miss", "fp", "fn")


def test_public_names_and_arguments() -> None:
    from objdet.training.callbacks.tide import TIDECallback as direct

    assert objdet.training.TIDECallback is direct is TIDECallback
    assert "TIDECallback" in objdet.training.__all__
    with pytest.raises(ValueError, match="bg_threshold"):
        TIDECallback(bg_threshold=0.9)
    cb = TIDECallback(pos_threshold=0.6, box_format="xywh", metric_kwargs={"max_detection_threshold": 7})
    assert isinstance(cb.metric, TIDE)
    assert (cb.metric.pos_threshold, cb.metric.box_format, cb.metric.max_detection_threshold) == (
        0.6,
        "xywh",
        7,
    )


def test_fit_logs_tide_and_draws(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = ShapesDetectionModule()
    cb = TIDECallback(dpi=40)
    trainer = make_trainer(tmp_path, "csv", callbacks=[cb])
    trainer.fit(module)
    preds, targets = _validation_outputs(module)
    reference = TIDE()
    reference.update(preds, targets)
    expected = cb.scalars(reference.compute())
    assert sorted(expected) == sorted(f"val/tide/{k}" for k in KEYS)
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [{k: float(r[k]) for k in expected} for r in rows if r.get("val/tide/cls")]
    assert len(logged) == 2  # two epochs, nothing in the sanity check
    for row in logged:
        assert row == pytest.approx(expected, abs=1e-5)
    figures = sorted(p.name for p in (tmp_path / "csv" / "version_0" / "figures").glob("*.png"))
    assert [n.split("_step")[0] for n in figures] == ["val_tide_epoch000", "val_tide_epoch001"]
