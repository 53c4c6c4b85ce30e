"""Calibration (ECE, MCE, reliability bins) against a plain reference written here, and its properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.functional.calibration import coco_state_calibration, detection_calibration
from objdet.ops.coco import pack_lanes

FIELDS = ("count", "confidence", "accuracy", "lower", "upper", "class_count", "class_confidence")


# ----------------------------------------------------------------------------- the reference
def reference(
    scores: list[float],
    tp: list[bool],
    labels: list[int] | None = None,
    ignored: list[bool] | None = None,
    bins: int = 10,
    strategy: str = "width",
) -> dict:
    """Bins, ECE and MCE counted detection by detection, overall and per class."""
    n_all = len(scores)
    labels = labels if labels is not None else [0] * n_all
    ignored = ignored if ignored is not None else [False] * n_all
    kept = [(s, t, c) for s, t, c, ig in zip(scores, tp, labels, ignored, strict=True) if not ig]

    def bin_of(s: float, group_scores: list[float]) -> int:
        if strategy == "width":
            for b in range(bins):
                if b / bins <= s < (b + 1) / bins:
                    return b
            return bins - 1  # s == 1: the last bin is closed
        below = sum(1 for v in group_scores if v < s)
        return (bins * below) // len(group_scores)

    def summarise(dets: list[tuple[float, bool, int]]) -> dict:
        group_scores = [s for s, _, _ in dets]
        members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
        for s, t, _ in dets:
            members[bin_of(s, group_scores)].append((s, t))
        count = [len(m) for m in members]
        conf = [sum(s for s, _ in m) / len(m) if m else math.nan for m in members]
        acc = [sum(1 for _, t in m if t) / len(m) if m else math.nan for m in members]
        lower = [min(s for s, _ in m) if m else math.nan for m in members]
        upper = [max(s for s, _ in m) if m else math.nan for m in members]
        n = len(dets)
        gaps = [abs(a - c) for a, c, k in zip(acc, conf, count, strict=True) if k]
        ece = (
            sum(k / n * abs(a - c) for a, c, k in zip(acc, conf, count, strict=True) if k) if n else math.nan
        )
        mce = max(gaps) if gaps else math.nan
        return {"count": count, "confidence": conf, "accuracy": acc, "lower": lower, "upper": upper,
                "ece": ece, "mce": mce}  # fmt: skip

    out = summarise(kept)
    if strategy == "width":
        out["lower"] = [b / bins for b in range(bins)]
        out["upper"] = [(b + 1) / bins for b in range(bins)]
    classes = sorted({c for _, _, c in kept})
    per = [summarise([d for d in kept if d[2] == c]) for c in classes]
    out["classes"] = classes
    for key in ("count", "confidence", "accuracy", "ece", "mce"):
        out[f"class_{key}"] = [p[key] for p in per]
    return out


def assert_matches(got, ref: dict) -> None:
    def arr(v):
        return v.cpu().numpy() if hasattr(v, "cpu") else np.asarray(v)

    assert arr(got.classes).tolist() == ref["classes"]
    np.testing.assert_array_equal(arr(got.count), ref["count"])
    np.testing.assert_array_equal(
        arr(got.class_count).reshape(-1, got.n_bins), np.reshape(ref["class_count"], (-1, got.n_bins))
    )
    for key in ("confidence", "accuracy", "lower", "upper", "ece", "mce", "class_confidence",
                "class_accuracy", "class_ece", "class_mce"):  # fmt: skip
        expected = np.asarray(ref[key], dtype=np.float64)
        np.testing.assert_allclose(
            arr(getattr(got, key)).reshape(expected.shape), expected, rtol=1e-12, atol=1e-12, err_msg=key
        )


def random_detections(seed: int, n: int, ties: bool) -> tuple[list[float], list[bool], list[int], list[bool]]:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    if ties:  # on the bin edges, repeated values, 0 and 1
        scores = np.where(rng.random(n) < 0.5, np.round(scores, 1), scores)
    tp = rng.random(n) < scores
    labels = rng.integers(0, 4, n) * 3 + 1
    ignored = rng.random(n) < 0.1
    return scores.tolist(), tp.tolist(), labels.tolist(), ignored.tolist()


# ----------------------------------------------------------------------------- against the reference
@pytest.mark.parametrize("strategy", ["width", "mass"])
@pytest.mark.parametrize("bins", [1, 3, 10, 15])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_reference(strategy: str, bins: int, seed: int) -> None:
    scores, tp, labels, ignored = random_detections(seed, 40 + 37 * seed, ties=seed != 1)
    ref = reference(scores, tp, labels, ignored, bins, strategy)
    got_np = detection_calibration(
        np.array(scores),
        np.array(tp),
        np.array(labels),
        np.array(ignored),
        bins=bins,
        strategy=strategy,  # type: ignore[arg-type]
    )
    assert_matches(got_np, ref)
    s64 = torch.tensor(scores, dtype=torch.float64)  # (torch.tensor of floats would be float32)
    got_t = detection_calibration(
        s64,
        torch.tensor(tp),
        torch.tensor(labels),
        torch.tensor(ignored),
        bins=bins,
        strategy=strategy,  # type: ignore[arg-type]
    )
    assert_matches(got_t, ref)
    assert got_t.n_detections == got_np.n_detections == sum(1 for i in ignored if not i)
    assert isinstance(got_t.ece, torch.Tensor) and got_t.ece.dtype == torch.float64


def test_the_docstring_numbers_by_hand() -> None:
    # bins [0, .5), [.5, 1]: {0.15 FP, 0.1 TP} conf .125 acc .5; {0.95, 0.9 TP} conf .925 acc 1
    c = detection_calibration(np.array([0.95, 0.9, 0.15, 0.1]), np.array([True, True, False, True]), bins=2)
    assert c.count.tolist() == [2, 2]
    assert float(c.ece) == pytest.approx((2 * 0.375 + 2 * 0.075) / 4)
    assert float(c.mce) == pytest.approx(0.375)


def test_edges_zero_and_one() -> None:
    c = detection_calibration(np.array([0.0, 0.1, 0.5, 1.0]), np.ones(4, dtype=bool), bins=10)
    assert c.count.tolist() == [1, 1, 0, 0, 0, 1, 0, 0, 0, 1]  # 0.1 opens bin 1, 1.0 closes bin 9


def test_mass_bins_keep_ties_together() -> None:
    scores = np.array([0.9] * 6 + [0.2, 0.3, 0.4, 0.5])
    c = detection_calibration(scores, np.arange(10) % 2 == 0, bins=5, strategy="mass")
    assert c.count.tolist() == [2, 2, 6, 0, 0]  # the six 0.9s share one bin
    assert c.lower.tolist()[:3] == [0.2, 0.4, 0.9]


def test_no_detection_gives_nan() -> None:
    for strategy in ("width", "mass"):
        c = detection_calibration(np.zeros(0), np.zeros(0, dtype=bool), bins=4, strategy=strategy)  # type: ignore[arg-type]
        assert math.isnan(float(c.ece)) and math.isnan(float(c.mce)) and c.count.tolist() == [0] * 4
        assert c.classes.size == 0 and c.class_ece.shape == (0,)
    only_ignored = detection_calibration(
        torch.tensor([0.5]), torch.tensor([False]), ignored=torch.tensor([True])
    )
    assert only_ignored.n_detections == 0 and torch.isnan(only_ignored.ece)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([0.2, 1.5], r"range over \[0.2, 1.5\]"), ([-3.0, 0.5], r"\[-3, 0.5\]"), ([0.5, math.nan], "nan")],
)
def test_scores_outside_0_1_are_an_error_naming_their_range(scores: list[float], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        detection_calibration(torch.tensor(scores), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="never applies a sigmoid"):
        detection_calibration(np.array(scores), np.array([True, False]))


def test_ignored_logits_do_not_count() -> None:
    c = detection_calibration(np.array([0.5, 7.0]), np.array([True, False]), ignored=np.array([False, True]))
    assert c.n_detections == 1 and float(c.ece) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"bins": 0}, "`bins` must be a positive int"),
        ({"bins": 2.5}, "`bins` must be a positive int"),
        ({"bins": True}, "`bins` must be a positive int"),
        ({"strategy": "quantile"}, "`strategy` must be 'width' or 'mass'"),
        ({"labels": np.zeros(3)}, r"`labels` must have shape \(2,\)"),
        ({"tp": np.zeros((2, 1))}, r"`tp` must have shape \(2,\)"),
        ({"scores": np.zeros((2, 2))}, "`scores` must be 1-D"),
        ({"scores": [0.1, 0.2]}, "`scores` must be a numpy array or a torch tensor, got list"),
    ],
)
def test_bad_arguments(kwargs: dict, expected: str) -> None:
    args = {"scores": np.array([0.1, 0.2]), "tp": np.array([True, False]), **kwargs}
    with pytest.raises((ValueError, TypeError), match=expected):
        detection_calibration(**args)


def test_state_lanes_are_read_at_the_iou_threshold() -> None:
    scores = torch.tensor([0.9, 0.8, 0.3])
    tp = torch.tensor([[True, True, False], [True, False, False]])  # lanes: (t=0.5, all), (t=0.75, all)
    ignored = torch.tensor([[False, False, True], [False, False, True]])
    packed_tp, packed_ig = pack_lanes(tp), pack_lanes(ignored)
    labels = torch.zeros(3, dtype=torch.int32)
    at_50 = coco_state_calibration(scores, labels, packed_tp, packed_ig, 1, [0.5, 0.75])
    at_75 = coco_state_calibration(scores, labels, packed_tp, packed_ig, 1, [0.5, 0.75], 0.75, bins=1)
    assert at_50.iou_threshold == 0.5 and at_50.n_detections == 2
    assert float(at_50.ece) == pytest.approx((0.1 + 0.2) / 2)  # bins 9 and 8, both TPs
    assert at_75.iou_threshold == 0.75 and float(at_75.accuracy[0]) == 0.5
    with pytest.raises(ValueError, match="must be one of the metric's iou_thresholds"):
        coco_state_calibration(scores, labels, packed_tp, packed_ig, 1, [0.5, 0.75], 0.6)
    numpy = coco_state_calibration(
        scores.numpy(), labels.numpy(), packed_tp.numpy(), packed_ig.numpy(), 1, [0.5, 0.75]
    )
    assert float(numpy.ece) == float(at_50.ece)


# ----------------------------------------------------------------------------- properties
@st.composite
def detections(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 60))
    grid = draw(st.booleans())  # values on a coarse grid: ties and bin edges
    unit = st.integers(0, 20).map(lambda k: k / 20) if grid else st.floats(0.0, 1.0)
    scores = np.array(draw(st.lists(unit, min_size=n, max_size=n)), dtype=np.float64)
    tp = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    labels = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=np.int64)
    ignored = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool) & (
        draw(st.floats(0, 1)) < 0.3
    )
    return scores, tp, labels, ignored


@given(
    data=detections(),
    bins=st.integers(1, 12),
    strategy=st.sampled_from(["width", "mass"]),
    seed=st.integers(0, 99),
)
def test_bounds_and_permutation_invariance(data: tuple, bins: int, strategy: str, seed: int) -> None:
    scores, tp, labels, ignored = data
    c = detection_calibration(scores, tp, labels, ignored, bins=bins, strategy=strategy)  # type: ignore[arg-type]
    n = int((~ignored).sum())
    assert c.n_detections == n and int(c.count.sum()) == n
    if n:
        assert 0.0 <= float(c.ece) <= float(c.mce) + 1e-12 <= 1.0 + 1e-12
        assert np.all((c.class_ece >= 0) & (c.class_ece <= c.class_mce + 1e-12) & (c.class_mce <= 1.0))
    perm = np.random.default_rng(seed).permutation(scores.size)
    p = detection_calibration(
        scores[perm], tp[perm], labels[perm], ignored[perm], bins=bins, strategy=strategy
    )  # type: ignore[arg-type]
    np.testing.assert_array_equal(p.count, c.count)
    np.testing.assert_array_equal(p.class_count, c.class_count)
    for key in ("confidence", "accuracy", "lower", "upper", "ece", "mce", "class_ece", "class_mce"):
        np.testing.assert_allclose(getattr(p, key), getattr(c, key), rtol=1e-12, atol=1e-12, err_msg=key)


@given(data=detections(), bins=st.integers(1, 12), strategy=st.sampled_from(["width", "mass"]))
def test_a_class_alone_gives_its_class_numbers(data: tuple, bins: int, strategy: str) -> None:
    scores, tp, labels, ignored = data
    c = detection_calibration(scores, tp, labels, ignored, bins=bins, strategy=strategy)  # type: ignore[arg-type]
    for k, label in enumerate(c.classes.tolist()):
        mine = (labels == label) & ~ignored
        alone = detection_calibration(scores[mine], tp[mine], bins=bins, strategy=strategy)  # type: ignore[arg-type]
        np.testing.assert_array_equal(alone.count, c.class_count[k])
        assert float(alone.ece) == pytest.approx(float(c.class_ece[k]), abs=1e-12)
        assert float(alone.mce) == pytest.approx(float(c.class_mce[k]), abs=1e-12)


@given(
    levels=st.lists(
        st.tuples(st.integers(0, 8), st.integers(1, 5)), min_size=1, max_size=9, unique_by=lambda x: x[0]
    ),
    strategy=st.sampled_from(["width", "mass"]),
)
def test_perfectly_calibrated_detections_give_zero(levels: list[tuple[int, int]], strategy: str) -> None:
    # at each level p = j / 8 (a bin of its own with 9 equal-width bins: j / 8 is in [j / 9, (j + 1) / 9)),
    # 8 * m detections of which exactly 8 * m * p are TPs: accuracy = confidence in every bin
    scores, tp = [], []
    for j, m in levels:
        scores += [j / 8] * (8 * m)
        tp += [True] * (j * m) + [False] * ((8 - j) * m)
    bins = 9 if strategy == "width" else len(levels)
    c = detection_calibration(np.array(scores), np.array(tp), bins=bins, strategy=strategy)  # type: ignore[arg-type]
    assert float(c.ece) == 0.0 and float(c.mce) == 0.0
    if strategy == "width":  # one level per bin (equal-mass bins may pool levels: still calibrated)
        assert np.isin(c.confidence[c.count > 0], [j / 8 for j, _ in levels]).all()


def test_constant_score_of_a_detector_right_half_the_time() -> None:
    c = detection_calibration(np.full(10, 0.9), np.arange(10) < 5, bins=10)
    assert float(c.ece) == pytest.approx(0.4) and float(c.mce) == pytest.approx(0.4)


@pytest.mark.cuda
@pytest.mark.parametrize("strategy", ["width", "mass"])
def test_cuda_tensors_give_the_cpu_numbers_on_their_device(strategy: str) -> None:
    scores, tp, labels, ignored = random_detections(4, 500, ties=True)
    s64 = torch.tensor(scores, dtype=torch.float64)
    cpu = detection_calibration(
        s64, torch.tensor(tp), torch.tensor(labels), torch.tensor(ignored), bins=12, strategy=strategy,  # type: ignore[arg-type]
    )  # fmt: skip
    dev = torch.device("cuda")
    gpu = detection_calibration(
        torch.tensor(scores, dtype=torch.float64, device=dev), torch.tensor(tp, device=dev),
        torch.tensor(labels, device=dev), torch.tensor(ignored, device=dev), bins=12, strategy=strategy,  # type: ignore[arg-type]
    )  # fmt: skip
    assert gpu.ece.device.type == "cuda" and gpu.class_count.device.type == "cuda"
    for key in (*FIELDS, "accuracy", "ece", "mce", "class_ece", "class_mce"):
        np.testing.assert_allclose(
            getattr(gpu, key).cpu().numpy(), getattr(cpu, key).numpy(), rtol=1e-12, atol=1e-12
        )
