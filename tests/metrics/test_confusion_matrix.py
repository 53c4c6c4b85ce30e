"""ConfusionMatrix against a plain per-image greedy reference, and its properties (hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.functional.confusion import confusion_precision_recall_f1, normalize_confusion_matrix
from objdet.training.metrics import ConfusionMatrix
from tests.helpers.coco_reference import make_dataset, to_torch

# ----------------------------------------------------------------------------- reference


def _inter(a: list[float], b: list[float]) -> float:
    """Intersection area of two xyxy boxes (0 unless both sides are positive)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _area(a: list[float]) -> float:
    return (a[2] - a[0]) * (a[3] - a[1])


def reference_matrix(
    preds: list[dict],
    target: list[dict],
    num_classes: int,
    iou_t: float,
    conf_t: float,
    matching: str = "agnostic",
) -> tuple[np.ndarray, int]:
    """DESIGN.md's rules walked literally, image by image. Returns the matrix and the dropped detections.

    ``matching="class_first"``: the sorted list of pairs is walked once over the same-label pairs,
    then once more over all pairs (those touching a taken detection or GT are skipped)."""
    c = num_classes
    m = np.zeros((c + 1, c + 1), dtype=np.int64)
    dropped = 0
    for p, t in zip(preds, target, strict=True):
        d_box, d_score, d_label = p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()
        g_box, g_label = t["boxes"].tolist(), t["labels"].tolist()
        g_crowd = t["iscrowd"].tolist() if "iscrowd" in t else [0] * len(g_box)
        dets = [j for j in range(len(d_box)) if d_score[j] >= conf_t]
        pairs = []
        for j in dets:
            for g in range(len(g_box)):
                if g_crowd[g]:
                    continue
                inter = _inter(d_box[j], g_box[g])
                iou = inter / (_area(d_box[j]) + _area(g_box[g]) - inter) if inter > 0 else 0.0
                if iou >= iou_t:
                    pairs.append((-iou, -d_score[j], j, g))
        pairs.sort()
        det_match: dict[int, int] = {}
        gt_used: set[int] = set()
        walks = [pairs]
        if matching == "class_first":
            walks = [[q for q in pairs if d_label[q[2]] == g_label[q[3]]], pairs]
        for walk in walks:
            for _, _, j, g in walk:
                if j not in det_match and g not in gt_used:
                    det_match[j] = g
                    gt_used.add(g)
        for j in dets:
            if j in det_match:
                m[g_label[det_match[j]], d_label[j]] += 1
                continue
            covered = any(
                g_crowd[g] and _area(d_box[j]) > 0 and _inter(d_box[j], g_box[g]) / _area(d_box[j]) >= iou_t
                for g in range(len(g_box))
            )
            if covered:
                dropped += 1
            else:
                m[c, d_label[j]] += 1
        for g in range(len(g_box)):
            if not g_crowd[g] and g not in gt_used:
                m[g_label[g], c] += 1
    return m, dropped


# ----------------------------------------------------------------------------- data

C = 3


@st.composite
def images(draw: st.DrawFn, max_images: int = 4, unique_scores: bool = False) -> tuple[list, list]:
    """Small integer-grid images: many exact IoU ties, score ties, crowds, degenerate boxes."""
    n_images = draw(st.integers(1, max_images))
    preds, target = [], []
    for _ in range(n_images):

        def fresh() -> list[float]:
            x, y = draw(st.integers(0, 12)), draw(st.integers(0, 12))
            w, h = draw(st.integers(0, 8)), draw(st.integers(0, 8))
            return [float(x), float(y), float(x + w), float(y + h)]

        pool = [fresh() for _ in range(2)]

        def box(pool: list[list[float]] = pool) -> list[float]:
            i = draw(st.integers(0, 3))  # often a copy of a pool box: exact IoU ties between pairs
            return pool[i] if i < len(pool) else fresh()

        n, k = draw(st.integers(0, 6)), draw(st.integers(0, 5))
        d_boxes = [box() for _ in range(n)]
        if unique_scores:
            scores = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
            score_values = [s / 10**6 for s in scores]
        else:
            score_values = draw(st.lists(st.sampled_from([-0.5, 0.1, 0.3, 0.5, 0.9]), min_size=n, max_size=n))
        preds.append(
            {
                "boxes": torch.tensor(d_boxes, dtype=torch.float64).reshape(-1, 4),
                "scores": torch.tensor(score_values, dtype=torch.float64),
                "labels": torch.tensor(
                    draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n)), dtype=torch.int64
                ),
            }
        )
        target.append(
            {
                "boxes": torch.tensor([box() for _ in range(k)], dtype=torch.float64).reshape(-1, 4),
                "labels": torch.tensor(
                    draw(st.lists(st.integers(0, C - 1), min_size=k, max_size=k)), dtype=torch.int64
                ),
                "iscrowd": torch.tensor(
                    draw(st.lists(st.sampled_from([0, 0, 0, 1]), min_size=k, max_size=k)), dtype=torch.int64
                ),
            }
        )
    return preds, target


thresholds = st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.75, 1.0]), st.sampled_from([-1.0, 0.0, 0.3, 0.6]))
modes = st.sampled_from(["agnostic", "class_first"])


def _matrix(preds: list, target: list, iou_t: float, conf_t: float, **kwargs: object) -> torch.Tensor:
    metric = ConfusionMatrix(num_classes=C, iou_threshold=iou_t, conf_threshold=conf_t, **kwargs)  # type: ignore[arg-type]
    metric.update(preds, target)
    return metric.compute()


# ----------------------------------------------------------------------------- reference equality


@given(data=images(), thr=thresholds, matching=modes)
def test_matches_brute_force(data: tuple[list, list], thr: tuple[float, float], matching: str) -> None:
    preds, target = data
    ref, _ = reference_matrix(preds, target, C, *thr, matching=matching)
    out = _matrix(preds, target, *thr, matching=matching)
    assert out.dtype == torch.int64 and out.shape == (C + 1, C + 1)
    np.testing.assert_array_equal(out.numpy(), ref)


@pytest.mark.parametrize("seed", range(4))
def test_generated_coco_data_matches_brute_force(seed: int) -> None:
    # float boxes, crowds, zero-size boxes, > 100 detections in one image
    preds, target = to_torch(make_dataset(seed, n_images=10), "xyxy")
    for iou_t, conf_t, matching in [
        (0.5, 0.25, "agnostic"),
        (0.3, 0.0, "agnostic"),
        (0.3, 0.0, "class_first"),
    ]:
        ref, dropped = reference_matrix(preds, target, 4, iou_t, conf_t, matching)
        metric = ConfusionMatrix(num_classes=4, iou_threshold=iou_t, conf_threshold=conf_t, matching=matching)
        for k in range(0, 10, 3):
            metric.update(preds[k : k + 3], target[k : k + 3])
        np.testing.assert_array_equal(metric.compute().numpy(), ref)
        assert ref[:4, :4].trace() > 0 and ref[4].sum() > 0 and ref[:, 4].sum() > 0, "non-trivial data"
        assert dropped > 0, "the data should exercise the crowd rule"


# ----------------------------------------------------------------------------- properties


@given(data=images(), thr=thresholds, matching=modes)
def test_row_and_column_sums(data: tuple[list, list], thr: tuple[float, float], matching: str) -> None:
    preds, target = data
    iou_t, conf_t = thr
    out = _matrix(preds, target, iou_t, conf_t, matching=matching).numpy()
    _, dropped = reference_matrix(preds, target, C, iou_t, conf_t, matching)
    gt_labels = torch.cat([t["labels"][t["iscrowd"] == 0] for t in target])
    counted = torch.cat([p["labels"][p["scores"] >= conf_t] for p in preds])
    np.testing.assert_array_equal(out[:C].sum(1), np.bincount(gt_labels.numpy(), minlength=C))
    assert out[:, :C].sum() == counted.numel() - dropped
    if dropped == 0:
        np.testing.assert_array_equal(out[:, :C].sum(0), np.bincount(counted.numpy(), minlength=C))
    assert out[C, C] == 0


@given(data=images(unique_scores=True), thr=thresholds, perm_seed=st.integers(0, 2**16), matching=modes)
def test_detection_permutation_invariance(
    data: tuple[list, list], thr: tuple[float, float], perm_seed: int, matching: str
) -> None:
    # with distinct scores no tie is decided by the detection index
    preds, target = data
    g = torch.Generator().manual_seed(perm_seed)
    shuffled = []
    for p in preds:
        order = torch.randperm(p["scores"].numel(), generator=g)
        shuffled.append({k: v[order] for k, v in p.items()})
    assert torch.equal(
        _matrix(preds, target, *thr, matching=matching), _matrix(shuffled, target, *thr, matching=matching)
    )


@given(seed=st.integers(0, 2**32 - 1))
def test_ground_truth_permutation_invariance(seed: int) -> None:
    # continuous random boxes: no two pairs share an IoU, so no tie is decided by the GT index
    rng = np.random.default_rng(seed)
    preds, target, shuffled = [], [], []
    for _ in range(3):
        n, k = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        gxy = rng.uniform(0, 30, (k, 2))
        gt = np.concatenate([gxy, gxy + rng.uniform(2, 12, (k, 2))], 1)
        src = rng.integers(0, max(k, 1), n)
        dxy = (gt[src, :2] if k else rng.uniform(0, 30, (n, 2))) + rng.normal(0, 1.5, (n, 2))
        dt = np.concatenate([dxy, dxy + rng.uniform(2, 12, (n, 2))], 1)
        p = {
            "boxes": torch.tensor(dt),
            "scores": torch.tensor(rng.choice([0.3, 0.6, 0.9], n)),  # ties in score are fine here
            "labels": torch.tensor(rng.integers(0, C, n)),
        }
        t = {
            "boxes": torch.tensor(gt),
            "labels": torch.tensor(rng.integers(0, C, k)),
            "iscrowd": torch.tensor((rng.random(k) < 0.2).astype(np.int64)),
        }
        order = torch.tensor(rng.permutation(k), dtype=torch.int64)
        preds.append(p)
        target.append(t)
        shuffled.append({key: v[order] for key, v in t.items()})
    for thr in [(0.3, 0.0), (0.5, 0.5)]:
        assert torch.equal(_matrix(preds, target, *thr), _matrix(preds, shuffled, *thr))


@given(data=images(max_images=6), thr=thresholds, cuts=st.lists(st.integers(0, 6), max_size=3))
def test_batch_split_invariance(data: tuple[list, list], thr: tuple[float, float], cuts: list[int]) -> None:
    preds, target = data
    whole = _matrix(preds, target, *thr)
    metric = ConfusionMatrix(num_classes=C, iou_threshold=thr[0], conf_threshold=thr[1])
    for lo, hi in itertools.pairwise(sorted({0, len(preds), *(min(c, len(preds)) for c in cuts)})):
        metric.update(preds[lo:hi], target[lo:hi])
    assert torch.equal(metric.compute(), whole)


@given(data=images(), iou_t=st.sampled_from([0.1, 0.5, 1.0]))
def test_perfect_predictions_give_a_diagonal(data: tuple[list, list], iou_t: float) -> None:
    _, target = data
    preds = []
    for t in target:
        boxes = t["boxes"].clone()
        boxes[:, 2:] = boxes[:, :2] + (boxes[:, 2:] - boxes[:, :2]).clamp(min=1)  # positive sizes
        boxes += t["labels"][:, None] * 100.0  # boxes of different classes never overlap
        t["boxes"] = boxes
        preds.append(
            {"boxes": boxes.clone(), "scores": torch.rand(len(boxes)) * 0.5 + 0.5, "labels": t["labels"]}
        )
    out = _matrix(preds, target, iou_t, 0.5).numpy()
    # crowd GTs are not counted; the detections on them are dropped by the crowd rule
    n_gt = np.bincount(torch.cat([t["labels"][t["iscrowd"] == 0] for t in target]).numpy(), minlength=C)
    expected = np.zeros((C + 1, C + 1), dtype=np.int64)
    expected[np.arange(C), np.arange(C)] = n_gt
    np.testing.assert_array_equal(out, expected)


# ----------------------------------------------------------------------------- rules by hand


def _one_image(
    dets: list, scores: list, d_labels: list, gts: list, g_labels: list, crowd: list | None = None
):
    p = {
        "boxes": torch.tensor(dets, dtype=torch.float64).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float64),
        "labels": torch.tensor(d_labels, dtype=torch.int64),
    }
    t = {
        "boxes": torch.tensor(gts, dtype=torch.float64).reshape(-1, 4),
        "labels": torch.tensor(g_labels, dtype=torch.int64),
    }
    if crowd is not None:
        t["iscrowd"] = torch.tensor(crowd)
    return [p], [t]


def test_greedy_by_iou_not_by_score() -> None:
    # det 0 (label 0, score 0.9) has IoU 0.6 with the GT; det 1 (label 1, score 0.4) IoU 0.9: det 1 wins
    preds, target = _one_image([[0, 0, 10, 6], [0, 0, 10, 9]], [0.9, 0.4], [0, 1], [[0, 0, 10, 10]], [1])
    out = _matrix(preds, target, 0.5, 0.0)
    assert out[1, 1] == 1 and out[C, 0] == 1 and out.sum() == 2


def test_ties_higher_score_then_lower_indices() -> None:
    box = [0, 0, 10, 10]
    # equal IoU, the higher score takes the GT
    out = _matrix(*_one_image([box, box], [0.4, 0.8], [0, 1], [box], [2]), 0.5, 0.0)
    assert out[2, 1] == 1 and out[C, 0] == 1
    # equal IoU and score: the lower detection index
    out = _matrix(*_one_image([box, box], [0.5, 0.5], [0, 1], [box], [2]), 0.5, 0.0)
    assert out[2, 0] == 1 and out[C, 1] == 1
    # one detection, two equal GTs: the lower GT index
    out = _matrix(*_one_image([box], [0.5], [0], [box, box], [1, 2]), 0.5, 0.0)
    assert out[1, 0] == 1 and out[2, C] == 1


def test_class_first_differs_from_agnostic() -> None:
    # det 0 (class 0) overlaps the class-1 GT more (IoU 0.9) than the class-0 GT (IoU 0.67)
    # det 1 (class 1) overlaps only the class-1 GT (IoU 0.6; 0.2 with the other)
    gts = [[0, 0, 10, 10], [0, 0, 10, 6]]  # class 1, class 0
    dets = [[0, 0, 10, 9], [0, 4, 10, 10]]
    preds, target = _one_image(dets, [0.9, 0.8], [0, 1], gts, [1, 0])
    agnostic = _matrix(preds, target, 0.5, 0.0).numpy()
    class_first = _matrix(preds, target, 0.5, 0.0, matching="class_first").numpy()
    expected_agnostic = np.zeros((C + 1, C + 1), dtype=np.int64)
    expected_agnostic[1, 0] = 1  # det 0 takes the class-1 GT (a confusion)
    expected_agnostic[C, 1] = 1  # det 1 is left without a GT (its only candidate is taken)
    expected_agnostic[0, C] = 1  # the class-0 GT is missed
    expected_class_first = np.zeros((C + 1, C + 1), dtype=np.int64)
    expected_class_first[0, 0] = 1  # det 0 takes the GT of its own class
    expected_class_first[1, 1] = 1  # det 1 takes the class-1 GT
    np.testing.assert_array_equal(agnostic, expected_agnostic)
    np.testing.assert_array_equal(class_first, expected_class_first)
    # leftovers are still matched across classes: one class-2 detection on the class-1 GT
    preds, target = _one_image([[0, 0, 10, 10]], [0.9], [2], [[0, 0, 10, 10]], [1])
    assert _matrix(preds, target, 0.5, 0.0, matching="class_first")[1, 2] == 1


def test_crowd_rule() -> None:
    crowd = [0, 0, 40, 40]
    # inside the crowd region: dropped; outside: a false positive; crowd GT itself: not counted
    preds, target = _one_image(
        [[5, 5, 10, 10], [100, 100, 110, 110]], [0.9, 0.9], [0, 1], [crowd], [0], crowd=[1]
    )
    out = _matrix(preds, target, 0.5, 0.0)
    assert out[C, 1] == 1 and out.sum() == 1
    # a detection matching a real GT is not dropped even if a crowd covers it
    preds, target = _one_image([[5, 5, 10, 10]], [0.9], [0], [crowd, [5, 5, 10, 10]], [0, 2], crowd=[1, 0])
    out = _matrix(preds, target, 0.5, 0.0)
    assert out[2, 0] == 1 and out.sum() == 1


def test_conf_threshold_filters_before_matching() -> None:
    box = [0, 0, 10, 10]
    # the low-score exact box does not take the GT from the counted one
    preds, target = _one_image([box, [0, 0, 10, 8]], [0.1, 0.9], [0, 1], [box], [0])
    out = _matrix(preds, target, 0.5, 0.25)
    assert out[0, 1] == 1 and out.sum() == 1


def test_box_formats_and_empty_inputs() -> None:
    preds, target = _one_image([[0, 0, 10, 10]], [0.9], [1], [[1, 0, 10, 10]], [1])
    xywh_p = [{**preds[0], "boxes": torch.tensor([[0.0, 0, 10, 10]])}]
    xywh_t = [{**target[0], "boxes": torch.tensor([[1.0, 0, 9, 10]])}]
    assert torch.equal(_matrix(preds, target, 0.5, 0.0), _matrix(xywh_p, xywh_t, 0.5, 0.0, box_format="xywh"))
    empty = ConfusionMatrix(num_classes=2)
    assert torch.equal(empty.compute(), torch.zeros(3, 3, dtype=torch.int64))
    empty.update([], [])
    empty.update(
        [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}],
        [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}],
    )
    assert empty.compute().sum() == 0


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(num_classes=0)
    with pytest.raises(ValueError, match="iou_threshold"):
        ConfusionMatrix(iou_threshold=0.0)
    with pytest.raises(ValueError, match="conf_threshold"):
        ConfusionMatrix(conf_threshold=float("nan"))
    with pytest.raises(ValueError, match="class_names"):
        ConfusionMatrix(num_classes=2, class_names=["a"])
    with pytest.raises(ValueError, match=r"`matching`.*'per_class'"):
        ConfusionMatrix(matching="per_class")  # type: ignore[arg-type]
    metric = ConfusionMatrix(num_classes=2)
    preds, target = _one_image([[0, 0, 10, 10]], [0.9], [2], [[0, 0, 10, 10]], [1])
    with pytest.raises(ValueError, match=r"preds\[0\]\['labels'\].*\[0, 1\].*2"):
        metric.update(preds, target)
    with pytest.raises(ValueError, match="scores"):
        metric.update([{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1, dtype=torch.long)}], target)


# ----------------------------------------------------------------------------- derived values


@given(data=images(), thr=thresholds)
def test_derived_precision_recall_f1_and_normalisation(
    data: tuple[list, list], thr: tuple[float, float]
) -> None:
    preds, target = data
    metric = ConfusionMatrix(num_classes=C, iou_threshold=thr[0], conf_threshold=thr[1])
    metric.update(preds, target)
    m = metric.compute().tolist()
    derived = metric.per_class_metrics()
    for k in range(C):
        tp = m[k][k]
        n_pred = sum(m[i][k] for i in range(C + 1))
        n_true = sum(m[k][j] for j in range(C + 1))
        p = tp / n_pred if n_pred else math.nan
        r = tp / n_true if n_true else math.nan
        f1 = (
            2 * p * r / (p + r)
            if n_pred and n_true and p + r > 0
            else (0.0 if n_pred or n_true else math.nan)
        )
        for name, want in (("precision", p), ("recall", r), ("f1", f1)):
            got = derived[name][k].item()
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12), (name, k)
    for mode, axis in (("true", 1), ("pred", 0)):
        norm = metric.normalized(mode).numpy()
        sums = norm.sum(axis)
        raw = np.asarray(m).sum(axis)
        np.testing.assert_allclose(sums[raw > 0], 1.0, atol=1e-12)
        assert (sums[raw == 0] == 0).all()
    total = np.asarray(m).sum()
    np.testing.assert_allclose(metric.normalized("all").numpy(), np.asarray(m) / total if total else 0.0)
    with pytest.raises(ValueError, match="normalize"):
        normalize_confusion_matrix(metric.compute(), "rows")  # type: ignore[arg-type]
    assert confusion_precision_recall_f1(metric.compute())["f1"].shape == (C,)


@pytest.mark.cuda
@pytest.mark.parametrize("matching", ["agnostic", "class_first"])
def test_cuda_matches_cpu(matching: str) -> None:
    preds, target = to_torch(make_dataset(5, n_images=10), "xyxy")
    cpu = ConfusionMatrix(num_classes=4, matching=matching)  # type: ignore[arg-type]
    cpu.update(preds, target)
    dev = torch.device("cuda")
    gpu = ConfusionMatrix(num_classes=4, matching=matching).to(dev)  # type: ignore[arg-type]
    move = lambda xs: [{k: v.to(dev) for k, v in x.items()} for x in xs]  # noqa: E731
    gpu.update(move(preds), move(target))
    out = gpu.compute()
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), cpu.compute())


# ----------------------------------------------------------------------------- image ids
@pytest.mark.parametrize("matching", ["agnostic", "class_first"])
def test_image_ids_count_copies_once(matching: str) -> None:
    """A sampler's padded copies (same id) count once; any order gives the brute-force matrix."""
    preds, target = to_torch(make_dataset(6, n_images=9), "xyxy")
    target = [{**t, "image_id": 100 - i} for i, t in enumerate(target)]
    ref, _ = reference_matrix(preds, target, 4, 0.5, 0.25, matching)
    metric = ConfusionMatrix(num_classes=4, matching=matching)
    seen = [4, 0, 8, 2, 6, 1, 3, 5, 7, 0, 1, 4]  # images 0, 1 and 4 twice
    for k in range(0, len(seen), 5):
        part = seen[k : k + 5]
        metric.update([preds[i] for i in part], [target[i] for i in part])
    np.testing.assert_array_equal(metric.compute().numpy(), ref)
    plain = ConfusionMatrix(num_classes=4, matching=matching)
    plain.update(
        [preds[i] for i in seen], [{k: v for k, v in target[i].items() if k != "image_id"} for i in seen]
    )
    assert (plain.compute().numpy() != ref).any(), "without ids the copies count again"


def test_image_ids_in_some_batches_only_are_an_error() -> None:
    preds, target = to_torch(make_dataset(6, n_images=3), "xyxy")
    metric = ConfusionMatrix(num_classes=4)
    metric.update(preds[:1], [{**target[0], "image_id": 0}])
    with pytest.raises(ValueError, match="`image_id` must be given in every target dict or in none"):
        metric.update(preds[1:], target[1:])


@given(st.lists(st.lists(st.integers(0, 9), min_size=4, max_size=4), min_size=4, max_size=4))
def test_normalisation_of_numpy_arrays_equals_that_of_tensors(rows: list[list[int]]) -> None:
    m = np.asarray(rows)
    for normalize in (None, "true", "pred", "all"):
        from_numpy = normalize_confusion_matrix(m, normalize)  # type: ignore[arg-type]
        from_tensor = normalize_confusion_matrix(torch.from_numpy(m), normalize)  # type: ignore[arg-type]
        assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float64
        np.testing.assert_array_equal(from_numpy, from_tensor.numpy())
        np.testing.assert_array_equal(normalize_confusion_matrix(rows, normalize), from_numpy)  # type: ignore[arg-type]
    by_row = normalize_confusion_matrix(m, "true")
    sums = m.sum(1)
    np.testing.assert_allclose(by_row.sum(1), (sums > 0).astype(float))  # rows of 1, or 0 where empty
    with pytest.raises(ValueError, match="normalize"):
        normalize_confusion_matrix(m, "rows")  # type: ignore[arg-type]
