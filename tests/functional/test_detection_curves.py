"""Detection curves: AP against pycocotools, confidence curves against a brute force on pycocotools' flags."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.functional.curves import confidence_grid, detection_curves
from objdet.training.metrics import ClasswiseAP, MeanAveragePrecision
from tests.helpers.coco_reference import _cocoeval, make_dataset, pycocotools_eval, to_torch

EPS = float(np.spacing(1))

# ----------------------------------------------------------------------------- references


def pycocotools_flags(images: list, t_index: int) -> dict[int, tuple[list, list, list, int]]:
    """Per category: (scores, tp, ignored) of each detection pycocotools keeps (area all, maxDet 100), nGT.

    Read from COCOeval.evalImgs, i.e. from pycocotools' own matching, not from objdet's.
    """
    ev = _cocoeval(images)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    out: dict[int, tuple[list, list, list, int]] = {}
    for e in ev.evalImgs:
        if e is None or list(e["aRng"]) != list(ev.params.areaRng[0]):
            continue
        scores, tp, ign, n_gt = out.setdefault(e["category_id"], ([], [], [], 0))
        for j, s in enumerate(e["dtScores"][:100]):
            ignored = bool(e["dtIgnore"][t_index, j])
            scores.append(float(s))
            tp.append(bool(e["dtMatches"][t_index, j]) and not ignored)
            ign.append(ignored)
        out[e["category_id"]] = (scores, tp, ign, n_gt + int((np.asarray(e["gtIgnore"]) == 0).sum()))
    return out


def brute_confidence(flags: dict, classes: list[int], grid: list[float], average: str) -> dict:
    """Precision / recall / F1 per class and overall at each threshold, counted one by one."""
    nan = math.nan
    per: dict[str, list[list[float]]] = {"precision": [], "recall": [], "f1": []}
    tps, fps, gts = [], [], []
    for c in classes:
        scores, tp, ign, n_gt = flags.get(c, ([], [], [], 0))
        row_p, row_r, row_f, row_tp, row_fp = [], [], [], [], []
        for thr in grid:
            t = sum(1 for s, a, b in zip(scores, tp, ign, strict=True) if s >= thr and a and not b)
            f = sum(1 for s, a, b in zip(scores, tp, ign, strict=True) if s >= thr and not a and not b)
            row_p.append(t / (t + f) if t + f else nan)
            row_r.append(t / n_gt if n_gt else nan)
            row_f.append(2 * t / (t + f + n_gt) if t + f + n_gt else nan)
            row_tp.append(t)
            row_fp.append(f)
        per["precision"].append(row_p)
        per["recall"].append(row_r)
        per["f1"].append(row_f)
        tps.append(row_tp)
        fps.append(row_fp)
        gts.append(n_gt)
    overall: dict[str, list[float]] = {"precision": [], "recall": [], "f1": []}
    for j in range(len(grid)):
        if average == "micro":
            t, f, g = sum(r[j] for r in tps), sum(r[j] for r in fps), sum(gts)
            overall["precision"].append(t / (t + f) if t + f else nan)
            overall["recall"].append(t / g if g else nan)
            overall["f1"].append(2 * t / (t + f + g) if t + f + g else nan)
        else:
            with_gt = [k for k in range(len(classes)) if gts[k] > 0]
            for name in ("precision", "recall", "f1"):
                vals = [per[name][k][j] for k in with_gt if not math.isnan(per[name][k][j])]
                overall[name].append(sum(vals) / len(vals) if vals else nan)
    f1 = overall["f1"]
    finite = [v for v in f1 if not math.isnan(v)]
    best = max(finite) if finite else nan
    best_c = grid[f1.index(best)] if finite else nan
    return {"per": per, "overall": overall, "best_f1": best, "best_confidence": best_c, "tp": tps, "fp": fps}


def brute_pr(scores: list, tp: list, ign: list, n_gt: int, rec: list[float]) -> list[float]:
    """pycocotools' interpolated precision at the recall points, written out for one class."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep input order
    t = f = 0
    prec, recs = [], []
    for i in order:
        if ign[i]:
            pass
        elif tp[i]:
            t += 1
        else:
            f += 1
        prec.append(t / (t + f + EPS))
        recs.append(t / n_gt)
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    out = []
    for r in rec:
        idx = next((i for i, v in enumerate(recs) if v >= r), None)
        out.append(prec[idx] if idx is not None else 0.0)
    return out


def _assert_same(ours: torch.Tensor, ref: list | np.ndarray, what: str) -> None:
    a, b = ours.cpu().numpy().astype(np.float64), np.asarray(ref, dtype=np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert (np.isnan(a) == np.isnan(b)).all(), f"{what}: NaN pattern differs"
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=1e-12, err_msg=what)


# ----------------------------------------------------------------------------- PR and AP vs pycocotools


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_curves_and_ap_equal_pycocotools(seed: int) -> None:
    images = make_dataset(seed, n_images=12)
    ref = pycocotools_eval(images)
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    for k in range(0, len(preds), 5):
        metric.update(preds[k : k + 5], target[k : k + 5])
    for t_index, thr in ((0, 0.5), (5, 0.75), (9, 0.95)):
        c = metric.curves(iou_threshold=thr)
        assert c.iou_threshold == pytest.approx(thr) and c.classes.tolist() == ref.cat_ids
        ref_prec = ref.precision[t_index, :, :, 0, 2].T  # (K, R) at area all, maxDets 100
        _assert_same(c.pr_precision, ref_prec, f"PR precision at {thr}")
        ref_ap = np.where((ref_prec > -1).all(1), ref_prec.mean(1), -1.0)
        _assert_same(c.ap, ref_ap, f"AP at {thr}")
        assert (ref_ap > 0).any()
        defined = ref_ap > -1
        assert float(c.map) == pytest.approx(ref_ap[defined].mean(), abs=1e-12)
    assert float(metric.curves().map) == pytest.approx(float(ref.stats[1]), abs=1e-12)  # mAP@0.5


def test_classwise_ap_curves_agree_with_its_compute() -> None:
    images = make_dataset(4, n_images=10)
    preds, target = to_torch(images)
    metric = ClasswiseAP(num_classes=4, iou_threshold=0.75, box_format="xywh")
    metric.update(preds, target)
    c = metric.curves()  # its only threshold
    assert c.iou_threshold == 0.75
    values = metric.compute()
    for k, cls in enumerate(c.classes.tolist()):
        assert float(values[f"class_{cls}_AP"]) == pytest.approx(float(c.ap[k]), abs=1e-6)
    ref = pycocotools_eval(images, iou_thresholds=[0.75])
    _assert_same(c.pr_precision, ref.precision[0, :, :, 0, 2].T, "PR precision")


# ----------------------------------------------------------------------------- confidence curves


@pytest.mark.parametrize(("seed", "average"), [(0, "micro"), (2, "macro"), (3, "micro")])
def test_confidence_curves_match_brute_force_on_pycocotools_flags(seed: int, average: str) -> None:
    images = make_dataset(seed, n_images=12)
    flags = pycocotools_flags(images, t_index=0)
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    scores = sorted({s for v in flags.values() for s in v[0]})
    grid = sorted({*scores[::3], *np.linspace(0, 1, 23).tolist()})  # exact score values: ties at >=
    c = metric.curves(0.5, confidence=torch.tensor(grid, dtype=torch.float64), average=average)  # type: ignore[arg-type]
    classes = c.classes.tolist()
    ref = brute_confidence(flags, classes, grid, average)
    np.testing.assert_array_equal(c.tp.numpy(), np.asarray(ref["tp"]))
    np.testing.assert_array_equal(c.fp.numpy(), np.asarray(ref["fp"]))
    for name in ("precision", "recall", "f1"):
        _assert_same(getattr(c, name), ref["per"][name], name)
        _assert_same(getattr(c, f"overall_{name}"), ref["overall"][name], f"overall {name}")
    assert float(c.best_f1) == pytest.approx(ref["best_f1"], abs=1e-12)
    assert float(c.best_confidence) == ref["best_confidence"]
    for k in range(len(classes)):
        row = [v for v in ref["per"]["f1"][k] if not math.isnan(v)]
        if row:
            assert float(c.class_best_f1[k]) == pytest.approx(max(row), abs=1e-12)
            assert float(c.class_best_confidence[k]) == grid[ref["per"]["f1"][k].index(max(row))]


def test_unbounded_scores_get_a_grid_over_their_range() -> None:
    images = make_dataset(6, n_images=8)
    for im in images:
        im.dt_scores = (im.dt_scores - 0.5) * 20  # logits, say
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh")
    metric.update(preds, target)
    c = metric.curves(confidence=50)
    all_scores = torch.cat([p["scores"] for p in preds])
    assert c.confidence[0] == all_scores.min() and c.confidence[-1] == pytest.approx(float(all_scores.max()))
    assert c.confidence.numel() <= 50 and (c.confidence.diff() > 0).all()
    assert set(c.confidence.tolist()) <= set(all_scores.double().tolist())  # order statistics of the scores
    # at the lowest threshold every kept detection that is not ignored (lane 0: bit 0 of byte 0) counts
    not_ignored = (metric._state("macro_ignored")[:, 0] & 1) == 0
    assert int(c.tp[:, 0].sum() + c.fp[:, 0].sum()) == int(not_ignored.sum())
    ref = brute_confidence(pycocotools_flags(images, 0), c.classes.tolist(), c.confidence.tolist(), "micro")
    _assert_same(c.overall_f1, ref["overall"]["f1"], "F1")
    assert confidence_grid(torch.tensor([0.2, 0.7]), 11)[-1] == 1.0
    assert confidence_grid(torch.tensor([3.0, 3.0]), 3).tolist() == [3.0, 3.5, 4.0]
    # a few huge scores do not squeeze the others below the second threshold: the grid follows the ranks
    scores = torch.cat(
        [torch.linspace(-5.0, 5.0, 990, dtype=torch.float64), torch.full((10,), 1e300, dtype=torch.float64)]
    )
    grid = confidence_grid(scores, 11)
    assert grid[0] == -5.0 and grid[-1] == 1e300 and grid.numel() == 11
    assert (grid[:-1] <= 5.0).all()  # 10 of the 11 thresholds among the 990 ordinary scores
    counted = [(scores >= t).sum().item() for t in grid]
    assert counted == sorted(counted, reverse=True) and counted[5] == pytest.approx(500, abs=2)
    assert confidence_grid(torch.tensor([0.5, float("inf"), -2.0]), 3).tolist() == [-2.0, 0.5]


@st.composite
def flag_sets(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(0, 25))
    scores = draw(
        st.lists(st.sampled_from([-1.0, 0.0, 0.2, 0.5, 0.5, 0.9, 1.0, 2.5]), min_size=n, max_size=n)
    )
    labels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    kind = draw(st.lists(st.sampled_from(["tp", "fp", "ign"]), min_size=n, max_size=n))
    # GT counts per class, at least the TPs of the class (one GT row may repeat a class)
    gt_labels, gt_counts = [], []
    for c in range(4):
        need = sum(1 for lab, k in zip(labels, kind, strict=True) if lab == c and k == "tp")
        extra = draw(st.integers(0, 3))
        if need + extra or draw(st.booleans()):
            gt_labels += [c, c]
            gt_counts += [need, extra]
    return scores, labels, kind, gt_labels, gt_counts


@given(data=flag_sets(), average=st.sampled_from(["micro", "macro"]))
def test_functional_curves_match_brute_force(data: tuple, average: str) -> None:
    scores, labels, kind, gt_labels, gt_counts = data
    tp = [k == "tp" for k in kind]
    ign = [k == "ign" for k in kind]
    grid = [-1.0, 0.0, 0.1, 0.2, 0.5, 0.9, 1.0, 3.0]
    c = detection_curves(
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(tp, dtype=torch.bool),
        torch.tensor(ign, dtype=torch.bool),
        torch.tensor(gt_labels, dtype=torch.int64),
        torch.tensor(gt_counts, dtype=torch.int64),
        0.5,
        confidence=torch.tensor(grid, dtype=torch.float64),
        average=average,  # type: ignore[arg-type]
    )
    classes = sorted(set(labels) | set(gt_labels))
    assert c.classes.tolist() == classes
    flags = {}
    for cls in classes:
        idx = [i for i, lab in enumerate(labels) if lab == cls]
        n_gt = sum(n for lab, n in zip(gt_labels, gt_counts, strict=True) if lab == cls)
        flags[cls] = ([scores[i] for i in idx], [tp[i] for i in idx], [ign[i] for i in idx], n_gt)
    ref = brute_confidence(flags, classes, grid, average)
    for name in ("precision", "recall", "f1"):
        _assert_same(getattr(c, name), np.asarray(ref["per"][name]).reshape(-1, len(grid)), name)
        _assert_same(getattr(c, f"overall_{name}"), ref["overall"][name], f"overall {name}")
    if math.isnan(ref["best_f1"]):
        assert math.isnan(float(c.best_f1)) and math.isnan(float(c.best_confidence))
    else:
        assert (
            float(c.best_f1) == pytest.approx(ref["best_f1"])
            and float(c.best_confidence) == ref["best_confidence"]
        )
    rec = c.recall_points.tolist()
    for k, cls in enumerate(classes):
        s, t, i, n_gt = flags[cls]
        if n_gt == 0:
            assert c.ap[k] == -1 and (c.pr_precision[k] == -1).all()
            continue
        want = brute_pr(s, t, i, n_gt, rec)
        _assert_same(c.pr_precision[k], want, f"PR class {cls}")
        assert float(c.ap[k]) == pytest.approx(sum(want) / len(want), abs=1e-12)


def test_errors_and_empty_state() -> None:
    metric = MeanAveragePrecision()
    empty = metric.curves()
    assert empty.classes.numel() == 0 and empty.f1.shape == (0, 1001) and float(empty.map) == -1
    assert math.isnan(float(empty.best_f1))
    with pytest.raises(ValueError, match=r"iou_threshold.*0\.5.*got 0\.42"):
        metric.curves(iou_threshold=0.42)
    with pytest.raises(ValueError, match="average"):
        metric.curves(average="weighted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence"):
        metric.curves(confidence=torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="per-class state"):
        MeanAveragePrecision(average="micro").curves()
    assert MeanAveragePrecision(average="micro", class_metrics=True).curves().classes.numel() == 0


# ----------------------------------------------------------------------------- numpy in, numpy out


_CURVE_SHAPES = {  # field: (dtype kind, dims), K classes, R recall points, S thresholds
    "classes": ("i", "K"),
    "num_gt": ("i", "K"),
    "recall_points": ("f", "R"),
    "pr_precision": ("f", "KR"),
    "ap": ("f", "K"),
    "confidence": ("f", "S"),
    "tp": ("i", "KS"),
    "fp": ("i", "KS"),
    "precision": ("f", "KS"),
    "recall": ("f", "KS"),
    "f1": ("f", "KS"),
    "overall_precision": ("f", "S"),
    "overall_recall": ("f", "S"),
    "overall_f1": ("f", "S"),
    "best_confidence": ("f", ""),
    "best_f1": ("f", ""),
    "class_best_confidence": ("f", "K"),
    "class_best_f1": ("f", "K"),
}


@given(data=flag_sets(), average=st.sampled_from(["micro", "macro"]), steps=st.sampled_from([2, 11, 1001]))
def test_numpy_inputs_give_the_same_curves_as_numpy_arrays(data: tuple, average: str, steps: int) -> None:
    scores, labels, kind, gt_labels, gt_counts = data
    tp = [k == "tp" for k in kind]
    ign = [k == "ign" for k in kind]
    columns = (scores, labels, tp, ign, gt_labels, gt_counts)
    dtypes = (np.float64, np.int64, bool, bool, np.int64, np.int64)
    arrays = [np.asarray(v, dtype=d) for v, d in zip(columns, dtypes, strict=True)]
    tensors = [torch.from_numpy(a) for a in arrays]
    kw = {"confidence": steps, "average": average}
    a = detection_curves(*arrays, 0.5, **kw)  # type: ignore[arg-type]
    t = detection_curves(*tensors, 0.5, **kw)  # type: ignore[arg-type]
    sizes = {"K": len(set(labels) | set(gt_labels)), "R": 101, "S": a.confidence.shape[0]}
    for name, (kind_code, dims) in _CURVE_SHAPES.items():
        x, y = getattr(a, name), getattr(t, name)
        assert isinstance(x, np.ndarray) and isinstance(y, torch.Tensor), name
        assert x.shape == tuple(sizes[d] for d in dims) == tuple(y.shape), name
        assert x.dtype.kind == kind_code and x.dtype.itemsize == 8, (name, x.dtype)
        np.testing.assert_array_equal(x, y.numpy(), err_msg=name)  # the same numbers, NaN included
    assert isinstance(a.map, np.ndarray) and a.map.shape == () and float(a.map) == float(t.map)
    fa, ft = a.fbeta(2.0), t.fbeta(2.0)
    for name in ("fbeta", "overall", "best_confidence", "best_fbeta", "class_best_fbeta"):
        x, y = getattr(fa, name), getattr(ft, name)
        assert isinstance(x, np.ndarray) and isinstance(y, torch.Tensor) and x.shape == tuple(y.shape)
        np.testing.assert_array_equal(x, y.numpy(), err_msg=name)
    grid = confidence_grid(arrays[0], steps)
    assert isinstance(grid, np.ndarray)
    np.testing.assert_array_equal(grid, confidence_grid(tensors[0], steps).numpy())


def test_curves_of_the_metric_are_tensors_of_its_dtype() -> None:
    images = make_dataset(1, n_images=6)
    preds, target = to_torch(images)
    metric = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    metric.update(preds, target)
    c = metric.curves()
    for name, (kind_code, dims) in _CURVE_SHAPES.items():
        value = getattr(c, name)
        assert isinstance(value, torch.Tensor) and value.dim() == len(dims), name
        assert value.dtype == (torch.int64 if kind_code == "i" else torch.float64), name
    assert c.map.dim() == 0 and c.fbeta(0.5).best_fbeta.dim() == 0
    with pytest.raises(ValueError, match="one entry per detection"):
        detection_curves(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(0), np.zeros(0), 0.5)
    with pytest.raises(ValueError, match=r"gt_labels.*gt_counts"):
        detection_curves(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(2), np.zeros(1), 0.5)
    with pytest.raises(ValueError, match="at least 2 steps"):
        detection_curves(
            np.zeros(1), np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1), np.ones(1), 0.5, confidence=1
        )


def test_curves_edge_inputs() -> None:
    one = (np.array([0.9]), np.array([0]), np.array([True]), np.array([True]), np.array([0]), np.array([1]))
    c = detection_curves(*one, 0.5)  # flagged TP and ignored: a TP, never an FP (AP 1, not 1e15)
    assert float(c.ap[0]) == pytest.approx(1.0) and (c.pr_precision <= 1).all()
    # recall points in any order: each read as if alone
    images = make_dataset(0, n_images=6)
    flags = pycocotools_flags(images, 0)
    scores, labels, tp, ign, gl, gc = [], [], [], [], [], []
    for cls, (s, t, i, n_gt) in flags.items():
        scores += s
        labels += [cls] * len(s)
        tp += t
        ign += i
        gl.append(cls)
        gc.append(n_gt)
    arrays = [np.asarray(v) for v in (scores, labels, tp, ign, gl, gc)]
    rec = np.array([1.0, 0.3, 0.0, 0.55])
    mixed = detection_curves(*arrays, 0.5, rec_thresholds=rec)
    ordered = detection_curves(*arrays, 0.5, rec_thresholds=np.sort(rec))
    np.testing.assert_array_equal(mixed.pr_precision, ordered.pr_precision[:, np.argsort(np.argsort(rec))])
    # a numpy integer is a number of steps, as a Python int
    assert detection_curves(*arrays, 0.5, confidence=np.int64(11)).confidence.shape == (11,)
    # the 0..1 grid holds the round values: a score of exactly 0.7 counts at threshold 0.7
    grid = confidence_grid(np.array([0.2, 0.7]), 1001)
    assert grid[700] == 0.7 and grid[521] == 0.521 and grid[-1] == 1.0
    at = detection_curves(np.array([0.7]), np.array([0]), np.array([True]), np.array([False]), [0], [1], 0.5)
    assert at.tp[0, 700] == 1 and at.tp[0, 701] == 0
    # mixed-precision scores (bfloat16, float16) are read as float32
    for dtype in (torch.bfloat16, torch.float16):
        t = detection_curves(torch.tensor([0.9, 0.4], dtype=dtype), torch.tensor([0, 0]),
                             torch.tensor([True, False]), torch.tensor([False, False]),
                             torch.tensor([0]), torch.tensor([1]), 0.5)  # fmt: skip
        assert isinstance(t.ap, torch.Tensor) and float(t.ap[0]) == pytest.approx(1.0)
