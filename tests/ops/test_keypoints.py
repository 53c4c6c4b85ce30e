"""OKS (objdet.ops.keypoints, objdet.ops.keypoints_cpu) against pycocotools' computeOks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools.cocoeval import COCOeval

from objdet.ops import keypoint_oks
from objdet.ops.keypoints import KeypointBatch, keypoint_extent_area
from objdet.ops.keypoints_cpu import COCO_PERSON_SIGMAS, _numpy_sum, pair_oks
from objdet.ops.keypoints_cpu import keypoint_extent_area as extent_np


def _reference(
    det: np.ndarray, gt: np.ndarray, area: np.ndarray, box: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    ev = COCOeval(iouType="keypoints")
    ev.params.kpt_oks_sigmas = sigmas
    ev._gts = {
        (1, 1): [
            {"keypoints": g.ravel().tolist(), "bbox": b.tolist(), "area": a}
            for g, b, a in zip(gt, box, area, strict=True)
        ]
    }
    ev._dts = {(1, 1): [{"keypoints": d.ravel().tolist(), "score": 1.0} for d in det]}
    return np.asarray(ev.computeOks(1, 1))


def _case(rng: np.random.Generator, k: int, n: int, m: int) -> tuple[np.ndarray, ...]:
    gt = np.zeros((m, k, 3))
    gt[..., :2] = rng.integers(0, 200, (m, k, 2))
    gt[..., 2] = rng.choice([0, 1, 2], (m, k))
    gt[0, :, 2] = 0  # one GT without labelled keypoints: the box rule
    det = np.zeros((n, k, 3))
    det[..., :2] = gt[rng.integers(0, m, n)][..., :2] + rng.normal(0, 8, (n, k, 2))
    det[..., 2] = rng.random((n, k))
    box = np.c_[rng.uniform(0, 150, (m, 2)), rng.uniform(1, 80, (m, 2))]
    area = rng.uniform(50, 20000, m)
    return det, gt, area, box


@pytest.mark.parametrize(
    ("k", "sigmas"), [(17, None), (5, np.array([0.05, 0.1, 0.2, 0.3, 0.01])), (133, None)]
)
def test_compiled_oks_is_bit_equal_and_torch_oks_close_to_pycocotools(
    k: int, sigmas: np.ndarray | None
) -> None:
    rng = np.random.default_rng(k)
    s = COCO_PERSON_SIGMAS if k == 17 else sigmas if sigmas is not None else rng.uniform(0.02, 0.1, k)
    for _ in range(20):
        det, gt, area, box = _case(rng, k, int(rng.integers(1, 6)), int(rng.integers(1, 5)))
        ref = _reference(det, gt, area, box, s)
        n, m = det.shape[0], gt.shape[0]
        i, j = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
        got = pair_oks(i, j, det, gt, area, box, np.ones(m, np.bool_), s).reshape(n, m)
        # same summation order as numpy's pairwise sum; numpy's SIMD reduction differs by CPU, so the
        # last bit can differ on some machines (seen: 5.6e-17)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15)
        t = keypoint_oks(torch.tensor(det), torch.tensor(gt), torch.tensor(area), s, torch.tensor(box))
        np.testing.assert_allclose(t.numpy(), ref, rtol=0, atol=1e-14)
        batch = KeypointBatch(
            torch.tensor(det), torch.tensor(gt), torch.tensor(area), torch.tensor(s), torch.tensor(box)
        )
        np.testing.assert_array_equal(batch.pair_iou_np(i, j), got.ravel())
        np.testing.assert_allclose(
            batch.pair_iou(torch.tensor(i), torch.tensor(j)).numpy(), got.ravel(), atol=1e-14
        )


def test_numpy_summation_order_for_long_sums() -> None:
    rng = np.random.default_rng(0)
    for n in [*range(0, 40), 127, 128, 129, 200, 256, 1000, 4099]:
        a = np.exp(-3 * rng.random(n))
        assert _numpy_sum(a, 0, n) == np.sum(a), n


def test_gt_without_keypoints_and_without_box_gives_zero() -> None:
    gt = torch.zeros(1, 3, 3)
    det = torch.ones(1, 3, 3)
    assert keypoint_oks(det, gt, torch.tensor([100.0]), [0.1] * 3).item() == 0.0
    got = pair_oks(np.zeros(1, np.int64), np.zeros(1, np.int64), det.double().numpy(), gt.double().numpy(),
                   np.array([100.0]), np.zeros((1, 4)), np.zeros(1, np.bool_), np.full(3, 0.1))  # fmt: skip
    assert got[0] == 0.0


poses = hnp.arrays(np.float64, (3, 6, 3), elements=st.floats(0, 500, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(gt=poses, det=poses, area=st.floats(1.0, 1e5))
def test_oks_properties(gt: np.ndarray, det: np.ndarray, area: float) -> None:
    gt[..., 2] = np.round(gt[..., 2] / 250)  # visibilities 0, 1, 2
    sig = np.full(6, 0.07)
    areas = torch.full((3,), area, dtype=torch.float64)
    boxes = torch.tensor([[10.0, 10.0, 50.0, 50.0]] * 3, dtype=torch.float64)
    oks = keypoint_oks(torch.tensor(det), torch.tensor(gt), areas, sig, boxes)
    assert bool(((oks >= 0) & (oks <= 1)).all())
    self_oks = keypoint_oks(torch.tensor(gt), torch.tensor(gt), areas, sig, boxes).diagonal()
    labelled = (gt[..., 2] > 0).any(1)
    assert bool((self_oks[torch.tensor(labelled)] == 1.0).all())  # a labelled pose against itself
    # the detections' third value (a score, not a visibility) is never read
    det2 = det.copy()
    det2[..., 2] = 7.0
    assert torch.equal(keypoint_oks(torch.tensor(det2), torch.tensor(gt), areas, sig, boxes), oks)
    # the formula is symmetric in x and y (with the box's x/y and w/h swapped too) and in the order
    # of the keypoints (with their sigmas)
    swap = [1, 0, 2]
    swapped = keypoint_oks(
        torch.tensor(det[..., swap]), torch.tensor(gt[..., swap]), areas, sig, boxes[:, [1, 0, 3, 2]]
    )
    np.testing.assert_allclose(swapped.numpy(), oks.numpy(), rtol=0, atol=1e-15)
    perm = np.array([3, 0, 5, 1, 4, 2])
    sig_varied = np.array([0.02, 0.05, 0.07, 0.09, 0.11, 0.13])
    base = keypoint_oks(torch.tensor(det), torch.tensor(gt), areas, sig_varied, boxes)
    permuted = keypoint_oks(
        torch.tensor(det[:, perm]), torch.tensor(gt[:, perm]), areas, sig_varied[perm], boxes
    )
    np.testing.assert_allclose(permuted.numpy(), base.numpy(), rtol=0, atol=1e-14)
    # compiled = torch
    i, j = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    got = pair_oks(i, j, det, gt, areas.numpy(), boxes.numpy(), np.ones(3, np.bool_), sig).reshape(3, 3)
    np.testing.assert_allclose(got, oks.numpy(), rtol=0, atol=1e-14)


def test_extent_area_as_pycocotools_loadres() -> None:
    kp = torch.tensor([[[1.0, 2.0, 0.5], [4.0, 10.0, 0.1], [0.0, 0.0, 0.0]]])
    assert keypoint_extent_area(kp).item() == 4.0 * 10.0  # (0, 0) counts, as in loadRes
    assert extent_np(kp.numpy())[0] == 40.0
    assert keypoint_extent_area(torch.zeros(0, 17, 3)).shape == (0,)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.zeros(2, 17), torch.zeros(1, 17, 3), torch.ones(1)), "det_keypoints"),
        ((torch.zeros(2, 17, 3), torch.zeros(1, 17, 2), torch.ones(1)), "gt_keypoints"),
        ((torch.zeros(2, 16, 3), torch.zeros(1, 17, 3), torch.ones(1)), "keypoints per pose"),
        ((torch.zeros(2, 17, 3), torch.zeros(1, 17, 3), torch.ones(2)), "gt_area"),
        ((torch.zeros(2, 5, 3), torch.zeros(1, 5, 3), torch.ones(1)), "sigmas"),
    ],
)
def test_bad_arguments(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        keypoint_oks(*args)
