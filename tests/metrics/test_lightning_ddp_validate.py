"""A real 2-process Lightning ``validate`` (CPU, gloo) over an odd number of images.

Lightning's ``DistributedSampler`` pads the shards with copies of the first images so that
both ranks get as many batches. With ``image_id`` in the targets every image counts once:
``compute()``, ``coco_eval()``, the curves and the confusion matrix equal pycocotools (and a
single process) over the unique images. A metric fed the same targets without ids counts the
copies, which shows that the run really padded.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from objdet.training.metrics import ConfusionMatrix, MeanAveragePrecision
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, to_torch
from tests.helpers.ddp import run_distributed

N_IMAGES = 13  # odd: the 2 shards are padded with a copy of image 0
SEED = 8
TOL = 1e-9


def _ids() -> list[int]:
    return [int(i) for i in np.random.default_rng(SEED).permutation(1000)[:N_IMAGES] * 7 + 2]


def _samples() -> list[tuple[dict, dict]]:
    preds, target = to_torch(make_dataset(SEED, n_images=N_IMAGES), "xywh")
    return [
        (p, {**t, "image_id": i, "slices": {"even"} if k % 2 == 0 else set()})
        for k, (p, t, i) in enumerate(zip(preds, target, _ids(), strict=True))
    ]


class _Samples(Dataset):
    """Each item: an image's (precomputed) detections and its target."""

    def __init__(self) -> None:
        self.items = _samples()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[dict, dict]:
        return self.items[i]


def _collate(items: list[tuple[dict, dict]]) -> tuple[list[dict], list[dict]]:
    return [p for p, _ in items], [t for _, t in items]


def _metrics() -> dict[str, Any]:
    return {
        "map": MeanAveragePrecision(box_format="xywh", class_metrics=True, slices=["even"]),
        "map_without_ids": MeanAveragePrecision(box_format="xywh"),
        "cm": ConfusionMatrix(num_classes=4, box_format="xywh", conf_threshold=0.3),
    }


def _plain(slices: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {k: v.numpy() for k, v in out.items()} for name, out in slices.items()}


def _worker(rank: int, world_size: int, payload: Any) -> dict[str, Any]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    os.environ.update(LOCAL_RANK=str(rank), RANK=str(rank), WORLD_SIZE=str(world_size), NODE_RANK="0")

    class Evaluator(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)  # Lightning's DDP wants a parameter
            self.metrics = torch.nn.ModuleDict(_metrics())
            self.seen: list[int] = []
            self.out: dict[str, Any] = {}

        def validation_step(self, batch: tuple[list[dict], list[dict]], batch_idx: int) -> None:
            preds, target = batch
            self.seen += [int(t["image_id"]) for t in target]
            self.metrics["map"].update(preds, target)
            self.metrics["cm"].update(preds, target)
            self.metrics["map_without_ids"].update(
                preds, [{k: v for k, v in t.items() if k not in ("image_id", "slices")} for t in target]
            )

        def on_validation_epoch_end(self) -> None:  # every rank computes (they gather)
            m = self.metrics["map"]
            stats, tables = m.coco_eval()
            curves = m.curves(iou_threshold=0.5)
            self.out = {
                "compute": {k: v.numpy() for k, v in m.compute().items()},
                "stats": stats.numpy(),
                "precision": tables.precision.numpy(),
                "recall": tables.recall.numpy(),
                "curve_precision": curves.precision.numpy(),
                "curve_ap": curves.ap.numpy(),
                "cm": self.metrics["cm"].compute().numpy(),
                "without_ids": self.metrics["map_without_ids"].compute()["map"].item(),
                "slices": _plain(m.compute_slices({"first": _ids()[:5]})),
                "seen": self.seen,
            }

    module = Evaluator()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=world_size,
        strategy="ddp",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    loader = DataLoader(_Samples(), batch_size=3, collate_fn=_collate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.validate(module, dataloaders=loader, verbose=False)
    module.out["warnings"] = [str(w.message) for w in caught]
    return module.out


def test_lightning_ddp_validate_counts_every_image_once() -> None:
    results = run_distributed(_worker, world_size=2, payload=None, timeout=300)
    # the sampler padded: 14 images seen over the two ranks, image 0 (id below) twice
    seen = results[0]["seen"] + results[1]["seen"]
    ids = _ids()
    assert len(seen) == N_IMAGES + 1 and sorted(set(seen)) == sorted(ids) and seen.count(ids[0]) == 2
    assert not any("image_id" in w for r in results for w in r["warnings"]), "copies are identical"

    # references over the unique images, one process
    images = make_dataset(SEED, n_images=N_IMAGES)
    ref = pycocotools_eval(images, image_ids=ids)
    single = _metrics()
    samples = _samples()
    for m in ("map", "cm"):
        single[m].update([p for p, _ in samples], [t for _, t in samples])
    expected = {k: v.numpy() for k, v in single["map"].compute().items()}
    expected_slices = _plain(single["map"].compute_slices({"first": ids[:5]}))
    assert expected_slices["even"]["map"] != expected_slices["first"]["map"]
    curves = single["map"].curves(iou_threshold=0.5)

    for rank, res in enumerate(results):
        assert np.abs(res["stats"] - ref.stats).max() <= TOL, rank
        assert np.abs(res["precision"] - ref.precision).max() <= TOL, rank
        assert np.abs(res["recall"] - ref.recall).max() <= TOL, rank
        assert res["compute"].keys() == expected.keys()
        for key, value in expected.items():
            np.testing.assert_array_equal(res["compute"][key], value, err_msg=f"rank {rank}: {key}")
        np.testing.assert_array_equal(res["curve_precision"], curves.precision.numpy())
        np.testing.assert_array_equal(res["curve_ap"], curves.ap.numpy())
        np.testing.assert_array_equal(res["cm"], single["cm"].compute().numpy())
        for name, values in expected_slices.items():
            for key, value in values.items():
                np.testing.assert_array_equal(
                    res["slices"][name][key], value, err_msg=f"{rank}: {name} {key}"
                )
        # without ids the copy of image 0 is counted twice
        assert abs(res["without_ids"] - expected["map"]) > 1e-6, rank
