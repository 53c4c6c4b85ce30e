"""Mask kernels: exact counts against brute force and pycocotools, both paths, chunking, memory, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

import objdet.ops.masks as masks_module
from objdet.ops import mask_iou
from objdet.ops.masks import mask_area, mask_batch, mask_intersection


def _random_masks(rng: np.random.Generator, n: int, h: int, w: int, p: float | None = None) -> torch.Tensor:
    """Blobs (rectangles and noise) so that pairs overlap partly, fully or not at all."""
    out = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        kind = rng.integers(0, 4)
        if kind == 0:
            out[i] = rng.random((h, w)) < (p if p is not None else rng.uniform(0, 1))
        elif kind in (1, 2):
            y0, x0 = rng.integers(0, max(h, 1), 2) if h and w else (0, 0)
            out[i, y0 : y0 + rng.integers(0, h + 1), x0 : x0 + rng.integers(0, w + 1)] = True
        # kind 3: empty
    return torch.from_numpy(out)


def _brute_intersection(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    an, bn = a.numpy(), b.numpy()
    out = np.zeros((len(an), len(bn)), dtype=np.int64)
    for i in range(len(an)):
        for j in range(len(bn)):
            out[i, j] = int(np.logical_and(an[i], bn[j]).sum())
    return out


def _pycocotools_iou(a: torch.Tensor, b: torch.Tensor, crowd: list[int]) -> np.ndarray:
    enc = lambda m: mask_utils.encode(np.asfortranarray(m.numpy().transpose(1, 2, 0).astype(np.uint8)))  # noqa: E731
    return np.asarray(mask_utils.iou(enc(a), enc(b), crowd), dtype=np.float64).reshape(len(a), len(b))


# ---------------------------------------------------------------- exact values
@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(0, 6),
    m=st.integers(0, 6),
    h=st.integers(1, 40),
    w=st.integers(1, 70),
)
def test_intersection_and_area_equal_brute_force_on_both_paths(
    seed: int, n: int, m: int, h: int, w: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_masks(rng, n, h, w), _random_masks(rng, m, h, w)
    expected = _brute_intersection(a, b)
    for method in ("packed", "matmul", "auto"):
        got = mask_intersection(a, b, method=method)
        assert got.dtype == torch.int64 and got.shape == (n, m)
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=method)
    np.testing.assert_array_equal(mask_area(a).numpy(), a.numpy().sum((1, 2)))


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 5),
    m=st.integers(1, 5),
    h=st.integers(1, 33),
    w=st.integers(1, 47),
)
def test_iou_is_bit_identical_to_pycocotools_with_crowd(seed: int, n: int, m: int, h: int, w: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_masks(rng, n, h, w), _random_masks(rng, m, h, w)
    crowd = rng.integers(0, 2, m).tolist()
    ref = _pycocotools_iou(a, b, crowd)
    for method in ("packed", "matmul"):
        ours = mask_iou(a, b, iscrowd=torch.tensor(crowd), method=method)
        assert ours.dtype == torch.float64
        np.testing.assert_array_equal(ours.numpy(), ref, err_msg=method)
    np.testing.assert_array_equal(mask_iou(a, b).numpy(), _pycocotools_iou(a, b, [0] * m))


def test_dtypes_non_contiguous_and_empty_inputs() -> None:
    rng = np.random.default_rng(1)
    a, b = _random_masks(rng, 4, 13, 17), _random_masks(rng, 3, 13, 17)
    ref = mask_iou(a, b)
    assert torch.equal(mask_iou(a.to(torch.uint8), b.float()), ref)
    assert torch.equal(mask_iou(a.transpose(1, 2).contiguous().transpose(1, 2), b[:, :, :]), ref)
    assert torch.equal(mask_iou(a[::2], b), ref[::2])
    assert mask_iou(a[:0], b).shape == (0, 3) and mask_iou(a, b[:0]).shape == (4, 0)
    assert mask_iou(torch.zeros(0), b).shape == (0, 3)  # an empty tensor of any shape: no masks
    assert mask_iou(
        torch.zeros(2, 0, 5, dtype=torch.bool), torch.zeros(1, 0, 5, dtype=torch.bool)
    ).tolist() == [
        [0.0],
        [0.0],
    ]


def test_chunked_paths_give_the_same_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    a, b = _random_masks(rng, 9, 31, 45), _random_masks(rng, 7, 31, 45)
    expected = _brute_intersection(a, b)
    # tiny chunks: many pair chunks, pixel chunks of 64 (exactness limit) and row chunks
    monkeypatch.setattr(masks_module, "_CHUNK_WORDS", 3)
    monkeypatch.setattr(masks_module, "_CHUNK_FLOATS", 600)
    monkeypatch.setattr(masks_module, "_EXACT_FLOAT32", 64)
    for method in ("packed", "matmul"):
        np.testing.assert_array_equal(
            mask_intersection(a, b, method=method).numpy(), expected, err_msg=method
        )


def test_matmul_counts_stay_exact_beyond_float32_integers() -> None:
    # 4097 x 4096 pixels = 2**24 + 4096: a single float32 sum would round; the pixel chunks keep it exact
    ones = torch.ones(1, 4097, 4096, dtype=torch.bool)
    assert mask_intersection(ones, ones, method="matmul").item() == 4097 * 4096
    assert mask_intersection(ones, ones, method="packed").item() == 4097 * 4096


def test_memory_stays_bounded_for_100_by_100_masks_of_1024_squared() -> None:
    """The full N*M*H*W broadcast would be 10 GiB as bool; the kernels stay far below that."""
    script = textwrap.dedent(
        """
        import resource, torch
        from objdet.ops import mask_iou
        n, s = 100, 1024
        idx = torch.arange(n)
        yy = torch.arange(s)
        # mask i: rows [4i, 4i + 600), all columns of [0, 300 + 2i)
        def make(offset):
            top = 4 * idx[:, None] + offset
            rows = (yy[None, :] >= top) & (yy[None, :] < top + 600)
            cols = yy[None, :] < 300 + 2 * idx[:, None]
            return rows[:, :, None] & cols[:, None, :]
        a, b = make(0), make(7)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for method in ("packed", "matmul"):
            iou = mask_iou(a, b, method=method)
            # analytic IoU of the two families of rectangles
            i, j = idx[:, None].double(), idx[None, :].double()
            rows = (torch.minimum(4 * i + 600, 4 * j + 607) - torch.maximum(4 * i, 4 * j + 7)).clamp(min=0)
            inter = rows * torch.minimum(300 + 2 * i, 300 + 2 * j)
            union = 600 * (300 + 2 * i) + 600 * (300 + 2 * j) - inter
            assert torch.equal(iou, inter / union), method
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(base, peak)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=_env(), timeout=300
    )
    base_kib, peak_kib = map(int, out.stdout.split())
    assert (peak_kib - base_kib) < 600 * 1024, f"kernels used {(peak_kib - base_kib) / 1024:.0f} MiB"


def _env() -> dict[str, str]:
    import os

    import objdet

    src = os.path.dirname(os.path.dirname(objdet.__file__))
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ---------------------------------------------------------------- batches of images (the metric's path)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**31), n_images=st.integers(0, 5))
def test_mask_batch_pair_counts_equal_brute_force(seed: int, n_images: int) -> None:
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for _ in range(n_images):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 40))  # images of different sizes
        dets.append(_random_masks(rng, int(rng.integers(0, 5)), h, w))
        gts.append(_random_masks(rng, int(rng.integers(0, 4)), h, w))
    d_img = [i for i, d in enumerate(dets) for _ in range(len(d))]
    g_img = [i for i, g in enumerate(gts) for _ in range(len(g))]
    pairs = [(p, q) for p in range(len(d_img)) for q in range(len(g_img)) if d_img[p] == g_img[q]]
    flat_d = [m for d in dets for m in d]
    flat_g = [m for g in gts for m in g]
    expected = [int((flat_d[p] & flat_g[q]).sum()) for p, q in pairs]
    crowd = torch.from_numpy(rng.integers(0, 2, len(flat_g)).astype(bool))
    di = torch.tensor([p for p, _ in pairs], dtype=torch.int64)
    gi = torch.tensor([q for _, q in pairs], dtype=torch.int64)
    results = []
    for method in ("packed", "matmul"):
        batch = mask_batch(dets, gts, method=method)
        assert batch.det_area.tolist() == [int(m.sum()) for m in flat_d]
        assert batch.gt_area.tolist() == [int(m.sum()) for m in flat_g]
        assert batch.pair_intersection(di, gi).tolist() == expected, method
        results.append(batch.pair_iou(di, gi, crowd))
    assert torch.equal(results[0], results[1])
    for k, (p, q) in enumerate(pairs):
        ref = _pycocotools_iou(flat_d[p][None], flat_g[q][None], [int(crowd[q])])[0, 0]
        assert results[0][k].item() == ref
    # with labels only same-label pairs are prepared; asking for another pair is an error
    dl = torch.from_numpy(rng.integers(0, 3, len(flat_d)))
    gl = torch.from_numpy(rng.integers(0, 3, len(flat_g)))
    same = [k for k, (p, q) in enumerate(pairs) if dl[p] == gl[q]]
    other = [k for k, (p, q) in enumerate(pairs) if dl[p] != gl[q]]
    for method in ("packed", "matmul"):
        batch = mask_batch(dets, gts, dl, gl, method=method)
        assert batch.pair_intersection(di[same], gi[same]).tolist() == [expected[k] for k in same], method
        if other:
            with pytest.raises(ValueError, match="was not prepared"):
                batch.pair_intersection(di[other[:1]], gi[other[:1]])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("a", "b", "kwargs", "error", "match"),
    [
        (
            torch.zeros(1, 4, 4),
            torch.zeros(1, 4, 5),
            {},
            ValueError,
            r"same \(H, W\), got \(4, 4\) and \(4, 5\)",
        ),
        (
            torch.full((1, 2, 2), 2),
            torch.zeros(1, 2, 2),
            {},
            ValueError,
            r"`masks1` must be boolean .* got the value 2",
        ),
        (torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5), {}, ValueError, r"`masks2` .* got the value 0.5"),
        (
            torch.zeros(4, 4),
            torch.zeros(1, 4, 4),
            {},
            ValueError,
            r"`masks1` must have shape \(N, H, W\), got \(4, 4\)",
        ),
        ([[0]], torch.zeros(1, 4, 4), {}, TypeError, "`masks1` must be a torch.Tensor, got list"),
        (
            torch.zeros(1, 2, 2),
            torch.zeros(2, 2, 2),
            {"iscrowd": torch.zeros(3)},
            ValueError,
            r"`iscrowd` .* \(2,\)",
        ),
        (
            torch.zeros(1, 2, 2),
            torch.zeros(2, 2, 2),
            {"method": "rle"},
            ValueError,
            "`method` must be one of",
        ),
        (torch.zeros(1, 2, 2, dtype=torch.complex64), torch.zeros(1, 2, 2), {}, TypeError, "complex64"),
    ],
)
def test_bad_input(a, b, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        mask_iou(a, b, **kwargs)


# ---------------------------------------------------------------- GPU
@pytest.mark.cuda
def test_cuda_matches_cpu_and_pycocotools() -> None:
    rng = np.random.default_rng(5)
    a, b = _random_masks(rng, 30, 120, 160, p=0.3), _random_masks(rng, 20, 120, 160, p=0.3)
    crowd = torch.from_numpy(rng.integers(0, 2, 20))
    cpu = mask_iou(a, b, iscrowd=crowd)
    gpu = mask_iou(a.cuda(), b.cuda(), iscrowd=crowd.cuda())
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    np.testing.assert_array_equal(cpu.numpy(), _pycocotools_iou(a, b, crowd.tolist()))
    batch = mask_batch([a.cuda()], [b.cuda()])
    di = torch.arange(30, device="cuda").repeat_interleave(20)
    gi = torch.arange(20, device="cuda").repeat(30)
    assert torch.equal(batch.pair_iou(di, gi, crowd.cuda().bool()).cpu(), cpu.flatten())
    with pytest.raises(ValueError, match="CPU tensors only"):
        mask_iou(a.cuda(), b.cuda(), method="packed")
