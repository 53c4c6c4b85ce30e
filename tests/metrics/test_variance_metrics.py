"""ExplainedVarianceMetric and ComponentOrthogonalityMetric against numpy on the full data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from objdet.training.metrics import ComponentOrthogonalityMetric, ExplainedVarianceMetric
from tests.helpers.invariance import assert_split_invariant


def reference_ratios(x: np.ndarray) -> np.ndarray:
    cov = np.cov(x, rowvar=False)
    evals = np.linalg.eigh(cov)[0][::-1]
    return evals / np.trace(cov)


def features(seed: int, n: int = 500, c: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(c, c))
    return rng.normal(size=(n, c)) * np.linspace(4, 0.5, c) @ mix + 100.0


def test_ratios_match_eigh_on_full_data() -> None:
    x = features(0)
    metric = ExplainedVarianceMetric(n_components=3)
    for chunk in np.array_split(x, 7):
        metric.update(torch.from_numpy(chunk).float())
    out = metric.compute()
    ref = reference_ratios(x.astype(np.float32).astype(np.float64))
    assert list(out) == ["comp_0", "comp_1", "comp_2", "cumulative"]
    for i in range(3):
        assert float(out[f"comp_{i}"]) == pytest.approx(ref[i], rel=1e-9, abs=1e-12)
    assert float(out["cumulative"]) == pytest.approx(ref[:3].sum(), rel=1e-9)
    full = ExplainedVarianceMetric()
    full.update(torch.from_numpy(x))
    assert float(full.compute()["cumulative"]) == pytest.approx(1.0, rel=1e-12)


def test_cubes_with_channel_dim() -> None:
    x = features(1, n=6 * 8 * 8, c=4)
    cube = torch.from_numpy(x).reshape(6, 8, 8, 4)  # (B, H, W, C)
    last = ExplainedVarianceMetric(channel_dim=-1)
    last.update(cube)
    first = ExplainedVarianceMetric(channel_dim=1)
    first.update(cube.permute(0, 3, 1, 2))  # (B, C, H, W)
    ref = reference_ratios(x)
    for out in (last.compute(), first.compute()):
        np.testing.assert_allclose([float(out[f"comp_{i}"]) for i in range(4)], ref, rtol=1e-10)


def test_user_components_captured_variance() -> None:
    x = features(2, c=4)
    w = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    metric = ExplainedVarianceMetric(components=torch.from_numpy(w))
    metric.update(torch.from_numpy(x))
    out = metric.compute()
    cov = np.cov(x, rowvar=False)
    for i, row in enumerate(w):
        assert float(out[f"captured_comp_{i}"]) == pytest.approx(
            row @ cov @ row / (row @ row) / np.trace(cov)
        )
    q = w / np.linalg.norm(w, axis=1, keepdims=True)  # rows are orthogonal here
    assert float(out["captured"]) == pytest.approx(np.trace(q @ cov @ q.T) / np.trace(cov))
    # the top eigenvectors capture exactly the leading ratios
    evecs = np.ascontiguousarray(np.linalg.eigh(cov)[1][:, ::-1][:, :2].T)
    top = ExplainedVarianceMetric(components=torch.from_numpy(evecs))
    top.update(torch.from_numpy(x))
    assert float(top.compute()["captured"]) == pytest.approx(reference_ratios(x)[:2].sum(), rel=1e-9)


@given(st.lists(st.integers(0, 40), max_size=4), st.integers(0, 10_000))
def test_split_invariance(cuts: list[int], seed: int) -> None:
    x = torch.from_numpy(features(seed, n=40, c=3))
    out = assert_split_invariant(
        ExplainedVarianceMetric,
        x,
        cuts,
        rel=1e-9,
        make_split_metric=lambda: ExplainedVarianceMetric(num_features=3),
    )
    for k, v in out.items():
        assert 0.0 <= float(v) <= 1.0 + 1e-12, k


def test_forward_with_lazy_size() -> None:
    x = torch.from_numpy(features(3, n=60, c=3))
    metric = ExplainedVarianceMetric()
    metric(x[:30])
    metric(x[30:])
    np.testing.assert_allclose(
        [float(v) for k, v in metric.compute().items() if k != "cumulative"],
        reference_ratios(x.numpy()),
        rtol=1e-10,
    )


def test_degenerate_and_bad_inputs() -> None:
    metric = ExplainedVarianceMetric(num_features=3)
    metric.update(torch.ones(1, 3))
    assert all(math.isnan(float(v)) for v in metric.compute().values())
    with pytest.raises(ValueError, match=r"`features` has 4 channels along channel_dim=1.*expected 3"):
        metric.update(torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"`channel_dim`=3 is out of range"):
        ExplainedVarianceMetric(channel_dim=3).update(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        ExplainedVarianceMetric().update(torch.zeros(5))
    with pytest.raises(ValueError, match="`features` contains NaN"):
        ExplainedVarianceMetric().update(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"`components` must have shape \(k, 3\)"):
        ExplainedVarianceMetric(num_features=3, components=torch.zeros(2, 4))


def test_orthogonality() -> None:
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(3, 5)) for _ in range(4)]
    q, _ = np.linalg.qr(rng.normal(size=(5, 3)))
    ws.append(q.T)
    metric = ComponentOrthogonalityMetric()
    for w in ws[:2]:
        metric.update(torch.from_numpy(w))
    metric.update(torch.from_numpy(np.stack(ws[2:])))  # a stack counts as several matrices
    errs = [np.linalg.norm(w @ w.T - np.eye(3)) for w in ws]
    out = metric.compute()
    assert float(out["orthogonality_error"]) == pytest.approx(max(errs))
    assert float(out["orthogonality_error_mean"]) == pytest.approx(np.mean(errs))
    single = ComponentOrthogonalityMetric()
    single.update(torch.from_numpy(q.T))
    assert float(single.compute()["orthogonality_error"]) < 1e-12
    with pytest.raises(ValueError, match=r"`components` must have shape \(k, C\)"):
        single.update(torch.zeros(3))
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(float(ComponentOrthogonalityMetric().compute()["orthogonality_error"]))


def test_integer_features_are_exact() -> None:
    x = np.array([[16777217, 0], [16777219, 1], [16777221, 0]], dtype=np.int64)  # not exact in float32
    metric = ExplainedVarianceMetric()
    metric.update(torch.from_numpy(x))
    _, mean, cov = metric.covariance()
    np.testing.assert_array_equal(mean.numpy(), x.mean(0))
    np.testing.assert_allclose(cov.numpy(), np.cov(x, rowvar=False), rtol=1e-15)
    assert float(cov[0, 0]) == 4.0


def test_non_finite_features_are_rejected() -> None:
    metric = ExplainedVarianceMetric()
    for bad in (float("inf"), -float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`features` contains NaN or infinite values"):
            metric.update(torch.tensor([[1.0, 2.0], [bad, 0.0]]))
    metric.update(torch.tensor([[1e200, 1.0], [1e200, 2.0], [1e200, 4.0]], dtype=torch.float64))
    _, mean, cov = metric.covariance()  # huge but finite: no NaN from merging with the empty state
    assert mean.tolist() == [1e200, 7 / 3] and float(cov[0, 0]) == 0.0


def test_orthogonality_empty_stack_and_reset() -> None:
    metric = ComponentOrthogonalityMetric()
    metric.update(torch.zeros(0, 2, 3))  # an empty stack adds nothing
    assert int(metric.num_matrices) == 0 and metric.last_deviation is None
    metric.update(torch.eye(2, 3))
    metric.update(torch.zeros(0, 2, 3))
    assert float(metric.compute()["orthogonality_error"]) == 0.0
    assert metric.last_deviation is not None
    metric.reset()
    assert metric.last_deviation is None
    with pytest.raises(RuntimeError, match="no data"):
        metric.plot()
    metric(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # forward resets internally: the last matrix stays
    metric(torch.zeros(0, 2, 2))
    assert metric.last_deviation is not None and float(metric.last_deviation[1, 1]) == 3.0
    assert int(metric.num_matrices) == 1
