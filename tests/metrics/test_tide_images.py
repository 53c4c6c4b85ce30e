"""TIDE per image: error counts, F1 at a confidence, worst images, label-error candidates (and DDP)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from objdet.functional.tide import MAIN_ERRORS, worst_image_order
from objdet.training.metrics import TIDE
from tests.helpers.coco_reference import Image, make_dataset, to_torch
from tests.helpers.ddp import count_all_gathers, run_distributed
from tests.helpers.tide_reference import reference_tide, to_coco


# ------------------------------------------------------------------------------ plain references
def _iou(d: Any, g: Any, crowd: bool = False) -> float:
    """pycocotools' bbIou of two xywh boxes, written out."""
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - inter)


def _plain_image(im: Image, pos: float = 0.5, bg: float = 0.1, max_dets: int = 100) -> dict:
    """One image by brute force: each kept detection's kind, match, crowd cover and overlapped class."""
    order = sorted(range(len(im.dt_scores)), key=lambda i: -im.dt_scores[i])[:max_dets]
    truths = [j for j in range(len(im.gt_labels)) if not im.gt_crowd[j]]
    crowds = [j for j in range(len(im.gt_labels)) if im.gt_crowd[j]]
    used: set[int] = set()
    rows = []
    for i in order:
        box, label = im.dt_boxes[i], im.dt_labels[i]
        free = [(_iou(box, im.gt_boxes[j]), -j) for j in truths if j not in used and im.gt_labels[j] == label]
        best = max(free, default=(-1.0, 0))
        tp = best[0] >= pos
        if tp:
            used.add(-best[1])
        rows.append({"index": i, "score": float(im.dt_scores[i]), "label": int(label), "tp": tp})
    for row in rows:
        i, label = row["index"], row["label"]
        box = im.dt_boxes[i]
        row["ignored"] = not row["tp"] and any(
            im.gt_labels[c] == label and _iou(box, im.gt_boxes[c], crowd=True) > pos for c in crowds
        )
        row["gt_label"] = -1
        if row["tp"]:
            row["kind"] = "tp"
            continue
        same = [_iou(box, im.gt_boxes[j]) if im.gt_labels[j] == label else 0.0 for j in truths]
        other = [0.0 if im.gt_labels[j] == label else _iou(box, im.gt_boxes[j]) for j in truths]
        dupe = [s for s, j in zip(same, truths, strict=True) if j in used]
        if not truths:
            row["kind"] = "bkg"
        elif bg <= max(same) <= pos:
            row["kind"] = "loc"
        elif max(other) >= pos:
            row["kind"] = "cls"
            row["gt_label"] = int(im.gt_labels[truths[other.index(max(other))]])
        elif max(dupe, default=0.0) >= pos:
            row["kind"] = "dupe"
        elif max(_iou(box, im.gt_boxes[j]) for j in truths) <= bg:
            row["kind"] = "bkg"
        else:
            row["kind"] = "both"
    return {"rows": rows, "n_gt": len(truths)}


def _plain_f1(im: Image, conf: float, pos: float = 0.5) -> tuple[int, int, int, float]:
    rows = [r for r in _plain_image(im, pos)["rows"] if r["score"] >= conf]
    tp = sum(r["tp"] for r in rows)
    fp = sum(not r["tp"] and not r["ignored"] for r in rows)
    fn = int((im.gt_crowd == 0).sum()) - tp
    return tp, fp, fn, (2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0)


def _plain_candidates(images: list[Image], min_score: float, keys: list[int]) -> list[tuple]:
    """(image key, index in preds, label, score, gt class) of the candidates, most confident first."""
    out = []
    for key, im in sorted(zip(keys, images, strict=True), key=lambda p: p[0]):  # evaluation order
        for r in _plain_image(im)["rows"]:
            if r["kind"] in ("cls", "bkg") and not r["ignored"] and r["score"] >= min_score:
                out.append((key, r["index"], r["label"], r["score"], r["gt_label"]))
    return sorted(out, key=lambda c: -c[3])  # stable: ties keep the evaluation order


def _candidates(metric: TIDE, **kwargs: Any) -> list[tuple]:
    c = metric.label_error_candidates(**kwargs)
    return list(
        zip(
            c["image"].tolist(),
            c["det_index"].tolist(),
            c["label"].tolist(),
            c["score"].tolist(),
            c["gt_label"].tolist(),
            strict=True,
        )
    )


# ------------------------------------------------------------------------------ per-image scores
@pytest.mark.parametrize("seed", range(6))
def test_per_image_counts_equal_the_reference_image_by_image(seed: int) -> None:
    images = make_dataset(seed, n_images=9)
    preds, target = to_torch(images, "xyxy")
    metric = TIDE()
    metric.update(preds[:5], target[:5])
    metric.update(preds[5:], target[5:])
    s = metric.image_scores(conf_threshold=0.5)
    assert s["image"].tolist() == list(range(9))  # positions without ids
    for k, im in enumerate(images):
        ref = reference_tide(*to_coco([im]))["counts"]
        assert {name: int(s[name][k]) for name in MAIN_ERRORS} == ref, (seed, k)
        assert int(s["errors"][k]) == sum(ref.values())
        tp, fp, fn, f1 = _plain_f1(im, 0.5)
        assert (int(s["tp"][k]), int(s["fp"][k]), int(s["fn"][k])) == (tp, fp, fn), (seed, k)
        assert float(s["f1"][k]) == pytest.approx(f1, abs=1e-12)
    totals = metric.result().counts
    assert {name: int(s[name].sum()) for name in MAIN_ERRORS} == {name: totals[name] for name in MAIN_ERRORS}


def test_f1_follows_the_confidence_and_thresholds() -> None:
    images = make_dataset(3, n_images=10)
    preds, target = to_torch(images, "xywh")
    metric = TIDE(box_format="xywh")
    metric.update(preds, target)
    for conf in (0.0, 0.3, 0.77, 1.01):
        s = metric.image_scores(conf)
        got = list(zip(s["tp"].tolist(), s["fp"].tolist(), s["fn"].tolist(), strict=True))
        assert got == [_plain_f1(im, conf)[:3] for im in images], conf
    assert metric.image_scores(1.01)["f1"].tolist() == [
        1.0 if (im.gt_crowd == 0).sum() == 0 else 0.0 for im in images
    ]  # no confident detection: F1 is 0 with a GT, 1 without
    strict = TIDE(pos_threshold=0.75, bg_threshold=0.25, box_format="xywh")
    strict.update(preds, target)
    s = strict.image_scores(0.5)
    for k, im in enumerate(images):
        ref = reference_tide(*to_coco([im]), pos=0.75, bg=0.25)["counts"]
        assert {name: int(s[name][k]) for name in MAIN_ERRORS} == ref
        assert int(s["tp"][k]) == _plain_f1(im, 0.5, pos=0.75)[0]


def test_image_ids_order_copies_and_split() -> None:
    images = make_dataset(8, n_images=10)
    preds, target = to_torch(images, "xywh")
    ids = [31, 4, 17, 9, 2, 40, 11, 23, 5, 8]
    for t, i in zip(target, ids, strict=True):
        t["image_id"] = torch.tensor(i)
    metric = TIDE(box_format="xywh")
    order = [7, 3, 0, 9, 1, 5, 2, 8, 4, 6, 3, 0]  # shuffled, two copies
    for a in range(0, len(order), 5):
        metric.update([preds[j] for j in order[a : a + 5]], [target[j] for j in order[a : a + 5]])
    s = metric.image_scores()
    assert s["image"].tolist() == sorted(ids)
    by_id = {i: k for k, i in enumerate(ids)}
    for row, image_id in enumerate(s["image"].tolist()):
        im = images[by_id[image_id]]
        ref = reference_tide(*to_coco([im]))["counts"]
        assert {name: int(s[name][row]) for name in MAIN_ERRORS} == ref
    assert _candidates(metric) == _plain_candidates(images, 0.5, ids)


# ------------------------------------------------------------------------------ worst images
def test_worst_order_and_ties() -> None:
    errors = np.array([2, 5, 5, 0, 2, 5])
    f1 = np.array([0.5, 0.4, 0.4, 1.0, 0.1, 0.9])
    assert worst_image_order(errors, f1, "errors").tolist() == [1, 2, 5, 4, 0, 3]  # 1 and 2 tie: given order
    assert worst_image_order(errors, f1, "f1").tolist() == [4, 1, 2, 0, 5, 3]
    assert worst_image_order(np.zeros(0), np.zeros(0)).tolist() == []


def test_worst_images_equal_a_plain_sort() -> None:
    images = make_dataset(5, n_images=14)
    preds, target = to_torch(images, "xywh")
    ids = [int(v) for v in np.random.default_rng(0).permutation(100)[:14]]
    for t, i in zip(target, ids, strict=True):
        t["image_id"] = torch.tensor(i)
    metric = TIDE(box_format="xywh")
    metric.update(preds, target)
    table = []
    for image_id, im in zip(ids, images, strict=True):
        counts = reference_tide(*to_coco([im]))["counts"]
        table.append((image_id, sum(counts.values()), _plain_f1(im, 0.4)[3]))
    for by, key in (("errors", lambda r: (-r[1], r[2], r[0])), ("f1", lambda r: (r[2], -r[1], r[0]))):
        expected = sorted(table, key=key)
        for k in (1, 5, 14, 20):
            w = metric.worst_images(k=k, by=by, conf_threshold=0.4)  # type: ignore[arg-type]
            got = list(zip(w["image"].tolist(), w["errors"].tolist(), strict=True))
            assert got == [(r[0], r[1]) for r in expected[:k]], (by, k)
            assert w["f1"].tolist() == pytest.approx([r[2] for r in expected[:k]], abs=1e-12)
    assert len(set(r[1] for r in table)) < len(table)  # the data have ties


# ------------------------------------------------------------------------------ label-error candidates
@pytest.mark.parametrize("seed", range(8))
def test_label_error_candidates_equal_brute_force(seed: int) -> None:
    images = make_dataset(seed, n_images=9)
    preds, target = to_torch(images, "cxcywh")
    metric = TIDE(box_format="cxcywh")
    metric.update(preds[:3], target[:3])
    metric.update(preds[3:], target[3:])
    for min_score in (0.0, 0.5, 0.9):
        expected = _plain_candidates(images, min_score, list(range(9)))
        got = _candidates(metric, min_score=min_score)
        assert got == expected, (seed, min_score)
        assert _candidates(metric, min_score=min_score, max_candidates=3) == expected[:3]
    assert _candidates(metric, max_candidates=0) == []


def test_label_error_candidates_see_both_kinds_and_point_at_inputs() -> None:
    images = make_dataset(2, n_images=12)
    preds, target = to_torch(images, "xyxy")
    metric = TIDE()
    metric.update(preds, target)
    c = metric.label_error_candidates(min_score=0.0)
    kinds = set((c["gt_label"] >= 0).tolist())
    assert kinds == {True, False}  # classification and background errors are both there
    for image, index, label, score in zip(c["image"], c["det_index"], c["label"], c["score"], strict=True):
        p = preds[int(image)]
        assert int(p["labels"][index]) == int(label) and float(p["scores"][index]) == float(score)
    cls_rows = c["gt_label"] >= 0
    assert (c["gt_label"][cls_rows] != c["label"][cls_rows]).all()


def test_bad_arguments() -> None:
    metric = TIDE()
    with pytest.raises(ValueError, match="`k`"):
        metric.worst_images(k=0)
    with pytest.raises(ValueError, match="`by`"):
        metric.worst_images(by="map")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="conf_threshold"):
        metric.image_scores(conf_threshold="high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_score"):
        metric.label_error_candidates(min_score=float("nan"))
    with pytest.raises(ValueError, match="max_candidates"):
        metric.label_error_candidates(max_candidates=-1)
    empty = metric.worst_images()
    assert all(v.numel() == 0 for v in empty.values())
    assert all(v.numel() == 0 for v in metric.label_error_candidates().values())


# ------------------------------------------------------------------------------ DDP
N_DDP = 12


def _ddp_data(ids: bool) -> tuple[list[dict], list[dict]]:
    preds, target = to_torch(make_dataset(29, n_images=N_DDP), "xyxy")
    if ids:
        for i, t in enumerate(target):
            t["image_id"] = torch.tensor(100 - 7 * i)
    return preds, target


def _ddp_numbers(metric: TIDE) -> dict:
    scores = {k: v.tolist() for k, v in metric.image_scores(0.4).items()}
    worst = {k: v.tolist() for k, v in metric.worst_images(k=5, by="f1", conf_threshold=0.4).items()}
    return {"scores": scores, "worst": worst, "candidates": _candidates(metric, min_score=0.3)}


def _ddp_worker(rank: int, world_size: int, payload: tuple[bool, list[list[list[int]]]]) -> dict:
    ids, plan = payload
    preds, target = _ddp_data(ids)
    metric = TIDE()
    for batch in plan[rank]:
        metric.update([preds[i] for i in batch], [target[i] for i in batch])
    numbers, n_gathers = count_all_gathers(lambda: _ddp_numbers(metric))
    return {"numbers": numbers, "all_gathers": n_gathers}


@pytest.mark.parametrize(
    "ids, plan",
    [
        (False, [[[0, 1, 2], [3, 4, 5, 6, 7, 8]], [[9, 10], [11]]]),  # uneven
        (False, [[list(range(N_DDP))], []]),  # a rank without any update
        (True, [[[0, 2, 4], [6, 8, 10]], [[1, 3, 5, 7, 9, 11, 0]]]),  # padded with a copy
    ],
)
def test_ddp_equals_single_process(ids: bool, plan: list[list[list[int]]]) -> None:
    preds, target = _ddp_data(ids)
    single = TIDE()
    single.update(preds, target)
    expected = _ddp_numbers(single)
    assert expected["candidates"] and max(expected["scores"]["errors"]) > 0
    results = run_distributed(_ddp_worker, world_size=2, payload=(ids, plan))
    for rank, r in enumerate(results):
        assert r["numbers"] == expected, rank
        assert r["all_gathers"] == 3 * 16  # three reads, each one sync of the 8 list states
