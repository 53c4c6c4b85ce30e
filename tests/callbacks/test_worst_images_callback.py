"""DetectionVisualizationCallback(choose="worst"): the worst images of the epoch, in a real CPU fit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import objdet.training.callbacks.detection_visualization as dv
from objdet.training import DetectionVisualizationCallback
from objdet.training.metrics import TIDE
from tests.callbacks.test_trainer_runs import _validation_outputs
from tests.helpers.coco_reference import make_dataset, to_torch
from tests.helpers.lightning_models import ShapesDataset, ShapesDetectionModule, make_trainer


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what the callback hands to plot_detections (and still draw it)."""
    calls: list[dict[str, Any]] = []
    real = dv.plot_detections

    def spy(images: Any, preds: Any, targets: Any, **kwargs: Any) -> Any:
        calls.append({"images": list(images), "preds": list(preds), "targets": list(targets), **kwargs})
        return real(images, preds, targets, **kwargs)

    monkeypatch.setattr(dv, "plot_detections", spy)
    return calls


@pytest.mark.parametrize("by", ["errors", "f1"])
def test_fit_draws_the_worst_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by: str) -> None:
    calls = _recording(monkeypatch)
    torch.manual_seed(0)
    module = ShapesDetectionModule(n_val=16)
    cb = DetectionVisualizationCallback(num_samples=4, choose="worst", worst_by=by, dpi=60)  # type: ignore[arg-type]
    trainer = make_trainer(tmp_path, "csv", callbacks=[cb])
    trainer.fit(module)

    preds, targets = _validation_outputs(module)
    reference = TIDE()
    reference.update(preds, targets)
    worst = reference.worst_images(k=4, by=by, conf_threshold=0.5)  # type: ignore[arg-type]
    positions = worst["image"].tolist()
    assert positions != [0, 1, 2, 3]  # the worst are not the first ones
    assert len(calls) == 2  # two epochs, nothing in the sanity check
    for call in calls:
        assert len(call["targets"]) == 4
        for drawn, k in zip(call["targets"], positions, strict=True):
            assert torch.equal(drawn["boxes"], targets[k]["boxes"])
            assert torch.equal(drawn["labels"], targets[k]["labels"])
        for drawn, k in zip(call["preds"], positions, strict=True):
            shown = preds[k]["scores"] >= 0.5
            assert torch.equal(drawn["scores"].sort().values, preds[k]["scores"][shown].sort().values)
        assert "worst 4" in call["title"]
    chosen = cb.last_chosen
    assert [c["image"] for c in chosen] == positions
    assert [c["errors"] for c in chosen] == worst["errors"].tolist()
    assert [c["f1"] for c in chosen] == pytest.approx(worst["f1"].tolist())
    figures = sorted((tmp_path / "csv" / "version_0" / "figures").glob("val_detections_*.png"))
    assert len(figures) == 2


def _stand_in(rank_zero: bool = True) -> Any:
    return SimpleNamespace(is_global_zero=rank_zero)


def test_image_ids_copies_and_batches_give_worst_images() -> None:
    """Across batches, with image ids out of order and a padded copy: TIDE.worst_images' answer."""
    preds, targets = to_torch(make_dataset(4, n_images=11), "xyxy")
    ids = [50, 3, 27, 8, 41, 12, 33, 19, 1, 44, 6]
    for t, i in zip(targets, ids, strict=True):
        t["image_id"] = torch.tensor(i)
    images = torch.rand(11, 3, 8, 8)
    reference = TIDE()
    reference.update(preds, targets)
    for by in ("errors", "f1"):
        cb = DetectionVisualizationCallback(num_samples=5, choose="worst", worst_by=by, conf_threshold=0.3)  # type: ignore[arg-type]
        order = [4, 0, 9, 2, 7, 1, 10, 5, 8, 3, 6, 4, 0]  # a shuffled epoch, then two copies
        for a in range(0, len(order), 3):
            batch = order[a : a + 3]
            data = {
                "preds": [preds[i] for i in batch],
                "targets": [targets[i] for i in batch],
                "images": images[batch],
            }
            cb.update_batch(_stand_in(), None, data)  # type: ignore[arg-type]
        expected = reference.worst_images(k=5, by=by, conf_threshold=0.3)  # type: ignore[arg-type]
        assert [e["image"] for _, e in cb._worst] == expected["image"].tolist(), by
        assert [e["errors"] for _, e in cb._worst] == expected["errors"].tolist()
        kept = [e["_data"][0] for _, e in cb._worst]
        for image, image_id in zip(kept, expected["image"].tolist(), strict=True):
            assert torch.equal(image, images[ids.index(image_id)])


def test_every_rank_keeps_at_most_num_samples_and_bad_arguments() -> None:
    """A rank other than 0 scores its images too (its worst go to rank 0 later), keeping <= num_samples."""
    preds, targets = to_torch(make_dataset(1, n_images=4), "xyxy")
    cb = DetectionVisualizationCallback(num_samples=2, choose="worst")
    cb.update_batch(
        _stand_in(False), None, {"preds": preds, "targets": targets, "images": torch.rand(4, 3, 8, 8)}
    )  # type: ignore[arg-type]
    reference = TIDE()
    reference.update(preds, targets)
    assert [e["image"] for _, e in cb._worst] == reference.worst_images(k=2, conf_threshold=0.5)[
        "image"
    ].tolist()
    first = DetectionVisualizationCallback(num_samples=2)  # choose="first": rank 0's first images only
    first.update_batch(
        _stand_in(False), None, {"preds": preds, "targets": targets, "images": torch.rand(4, 3, 8, 8)}
    )  # type: ignore[arg-type]
    assert first._images == []
    with pytest.raises(ValueError, match="choose"):
        DetectionVisualizationCallback(choose="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="worst_by"):
        DetectionVisualizationCallback(choose="worst", worst_by="map")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bg_threshold"):
        DetectionVisualizationCallback(choose="worst", tide_kwargs={"bg_threshold": 0.9})
    assert DetectionVisualizationCallback().choose == "first"


def _ddp_worker(rank: int, world_size: int, root: str) -> dict[str, Any]:
    import os

    import lightning.pytorch as pl

    from objdet.training import TIDECallback

    os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(world_size), NODE_RANK="0")
    torch.manual_seed(0)
    drawn: list[Any] = []
    real = dv.plot_detections

    def spy(images: Any, *args: Any, **kwargs: Any) -> Any:
        drawn[:] = [
            im.numpy() for im in images
        ]  # the last epoch's grid (numpy: tensors cannot leave a spawned process safely)
        return real(images, *args, **kwargs)

    dv.plot_detections = spy  # a spawned process of its own: nothing to restore
    worst = DetectionVisualizationCallback(num_samples=3, choose="worst", tag="val/worst", dpi=40)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world_size,
        strategy="ddp",
        callbacks=[worst, TIDECallback(dpi=40)],
        max_epochs=2,
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(ShapesDetectionModule(n_val=12))
    return {
        "chosen": worst.last_chosen,
        "figures": worst.figures_logged,
        "epochs": trainer.current_epoch,
        "drawn": drawn,
    }


def _val_images() -> list[torch.Tensor]:
    dataset = ShapesDataset(12, offset=10_000)  # ShapesDetectionModule(n_val=12)'s validation set
    return [dataset[i][0] for i in range(12)]


def test_ddp_rank_zero_draws_the_worst_of_every_rank(tmp_path: Path) -> None:
    """2 gloo ranks: rank 0 draws the worst images of the whole epoch, wherever they were validated."""
    from tests.helpers.ddp import run_distributed

    results = run_distributed(_ddp_worker, world_size=2, payload=str(tmp_path), timeout=240)
    preds, targets = _validation_outputs(ShapesDetectionModule(n_val=12))
    # DistributedSampler without shuffling: rank 0 gets images 0, 2, 4, ..., rank 1 images 1, 3, ...;
    # a TIDE that saw both (synced: rank 0's images first) is the reference
    order = [*range(0, 12, 2), *range(1, 12, 2)]
    reference = TIDE()
    reference.update([preds[i] for i in order], [targets[i] for i in order])
    expected = reference.worst_images(k=3, conf_threshold=0.5)
    assert [r["epochs"] for r in results] == [2, 2]
    chosen = results[0]["chosen"]
    assert [c["image"] for c in chosen] == expected["image"].tolist()
    assert [c["errors"] for c in chosen] == expected["errors"].tolist()
    assert [c["f1"] for c in chosen] == pytest.approx(expected["f1"].tolist())
    assert any(c["image"] >= 6 for c in chosen)  # an image of rank 1 made it to rank 0's grid
    assert results[0]["figures"] == {"val/worst": 2}
    assert results[1]["chosen"] == [] and results[1]["figures"] == {}
    # the drawn images are the chosen ones: rank 0 received rank 1's pixels
    for c, pixels in zip(chosen, results[0]["drawn"], strict=True):
        assert torch.equal(torch.from_numpy(pixels), _val_images()[order[c["image"]]])


def _ids_worker(rank: int, world_size: int, plan: list[list[list[int]]]) -> dict[str, Any]:
    preds, targets = to_torch(make_dataset(7, n_images=10), "xyxy")
    for i, t in enumerate(targets):
        t["image_id"] = torch.tensor(500 - 11 * i)  # not in update order
    images = [torch.full((3, 4, 4), float(i)) for i in range(10)]  # image i is filled with i
    cb = DetectionVisualizationCallback(num_samples=4, choose="worst", conf_threshold=0.3)
    for batch in plan[rank]:
        data = {"preds": [preds[i] for i in batch], "targets": [targets[i] for i in batch]}
        cb.update_batch(_stand_in(rank == 0), None, {**data, "images": [images[i] for i in batch]})  # type: ignore[arg-type]
    chosen = cb._gather_worst(_stand_in(rank == 0))  # type: ignore[arg-type]
    return {
        "images": [e["image"] for _, e in chosen],
        "errors": [e["errors"] for _, e in chosen],
        "pixels": [float(e["_data"][0][0, 0, 0]) for _, e in chosen],
    }


@pytest.mark.parametrize(
    "plan",
    [
        [[[0, 2, 4], [6, 8]], [[1, 3, 5, 7, 9, 0]]],  # DistributedSampler-like, padded with a copy of 0
        [[[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]], []],  # a rank without images
    ],
)
def test_ddp_with_image_ids_equals_one_tide(plan: list[list[list[int]]]) -> None:
    """Image ids out of order, a copy on another rank, an idle rank: TIDE.worst_images of all images."""
    from tests.helpers.ddp import run_distributed

    preds, targets = to_torch(make_dataset(7, n_images=10), "xyxy")
    reference = TIDE()
    reference.update(preds, [dict(t, image_id=torch.tensor(500 - 11 * i)) for i, t in enumerate(targets)])
    expected = reference.worst_images(k=4, conf_threshold=0.3)
    results = run_distributed(_ids_worker, world_size=2, payload=plan)
    assert results[0]["images"] == expected["image"].tolist()
    assert results[0]["errors"] == expected["errors"].tolist()
    assert results[0]["pixels"] == [float((500 - image) // 11) for image in results[0]["images"]]
    assert results[1] == {"images": [], "errors": [], "pixels": []}


def _mask_data(n_images: int = 5, size: int = 20) -> tuple[list[dict], list[dict], torch.Tensor]:
    """Images whose GTs and detections are rectangles given as masks (and their boxes)."""
    g = torch.Generator().manual_seed(3)
    preds, targets = [], []
    for _ in range(n_images):
        sides = {}
        for side, count in (("gt", 2), ("dt", 3)):
            masks = torch.zeros(count, size, size, dtype=torch.bool)
            boxes = torch.zeros(count, 4)
            for j in range(count):
                x, y = torch.randint(0, size - 6, (2,), generator=g).tolist()
                w, h = torch.randint(3, 7, (2,), generator=g).tolist()
                masks[j, y : y + h, x : x + w] = True
                boxes[j] = torch.tensor([x, y, x + w, y + h], dtype=torch.float32)
            sides[side] = (masks, boxes, torch.randint(0, 2, (count,), generator=g))
        masks, boxes, labels = sides["dt"]
        preds.append({"boxes": boxes, "masks": masks, "labels": labels, "scores": torch.rand(3, generator=g)})
        masks, boxes, labels = sides["gt"]
        targets.append({"boxes": boxes, "masks": masks, "labels": labels})
    return preds, targets, torch.rand(n_images, 3, size, size, generator=g)


def _finish(cb: DetectionVisualizationCallback, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls = _recording(monkeypatch)
    monkeypatch.setattr(cb, "draw_and_log", lambda trainer, draw: draw())
    cb.finish_epoch(SimpleNamespace(is_global_zero=True, current_epoch=0, global_step=0), None)  # type: ignore[arg-type]
    return calls


@pytest.mark.parametrize("choose", ["first", "worst"])
def test_masks_of_what_is_drawn_reach_the_grid(monkeypatch: pytest.MonkeyPatch, choose: str) -> None:
    preds, targets, images = _mask_data()
    kwargs: dict[str, Any] = {"tide_kwargs": {"iou_type": "segm"}} if choose == "worst" else {}
    cb = DetectionVisualizationCallback(num_samples=3, choose=choose, score_threshold=0.3, **kwargs)  # type: ignore[arg-type]
    for a in (0, 2, 4):
        batch = slice(a, a + 2)
        data = {"preds": preds[batch], "targets": targets[batch], "images": images[batch]}
        cb.update_batch(_stand_in(), None, data)  # type: ignore[arg-type]
    kept = cb._preds[0]["masks"] if choose == "first" else cb._worst[0][1]["_data"][1]["masks"]
    assert kept.bits.nbytes == (kept.shape[0] * 20 * 20 + 7) // 8  # kept as bits
    calls = _finish(cb, monkeypatch)
    if choose == "first":
        shown = [0, 1, 2]
    else:
        reference = TIDE(iou_type="segm")  # scored by mask IoU
        reference.update(preds, targets)
        shown = reference.worst_images(k=3, conf_threshold=0.3)["image"].tolist()
        assert [e["image"] for e in cb.last_chosen] == shown
    (call,) = calls
    for drawn_pred, drawn_target, k in zip(call["preds"], call["targets"], shown, strict=True):
        keep = preds[k]["scores"] >= 0.3
        assert torch.equal(drawn_pred["masks"], preds[k]["masks"][keep])
        assert torch.equal(drawn_pred["boxes"], preds[k]["boxes"][keep])
        assert torch.equal(drawn_target["masks"], targets[k]["masks"])


def test_draw_masks_off_keeps_no_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    preds, targets, images = _mask_data(2)
    cb = DetectionVisualizationCallback(num_samples=2, draw_masks=False)
    cb.update_batch(_stand_in(), None, {"preds": preds, "targets": targets, "images": images})  # type: ignore[arg-type]
    (call,) = _finish(cb, monkeypatch)
    assert all("masks" not in p for p in call["preds"]) and all("masks" not in t for t in call["targets"])
    bad = [dict(preds[0], masks=torch.zeros(20, 20, dtype=torch.bool))]
    with pytest.raises(ValueError, match=r"preds\[0\]\['masks'\].*\(N, H, W\)"):
        DetectionVisualizationCallback(num_samples=1).update_batch(
            _stand_in(),
            None,
            {"preds": bad, "targets": targets[:1], "images": images[:1]},  # type: ignore[arg-type]
        )
