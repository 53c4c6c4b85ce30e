"""coco_to_tm / tm_to_coco (torchmetrics' converters) against the COCO API files and pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from objdet.io import coco_to_tm, tm_to_coco
from objdet.training.metrics import MeanAveragePrecision
from tests.helpers.cocoapi_files import BBOX, GT, SEGM, unpack


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return unpack(tmp_path_factory.mktemp("cocoapi"))


def _quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _cocoeval_stats(gt_file: Path, dt_file: Path, iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(dt_file)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.array(ev.stats)


def test_coco_to_tm_bbox_layout_follows_torchmetrics(files: dict[str, Path]) -> None:
    preds, target = coco_to_tm(files[BBOX], files[GT], iou_type="bbox")
    data = json.loads(files[GT].read_text())
    results = json.loads(files[BBOX].read_text())
    # images with annotations, by first annotation; the others (and their detections) are dropped
    order = list(dict.fromkeys(a["image_id"] for a in data["annotations"]))
    assert len(target) == len(preds) == len(order) == 100
    for k in (0, 17, 99):
        image_id = order[k]
        anns = [a for a in data["annotations"] if a["image_id"] == image_id]
        dets = [r for r in results if r["image_id"] == image_id]
        t, p = target[k], preds[k]
        assert set(t) == {"boxes", "labels", "iscrowd", "area"}
        assert set(p) == {"boxes", "scores", "labels"}
        assert t["boxes"].dtype == p["boxes"].dtype == p["scores"].dtype == t["area"].dtype == torch.float32
        assert t["labels"].dtype == p["labels"].dtype == t["iscrowd"].dtype == torch.int32
        torch.testing.assert_close(t["boxes"], torch.tensor([a["bbox"] for a in anns], dtype=torch.float32))
        assert t["labels"].tolist() == [a["category_id"] for a in anns]
        assert t["iscrowd"].tolist() == [a["iscrowd"] for a in anns]
        torch.testing.assert_close(t["area"], torch.tensor([a["area"] for a in anns], dtype=torch.float32))
        assert p["labels"].tolist() == [r["category_id"] for r in dets]
        torch.testing.assert_close(p["scores"], torch.tensor([r["score"] for r in dets], dtype=torch.float32))
        torch.testing.assert_close(
            p["boxes"], torch.tensor([r["bbox"] for r in dets], dtype=torch.float32).reshape(-1, 4)
        )


def test_coco_to_tm_segm_masks_are_pycocotools_ann_to_mask(files: dict[str, Path]) -> None:
    preds, target = coco_to_tm(files[SEGM], files[GT], iou_type="segm")
    gt = _quiet_coco(files[GT])
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(str(files[SEGM]))
    order = list(dict.fromkeys(a["image_id"] for a in gt.dataset["annotations"]))
    for k in (0, 50):
        t, p = target[k], preds[k]
        assert "boxes" not in t and t["masks"].dtype == p["masks"].dtype == torch.uint8
        ann_ids = gt.getAnnIds(imgIds=[order[k]])
        expected = np.stack([gt.annToMask(a) for a in gt.loadAnns(ann_ids)])
        assert np.array_equal(t["masks"].numpy(), expected)
        dets = dt.loadAnns(dt.getAnnIds(imgIds=[order[k]]))
        if dets:
            assert np.array_equal(p["masks"].numpy(), np.stack([gt.annToMask(d) for d in dets]))


def test_coco_to_tm_rejects_unknown_backend(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="backend"):
        coco_to_tm(files[BBOX], files[GT], backend="detectron")


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_round_trip_through_files_equals_pycocotools(
    files: dict[str, Path], tmp_path: Path, iou_type: str
) -> None:
    """metric(coco_to_tm(files)) == pycocotools(tm_to_coco(coco_to_tm(files))), all 12 stats to 1e-12."""
    preds, target = coco_to_tm(files[BBOX if iou_type == "bbox" else SEGM], files[GT], iou_type=iou_type)
    name = str(tmp_path / "tm_map_input")
    tm_to_coco(preds, target, name, iou_type=iou_type, box_format="xywh")
    written = json.loads(Path(f"{name}_preds.json").read_text())
    assert isinstance(written, list) and {"image_id", "category_id", "score"} <= set(written[0])
    dataset = json.loads(Path(f"{name}_target.json").read_text())
    assert {"info", "images", "annotations", "categories"} <= set(dataset)
    reference = _cocoeval_stats(Path(f"{name}_target.json"), Path(f"{name}_preds.json"), iou_type)

    metric = MeanAveragePrecision(iou_type=iou_type, box_format="xywh")
    for a in range(0, len(preds), 10):
        metric.update(preds[a : a + 10], target[a : a + 10])
    stats, _ = metric.coco_eval()
    np.testing.assert_allclose(stats.numpy(), reference, rtol=0, atol=1e-12)
    # and close to pycocotools on the original files (float32 boxes change IoUs by ~1e-7)
    original = _cocoeval_stats(files[GT], files[BBOX if iou_type == "bbox" else SEGM], iou_type)
    np.testing.assert_allclose(stats.numpy(), original, rtol=0, atol=2e-3)


def test_tm_to_coco_writes_every_label_as_a_category(tmp_path: Path) -> None:
    preds = [
        {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([7])},
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    target = [
        {"boxes": torch.tensor([[0.0, 0, 4, 2]]), "labels": torch.tensor([3])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    name = str(tmp_path / "out")
    tm_to_coco(preds, target, name)
    dataset = json.loads(Path(f"{name}_target.json").read_text())
    assert [c["id"] for c in dataset["categories"]] == [3, 7]
    assert [im["id"] for im in dataset["images"]] == [0, 1]  # the image without GT is written too
    assert dataset["annotations"][0]["bbox"] == [0.0, 0.0, 4.0, 2.0]  # xyxy in, COCO xywh out
    results = json.loads(Path(f"{name}_preds.json").read_text())
    assert results == [{"image_id": 0, "category_id": 7, "score": 0.5, "bbox": [0.0, 0.0, 4.0, 4.0]}]
    back_preds, back_target = coco_to_tm(f"{name}_preds.json", f"{name}_target.json")
    assert len(back_target) == 1 and back_target[0]["labels"].tolist() == [3]
    assert back_preds[0]["labels"].tolist() == [7]
    with pytest.raises(ValueError, match="same length"):
        tm_to_coco(preds, target[:1], name)


def test_load_coco_dt_mask_areas_past_255_results() -> None:
    """pycocotools' mask.area overflows past 255 RLEs under numpy 2; detection areas must still be right."""
    from pycocotools import mask as mask_utils

    from objdet.io import CocoInputWarning, load_coco_dt, load_coco_gt

    with pytest.warns(CocoInputWarning, match="'annotations' is empty"):
        gt = load_coco_gt(
            {"images": [{"id": 1, "height": 20, "width": 30}], "annotations": [], "categories": [{"id": 1}]},
            iou_type="segm",
        )
    results, expected = [], []
    for k in range(300):
        m = np.zeros((20, 30), dtype=np.uint8, order="F")
        m[: 1 + k % 20, : 1 + k % 29] = 1
        rle = mask_utils.encode(m)
        results.append(
            {
                "image_id": 1,
                "category_id": 1,
                "score": 0.5,
                "segmentation": {"size": [20, 30], "counts": rle["counts"].decode()},
            }
        )
        expected.append(float(m.sum()))
    preds = load_coco_dt(results, gt)
    assert preds[0]["area"].tolist() == expected
