"""plot_detections / draw_detections: masks drawn where the dicts carry them, read back from the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from objdet.plotting._common import figure_to_rgb
from objdet.plotting.images import draw_detections, plot_detections

SIZE = 40


def _square(top: int, left: int, side: int) -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[top : top + side, left : left + side] = True
    return mask


def _disc(row: int, col: int, radius: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    return (yy - row) ** 2 + (xx - col) ** 2 <= radius**2


SCALE = 4  # figure pixels per image pixel; at 72 dpi a line 1 point wide is 1 figure pixel wide


def _render(pred: dict | None, target: dict | None) -> np.ndarray:
    """One panel drawn at SCALE x SCALE figure pixels per image pixel, as (SIZE, SIZE, SCALE, SCALE, 3)
    RGB floats in [0, 1]: ``[y, x]`` is the block of image pixel (y, x)."""
    fig = Figure(figsize=(SIZE * SCALE / 72, SIZE * SCALE / 72), dpi=72)
    ax = fig.add_axes((0, 0, 1, 1))
    draw_detections(ax, torch.zeros(SIZE, SIZE, 3), pred, target)
    for text in ax.texts:  # the labels would cover the pixels read below
        text.set_visible(False)
    rgb = figure_to_rgb(fig).astype(np.float64) / 255.0
    assert rgb.shape == (SIZE * SCALE, SIZE * SCALE, 3)
    return rgb.reshape(SIZE, SCALE, SIZE, SCALE, 3).transpose(0, 2, 1, 3, 4)


def _pred(masks: bool = True, label: int = 2) -> dict:
    pred = {
        "boxes": torch.tensor([[4.0, 4.0, 18.0, 18.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([label]),
    }
    if masks:
        pred["masks"] = _square(6, 6, 10)[None]
    return pred


def _target(masks: bool = True) -> dict:
    target = {"boxes": torch.tensor([[18.0, 18.0, 39.0, 39.0]]), "labels": torch.tensor([1])}
    if masks:
        target["masks"] = _disc(29, 29, 6)[None].to(torch.uint8)  # 0/1 numbers are masks too
    return target


def test_detection_masks_are_filled_in_the_class_colour() -> None:
    rgb = _render(_pred(), None)
    colour = np.asarray(colormaps["tab10"](2)[:3])
    inside = rgb[7:15, 7:15].reshape(-1, 3)  # inside the mask, away from the box outline
    assert np.allclose(inside, 0.45 * colour, atol=0.03)
    assert rgb[20:36, 20:36].max() < 0.02  # outside the mask and box: the black image
    assert rgb[16:17, 6:16].max() < 0.02  # inside the box, below the mask: not filled
    plain = _render(_pred(masks=False), None)
    assert plain[7:15, 7:15].max() < 0.02  # no masks, nothing filled


def test_ground_truth_masks_are_outlined_not_filled() -> None:
    rgb = _render(None, _target())
    assert rgb[26:33, 26:33].max() < 0.02  # the disc's inside stays as the image
    white = rgb.min(axis=-1)  # light in every channel
    assert white[29, 21:26].max() > 0.8  # the outline crosses row 29 between x = 21 and 25 (edge at 23)
    assert white[29, 33:38].max() > 0.8  # and again on the right (edge at 35)
    assert rgb[29, 20].max() < 0.02  # between the box edge and the disc: dark
    plain = _render(None, _target(masks=False))
    assert plain[29, 20:28].max() < 0.02


def test_mask_shapes_are_checked_with_the_field_named() -> None:
    fig = Figure()
    ax = fig.add_axes((0, 0, 1, 1))
    bad = _pred()
    bad["masks"] = torch.zeros(1, SIZE, SIZE + 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"preds\[0\]\['masks'\].*\(1, 40, 40\)"):
        draw_detections(ax, torch.zeros(SIZE, SIZE), bad)
    two = _target()
    two["masks"] = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"targets\[1\]\['masks'\]"):
        plot_detections([torch.zeros(SIZE, SIZE)] * 2, None, [_target(), two])
    text = _pred()
    text["masks"] = np.full((1, SIZE, SIZE), "x")
    with pytest.raises(ValueError, match="dtype"):
        draw_detections(ax, torch.zeros(SIZE, SIZE), text)


def test_plot_detections_keeps_the_view_on_the_image() -> None:
    _fig, axes = plot_detections([torch.zeros(SIZE, SIZE)], [_pred()], [_target()])
    ax = axes.flat[0]
    assert ax.get_xlim() == (-0.5, SIZE - 0.5)
    assert ax.get_ylim() == (SIZE - 0.5, -0.5)
