"""objdet.io.coco_arrays: the strict (msgspec) reader and the generic one give the same columns and errors."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pytest

from objdet.data import demo_files
from objdet.io.coco_arrays import CocoInputWarning, read_dt_arrays, read_gt_arrays, rle_area


def _same(a: object, b: object) -> None:
    for f in fields(a):  # type: ignore[arg-type]
        if not f.compare:  # a cache
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if is_dataclass(x):
            assert type(x) is type(y), f.name
            _same(x, y)
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("iou_type", [("bbox",), ("bbox", "segm")])
def test_strict_and_generic_readers_agree_on_the_demo(iou_type: tuple[str, ...]) -> None:
    gt_path, dt_path = demo_files()
    strict = read_gt_arrays(gt_path, iou_type)
    generic = read_gt_arrays(json.loads(gt_path.read_text()), iou_type)  # a dict: the generic reader
    _same(strict, generic)
    _same(read_dt_arrays(dt_path, strict), read_dt_arrays(json.loads(dt_path.read_text()), strict))


def test_lax_files_go_through_the_generic_reader(tmp_path: Path) -> None:
    gt = {
        "images": [{"id": 2.0, "height": 10, "width": 10}, {"id": 1}],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 7.0, "bbox": [1, 1, 3, 3], "iscrowd": 0}],
        "categories": [{"id": 7, "name": "x"}],
    }
    dt = [
        {"image_id": 2, "category_id": 7, "bbox": [1, 1, 3, 3], "score": True},  # bool: pycocotools' 1.0
        {"image_id": 1.0, "category_id": 7, "bbox": [], "score": 0.5, "segmentation": [[0, 0, 4, 0, 4, 4]]},
    ]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    g = read_gt_arrays(gt_path)
    assert g.image_ids.tolist() == [1, 2] and g.img.tolist() == [1] and g.category.tolist() == [7]
    with pytest.raises(ValueError, match="polygon 'segmentation' needs the image's 'height' and 'width'"):
        read_dt_arrays(dt_path, g)
    dt[1]["image_id"] = 2
    dt_path.write_text(json.dumps(dt))
    d = read_dt_arrays(dt_path, g)
    assert d.score.tolist() == [1.0, 0.5] and d.img.tolist() == [1, 1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda gt, dt: dt[3].update(bbox=[0, 0, -1, 2]), r"results\[3\]\['bbox'\] must be 4 finite"),
        (lambda gt, dt: dt[2].update(image_id=999), r"results\[2\]\['image_id'\] = 999 is not in the GT"),
        (
            lambda gt, dt: gt["annotations"][4].update(iscrowd=2),
            r"annotations\[4\]\['iscrowd'\] must be 0 or 1",
        ),
        (
            lambda gt, dt: gt["images"].append(dict(gt["images"][0])),
            r"images has the 'id' \d+ more than once",
        ),
        (
            lambda gt, dt: dt[1]["segmentation"].update(size=[3, 3]),
            r"results\[1\]\['segmentation'\]\['size'\]",
        ),
    ],
)
def test_strict_reader_errors_are_the_generic_readers(tmp_path: Path, change: object, expected: str) -> None:
    gt, dt = (json.loads(p.read_text()) for p in demo_files())
    change(gt, dt)  # type: ignore[operator]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    with pytest.raises(ValueError, match=expected):
        g = read_gt_arrays(gt_path, ("bbox", "segm"))
        read_dt_arrays(dt_path, g)


def test_strict_and_generic_readers_skip_the_same_unknown_categories(tmp_path: Path) -> None:
    gt_path, dt_path = demo_files()
    dt = json.loads(dt_path.read_text())
    for k in (0, 5, 6, 200):
        dt[k]["category_id"] = 1000 + k
    path = tmp_path / "dt.json"
    path.write_text(json.dumps(dt))
    g = read_gt_arrays(gt_path, ("bbox", "segm"))
    with pytest.warns(CocoInputWarning, match=r"skipped 4 of 237 results .* ids \[1000, 1005, 1006, 1200\]"):
        strict = read_dt_arrays(path, g, skip_unknown_categories=True)
    with pytest.warns(CocoInputWarning):
        generic = read_dt_arrays(dt, g, skip_unknown_categories=True)
    _same(strict, generic)
    assert strict.skipped.tolist() == [0, 5, 6, 200] and len(strict.score) == 233


def test_rle_area_past_255_rles() -> None:
    from pycocotools import mask as mask_utils

    masks = np.zeros((4, 4, 600), np.uint8)
    masks[:2, :, ::2] = 1
    rles = mask_utils.encode(np.asfortranarray(masks))
    assert rle_area(rles).tolist() == [8.0, 0.0] * 300


def test_rle_counts_stay_as_the_file_gives_them_and_must_be_ascii(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    full = mask_utils.encode(np.asfortranarray(np.ones((4, 4), np.uint8)))["counts"].decode()
    gt = {
        "images": [{"id": 1, "height": 4, "width": 4}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": {"size": [4, 4], "counts": full}},
        ],
        "categories": [{"id": 1, "name": "a"}],
    }  # fmt: skip
    dt = [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [4, 4], "counts": full}}]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    g = read_gt_arrays(gt_path, ("bbox", "segm"))
    d = read_dt_arrays(dt_path, g)
    assert g.rles == d.rles == [{"size": [4, 4], "counts": full}]
    assert d.boxes.tolist() == [[0.0, 0.0, 4.0, 4.0]] and d.area.tolist() == [16.0]
    dt[0]["segmentation"]["counts"] = "\u00e90"  # type: ignore[index]
    dt_path.write_text(json.dumps(dt))
    for source in (dt_path, dt):  # the strict reader (a file) and the generic one (objects)
        with pytest.raises(ValueError, match=r"results\[0\]\['segmentation'\]\['counts'\] .* ASCII"):
            read_dt_arrays(source, g)  # type: ignore[arg-type]
