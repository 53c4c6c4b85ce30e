"""MeanAveragePrecision / ClasswiseAP with masks (iou_type "segm" and ("bbox", "segm")).

References: pycocotools COCOeval(iouType="segm") on the same masks given as RLE / polygons
(tests/helpers/coco_segm_reference.py), and torchmetrics' own pycocotools pipeline
(``_calculate_map_with_coco``, called directly because torchmetrics' metric class needs
torchvision) for the tuple form's keys and area rules.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from objdet.training.metrics import ClasswiseAP, MeanAveragePrecision
from tests.helpers.coco_segm_reference import (
    encode,
    make_segm_dataset,
    mask_boxes,
    run_cocoeval,
    segm_cocoeval,
    to_torch_segm,
)

#: every test here runs on both COCO engines (compiled CPU loops and torch kernels)
pytestmark = pytest.mark.usefixtures("engine")

TOL = 1e-9
COCO_IOU = np.linspace(0.5, 0.95, 10).tolist()
COCO_REC = np.linspace(0.0, 1.0, 101).tolist()


def _close(ours: torch.Tensor, ref: np.ndarray, what: str) -> None:
    a = ours.cpu().numpy()
    assert a.shape == ref.shape, f"{what}: shape {a.shape} != {ref.shape}"
    diff = np.abs(a - ref).max() if ref.size else 0.0
    assert diff <= TOL, f"{what}: max |ours - pycocotools| = {diff}"


def _run(metric: MeanAveragePrecision, preds: list, target: list, batch: int) -> MeanAveragePrecision:
    for k in range(0, len(preds), batch):
        metric.update(preds[k : k + batch], target[k : k + batch])
    return metric


def _check(metric: MeanAveragePrecision, ev, iou_type: str | None = None) -> None:
    stats, tables = metric.coco_eval(iou_type=iou_type)
    _close(stats, np.array(ev.stats), "stats")
    _close(tables.precision, ev.eval["precision"], "precision")
    _close(tables.recall, ev.eval["recall"], "recall")
    _close(tables.scores, ev.eval["scores"], "scores")
    assert tables.classes.tolist() == list(ev.params.catIds)


# ---------------------------------------------------------------- parity with pycocotools
def test_generator_covers_the_corners() -> None:
    images = [im for seed in range(6) for im in make_segm_dataset(seed)]
    segm = [s for im in images for s in im.gt_segm]
    assert any(isinstance(s, list) for s in segm), "polygon GTs"
    assert "uncompressed" in segm and any(im.gt_crowd.any() for im in images), "crowd RLE GTs"
    assert any((im.gt_masks.sum((1, 2)) == 0).any() for im in images if len(im.gt_masks)), "empty GT mask"
    assert any((im.dt_masks.sum((1, 2)) == 0).any() for im in images if len(im.dt_masks)), "empty detection"
    border = [
        m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() for im in images for m in im.gt_masks
    ]
    assert any(border), "masks touching the border"
    assert len({(im.height, im.width) for im in images}) > 3, "images of several sizes"
    assert any(len(im.gt_masks) == 0 and len(im.dt_masks) for im in images), (
        "detections on an image without GT"
    )
    assert any((im.gt_masks.sum((1, 2)) > 96**2).any() for im in images if len(im.gt_masks)), "large objects"


@pytest.mark.parametrize("seed", range(6))
def test_segm_matches_pycocotools(seed: int) -> None:
    images = make_segm_dataset(seed)
    ev = run_cocoeval(segm_cocoeval(images))
    assert (np.array(ev.stats) > 0).any()
    preds, target = to_torch_segm(images)
    _check(_run(MeanAveragePrecision(iou_type="segm"), preds, target, batch=3), ev)


def test_segm_with_uint8_masks_custom_thresholds_and_single_image_updates() -> None:
    images = make_segm_dataset(40)
    iou, rec, md = [0.3, 0.5, 0.9, 1.0], [0.0, 0.2, 0.5, 1.0], [1, 5, 120]
    ev = run_cocoeval(segm_cocoeval(images), iouThrs=np.array(iou), recThrs=np.array(rec), maxDets=md)
    preds, target = to_torch_segm(images)
    for d in (*preds, *target):
        d["masks"] = d["masks"].to(torch.uint8)
    metric = MeanAveragePrecision(
        iou_type="segm", iou_thresholds=iou, rec_thresholds=rec, max_detection_thresholds=md
    )
    _check(_run(metric, preds, target, batch=1), ev)


def test_segm_class_metrics_and_classwise_ap_match_per_category_evaluation() -> None:
    images = make_segm_dataset(7)
    preds, target = to_torch_segm(images)
    out = _run(MeanAveragePrecision(iou_type="segm", class_metrics=True), preds, target, 4).compute()
    classwise = _run(
        ClasswiseAP(num_classes=4, iou_threshold=None, iou_type="segm"), preds, target, 4
    ).compute()
    for i, c in enumerate(out["classes"].tolist()):
        ref = run_cocoeval(segm_cocoeval(images), catIds=[c]).stats
        assert abs(out["map_per_class"][i].item() - ref[0]) < 1e-6
        assert abs(out["mar_100_per_class"][i].item() - ref[8]) < 1e-6
        assert abs(classwise[f"class_{c}_AP"].item() - ref[0]) < 1e-6


def test_segm_extended_summary_ious_match_pycocotools() -> None:
    images = make_segm_dataset(3)
    ev = segm_cocoeval(images)
    run_cocoeval(ev)
    preds, target = to_torch_segm(images)
    out = _run(MeanAveragePrecision(iou_type="segm", extended_summary=True), preds, target, 3).compute()
    assert list(out["ious"]) == list(ev.ious)
    blocks = 0
    for key, expected in ev.ious.items():
        if isinstance(expected, list):
            assert out["ious"][key] == [], key
            continue
        blocks += 1
        np.testing.assert_array_equal(out["ious"][key].numpy(), expected.astype(np.float32), err_msg=str(key))
    assert blocks >= 5
    _close(out["precision"], ev.eval["precision"], "precision")


def test_micro_average_segm_matches_class_agnostic_pycocotools() -> None:
    images = make_segm_dataset(11)
    agnostic = make_segm_dataset(11)
    for im in agnostic:
        im.gt_labels[:] = 0
        im.dt_labels[:] = 0
    ev = run_cocoeval(segm_cocoeval(agnostic))
    preds, target = to_torch_segm(images)
    _check(_run(MeanAveragePrecision(iou_type="segm", average="micro"), preds, target, 3), ev)


# ---------------------------------------------------------------- the tuple form against torchmetrics
def _torchmetrics_reference(images: list, iou_type: tuple[str, ...], **kwargs: bool) -> dict:
    """torchmetrics 1.9's compute (its pycocotools pipeline) on the images, minus its torchvision box step."""
    from torchmetrics.detection.helpers import CocoBackend, _calculate_map_with_coco

    def rle(masks: np.ndarray) -> tuple:
        return tuple((tuple(r["size"]), r["counts"]) for r in (encode(masks) if len(masks) else []))

    g_lab, g_box, g_mask, g_crowd, g_area, d_lab, d_box, d_mask, d_score = ([] for _ in range(9))
    for im in images:
        g_lab.append(torch.tensor(im.gt_labels))
        g_box.append(torch.tensor(mask_boxes(im.gt_masks), dtype=torch.float64).reshape(-1, 4))
        g_mask.append(rle(im.gt_masks))
        g_crowd.append(torch.tensor(im.gt_crowd))
        g_area.append(torch.tensor(im.gt_area) if im.gt_area is not None else torch.zeros(len(im.gt_labels)))
        d_lab.append(torch.tensor(im.dt_labels))
        d_box.append(torch.tensor(mask_boxes(im.dt_masks), dtype=torch.float64).reshape(-1, 4))
        d_mask.append(rle(im.dt_masks))
        d_score.append(torch.tensor(im.dt_scores))
    return _calculate_map_with_coco(
        CocoBackend("pycocotools"),
        g_lab,
        g_box if "bbox" in iou_type else [],
        g_mask if "segm" in iou_type else [],
        g_crowd,
        g_area,
        d_lab,
        d_box if "bbox" in iou_type else [],
        d_mask if "segm" in iou_type else [],
        d_score,
        iou_type,  # type: ignore[arg-type]
        "macro",
        COCO_IOU,
        COCO_REC,
        [1, 10, 100],
        kwargs.get("class_metrics", False),
        kwargs.get("extended_summary", False),
    )


def _compare_with_torchmetrics(ours: dict, ref: dict) -> None:
    assert set(ours) == set(ref)
    for key, expected in ref.items():
        value = ours[key]
        if isinstance(expected, dict):  # ious
            assert list(value) == list(expected), key
            for k, block in expected.items():
                if isinstance(block, list):
                    assert value[k] == [], (key, k)
                    continue
                # torchmetrics' Metric.compute squeezes one-element tensors, also inside `ious`
                assert torch.equal(value[k], block.squeeze() if block.numel() == 1 else block), (key, k)
            continue
        np.testing.assert_allclose(
            value.double().numpy().ravel(), expected.double().numpy().ravel(), rtol=0, atol=1e-6, err_msg=key
        )


@pytest.mark.parametrize("iou_type", [("bbox", "segm"), ("segm", "bbox")])
def test_tuple_form_equals_torchmetrics_keys_and_values(iou_type: tuple[str, ...]) -> None:
    images = make_segm_dataset(15)
    # torchmetrics' tuple form takes the GT area from the mask for bbox too: make sure that matters here
    size = lambda a: np.searchsorted([32**2, 96**2], a, side="right")  # noqa: E731 - area range index
    crossing = [
        size(mask_boxes(im.gt_masks)[:, 2:].prod(1)) != size(im.gt_masks.sum((1, 2)))
        for im in images
        if len(im.gt_masks) and im.gt_area is None
    ]
    assert sum(int(c.sum()) for c in crossing) >= 2
    ref = _torchmetrics_reference(images, iou_type, class_metrics=True, extended_summary=True)
    assert {"bbox_map", "segm_map", "bbox_ious", "segm_precision", "segm_map_per_class", "classes"} <= set(
        ref
    )
    preds, target = to_torch_segm(images, with_boxes=True)
    metric = MeanAveragePrecision(
        box_format="xywh",
        iou_type=iou_type,
        iou_thresholds=COCO_IOU,
        rec_thresholds=COCO_REC,
        class_metrics=True,
        extended_summary=True,
    )
    _compare_with_torchmetrics(_run(metric, preds, target, 3).compute(), ref)
    # the segm half is the plain segm evaluation
    ev = run_cocoeval(segm_cocoeval(images))
    _check(metric, ev, iou_type="segm")


def test_segm_alone_equals_torchmetrics_where_every_image_has_gt() -> None:
    # torchmetrics' segm drops images without GT masks (their detections are never counted); ours,
    # like pycocotools, keeps them. Where every image has GT the two agree.
    images = [im for im in make_segm_dataset(8, n_images=10) if len(im.gt_masks)]
    ref = _torchmetrics_reference(images, ("segm",), class_metrics=True)
    preds, target = to_torch_segm(images)
    metric = MeanAveragePrecision(
        iou_type="segm", iou_thresholds=COCO_IOU, rec_thresholds=COCO_REC, class_metrics=True
    )
    _compare_with_torchmetrics(_run(metric, preds, target, 4).compute(), ref)


def test_classwise_ap_tuple_form_keys() -> None:
    images = make_segm_dataset(2)
    preds, target = to_torch_segm(images, with_boxes=True)
    out = ClasswiseAP(num_classes=4, class_names=list("abcd"), box_format="xywh", iou_type=("bbox", "segm"))
    out = _run(out, preds, target, 3).compute()
    assert sorted(out) == sorted(f"{t}_{c}_AP" for t in ("bbox", "segm") for c in "abcd")
    segm_only = _run(ClasswiseAP(num_classes=4, class_names=list("abcd"), iou_type="segm"), preds, target, 3)
    assert {k[5:]: v for k, v in out.items() if k.startswith("segm_")} == segm_only.compute()


def test_empty_metric_tuple_form_gives_prefixed_minus_one() -> None:
    out = MeanAveragePrecision(iou_type=("bbox", "segm")).compute()
    assert out["bbox_map"].item() == -1 and out["segm_mar_100"].item() == -1
    assert out["classes"].numel() == 0 and "map" not in out


# ---------------------------------------------------------------- bounded state
def _state_bytes(metric: MeanAveragePrecision) -> int:
    total = 0
    for name in metric._defaults:
        value = getattr(metric, name)
        for t in value if isinstance(value, list) else [value]:
            total += t.numel() * t.element_size()
    return total


def test_state_bytes_do_not_depend_on_mask_resolution() -> None:
    images = make_segm_dataset(21, n_images=6)
    small = [im for im in images if im.height < 100]  # 64 x 64 crops / paddings of the generated masks
    preds64, target64 = [], []
    for im in small:
        p, t = to_torch_segm([im])
        for d in (p[0], t[0]):
            m = torch.zeros(d["masks"].shape[0], 64, 64, dtype=torch.bool)
            h, w = min(64, im.height), min(64, im.width)
            m[:, :h, :w] = d["masks"][:, :h, :w]
            d["masks"] = m
        preds64.append(p[0])
        target64.append(t[0])
    up = lambda m: m.repeat_interleave(8, 1).repeat_interleave(8, 2)  # noqa: E731 - 512 x 512, same shapes
    preds512 = [{**p, "masks": up(p["masks"])} for p in preds64]
    target512 = [{**t, "masks": up(t["masks"])} for t in target64]
    assert preds512[0]["masks"].shape[1:] == (512, 512)
    m64 = _run(MeanAveragePrecision(iou_type="segm"), preds64, target64, 2)
    m512 = _run(MeanAveragePrecision(iou_type="segm"), preds512, target512, 2)
    n_det = sum(len(p["scores"]) for p in preds64)
    b64, b512 = _state_bytes(m64), _state_bytes(m512)
    assert n_det > 20 and b64 == b512, (b64, b512)
    assert b64 / n_det < 40, "a few tens of bytes per detection, never masks"
    # the same detections as boxes take the same state
    boxes = [{**p, "boxes": torch.zeros(len(p["scores"]), 4)} for p in preds64]
    gboxes = [{**t, "boxes": torch.zeros(len(t["labels"]), 4)} for t in target64]
    assert _state_bytes(_run(MeanAveragePrecision(), boxes, gboxes, 2)) == b64
    # scaling every mask by 8 keeps every IoU: the results at area "all" agree
    a, b = m64.compute(), m512.compute()
    assert a["map_50"] == b["map_50"] and a["mar_100"] == b["mar_100"] and a["map"] == b["map"]


# ---------------------------------------------------------------- bad input
def _p(masks: torch.Tensor, n: int = 1) -> dict:
    return {"masks": masks, "scores": torch.rand(n), "labels": torch.zeros(n, dtype=torch.long)}


def _t(masks: torch.Tensor, n: int = 1) -> dict:
    return {"masks": masks, "labels": torch.zeros(n, dtype=torch.long)}


M = torch.zeros(1, 8, 8, dtype=torch.bool)


@pytest.mark.parametrize(
    ("preds", "target", "iou_type", "error", "match"),
    [
        (
            [{"scores": torch.rand(1), "labels": torch.zeros(1, dtype=torch.long)}],
            [_t(M)],
            "segm",
            ValueError,
            r"preds\[0\] has no key 'masks'",
        ),
        (
            [_p(M)],
            [{"labels": torch.zeros(1, dtype=torch.long)}],
            "segm",
            ValueError,
            r"target\[0\] has no key 'masks'",
        ),
        (
            [_p(M)],
            [_t(torch.zeros(1, 8, 9, dtype=torch.bool))],
            "segm",
            ValueError,
            r"preds\[0\]\['masks'\] have size \(H, W\) = \(8, 8\) but target\[0\]\['masks'\] have \(8, 9\)",
        ),
        (
            [_p(M.to(torch.uint8) + 2)],
            [_t(M)],
            "segm",
            ValueError,
            r"`preds\[0\]\['masks'\]` must be boolean or hold only the values 0 and 1 \(torch.uint8\), "
            r"got the value 2",
        ),
        (
            [_p(M)],
            [_t(M.float() + 0.5)],
            "segm",
            ValueError,
            r"`target\[0\]\['masks'\]` must be boolean .* 0.5",
        ),
        (
            [_p(M.flatten(1))],
            [_t(M)],
            "segm",
            ValueError,
            r"`preds\[0\]\['masks'\]` must have shape \(N, H, W\)",
        ),
        ([_p([[0]])], [_t(M)], "segm", TypeError, r"preds\[0\]\['masks'\] must be a torch.Tensor, got list"),
        (
            [_p(M.repeat(2, 1, 1))],
            [_t(M)],
            "segm",
            ValueError,
            r"preds\[0\]\['scores'\] must have shape \(2,\) to match 'masks', got \(1,\)",
        ),
        (
            [{**_p(M.repeat(2, 1, 1)), "boxes": torch.zeros(1, 4)}],
            [{**_t(M), "boxes": torch.zeros(1, 4)}],
            ("bbox", "segm"),
            ValueError,
            r"preds\[0\]\['masks'\] must hold one mask per box \(1\)",
        ),
        ([_p(M)], [_t(M)], ("bbox", "segm"), ValueError, r"preds\[0\] has no key 'boxes'"),
        ([_p(torch.zeros(1, 8, 8, dtype=torch.complex64))], [_t(M)], "segm", TypeError, "complex64"),
        (
            [{**_p(M), "area": torch.tensor([-1.0])}],
            [_t(M)],
            "segm",
            ValueError,
            r"preds\[0\]\['area'\] must have finite values >= 0, got -1.0",
        ),
    ],
)
def test_bad_mask_input_names_the_field(preds, target, iou_type, error, match) -> None:
    with pytest.raises(error, match=match):
        MeanAveragePrecision(iou_type=iou_type).update(preds, target)


def test_empty_masks_of_any_shape_and_other_sizes_where_one_side_is_empty() -> None:
    metric = MeanAveragePrecision(iou_type="segm")
    metric.update(
        [_p(torch.zeros(0), 0), _p(torch.ones(1, 5, 6, dtype=torch.bool))],
        [_t(torch.zeros(1, 4, 4, dtype=torch.bool)), _t(torch.zeros(0, 9, 9, dtype=torch.bool), 0)],
    )
    out = metric.compute()
    assert out["map"].item() == 0.0  # one GT (empty mask) never found, one false positive


# ---------------------------------------------------------------- invariance
@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 6), max_size=4))
def test_segm_batch_split_invariance(seed: int, cuts: list[int]) -> None:
    images = make_segm_dataset(seed, n_images=6)
    preds, target = to_torch_segm(images)
    whole = MeanAveragePrecision(iou_type="segm", class_metrics=True)
    whole.update(preds, target)
    split = MeanAveragePrecision(iou_type="segm", class_metrics=True)
    bounds = sorted({0, len(preds), *cuts})
    for a, b in itertools.pairwise(bounds):
        split.update(preds[a:b], target[a:b])
    sa, ta = whole.coco_eval()
    sb, tb = split.coco_eval()
    assert (
        torch.equal(sa, sb) and torch.equal(ta.precision, tb.precision) and torch.equal(ta.recall, tb.recall)
    )


@pytest.mark.cuda
def test_segm_on_cuda_matches_cpu() -> None:
    images = make_segm_dataset(4)
    preds, target = to_torch_segm(images, with_boxes=True)
    cpu = _run(MeanAveragePrecision(iou_type=("bbox", "segm"), box_format="xywh"), preds, target, 3)
    move = lambda ds: [{k: v.cuda() for k, v in d.items()} for d in ds]  # noqa: E731
    gpu = MeanAveragePrecision(iou_type=("bbox", "segm"), box_format="xywh").cuda()
    _run(gpu, move(preds), move(target), 3)
    for t in ("bbox", "segm"):
        sa, sb = cpu.coco_eval(iou_type=t)[0], gpu.coco_eval(iou_type=t)[0].cpu()
        assert torch.equal(sa, sb), t


# ---------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world_size: int, plan: list[list[tuple[int, int]]]) -> dict:
    preds, target = to_torch_segm(make_segm_dataset(9, n_images=8), with_boxes=True)
    metric = MeanAveragePrecision(box_format="xywh", iou_type=("bbox", "segm"), class_metrics=True)
    for a, b in plan[rank]:
        metric.update(preds[a:b], target[a:b])
    return {k: v.numpy() for k, v in metric.compute().items()}


def test_tuple_form_under_ddp_with_an_idle_rank_matches_one_process() -> None:
    from tests.helpers.ddp import run_distributed

    plan = [[(0, 3), (3, 8)], []]
    results = run_distributed(_ddp_worker, world_size=2, payload=plan)
    single = _ddp_worker(0, 1, [[(0, 8)]])
    for res in results:
        assert set(res) == set(single)
        for key, value in single.items():
            np.testing.assert_array_equal(res[key], value, err_msg=key)
