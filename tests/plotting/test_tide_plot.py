"""plot_tide: bars, labels, accepted keys, bad input; TIDE.plot() on a computed metric."""

from __future__ import annotations

import pytest
import torch

from objdet.plotting._common import close_figure
from objdet.plotting.tide import TIDE_LABELS, plot_tide
from objdet.training.metrics import TIDE
from tests.helpers.coco_reference import make_dataset, to_torch

ERRORS = dict(cls=3.1, loc=6.0, both=0.5, dupe=0.0, bkg=4.0, miss=2.2, fp=15.0, fn=9.0)


def test_bars_and_labels() -> None:
    fig, ax = plot_tide(ERRORS, details="AP50 = 50.00")
    assert [t.get_text() for t in ax.get_yticklabels()] == list(TIDE_LABELS.values())
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx(list(ERRORS.values()))
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"{v:.2f}" for v in ERRORS.values()]
    assert "AP50 = 50.00" in ax.get_title()
    close_figure(fig)


def test_metric_keys_and_tensors_are_accepted() -> None:
    values = {f"main_{k}": torch.tensor(v) for k, v in list(ERRORS.items())[:6]}
    values.update(special_fp=torch.tensor(1.0), special_fn=torch.tensor(-0.5))  # fn may be negative
    fig, ax = plot_tide(values)
    assert ax.get_xlim()[0] < 0
    close_figure(fig)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="'fn'"):
        plot_tide({k: v for k, v in ERRORS.items() if k != "fn"})
    with pytest.raises(ValueError, match="finite"):
        plot_tide({**ERRORS, "loc": float("nan")})


def test_metric_plot() -> None:
    preds, target = to_torch(make_dataset(4, n_images=6), "xywh")
    metric = TIDE(box_format="xywh")
    metric.update(preds, target)
    fig, ax = metric.plot()
    assert "AP50 = " in ax.get_title() and len(ax.patches) == 8
    close_figure(fig)
