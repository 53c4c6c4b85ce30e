"""Time objdet's pairwise ``box_iou`` against the plain broadcasting formula.

Both run in the same process on the same boxes, interleaved repeat by repeat (so a noisy,
shared machine slows both alike), on CPU and, when there is one, on CUDA. For each it
prints the median time, pairs per second, the rate at which the (N, M) float32 output is
written compared with the device's memory bandwidth (estimated here by timing a large
tensor copy), and the largest absolute difference from a float64 computation.

    python benchmarks/box_iou.py --n 4000 --m 5000 --repeat 15

Run from the repository root with objdet importable (installed, or ``PYTHONPATH=src``).
``run(quick)`` gives the summary rows to ``benchmarks/run.py`` (all benchmarks in one run).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from objdet.ops import box_iou


def broadcast_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """The plain formula (as in torchvision): one fresh broadcast (N, M[, 2]) tensor per step."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2 - inter)


def float64_box_iou(boxes1: Tensor, boxes2: Tensor, rows: int = 256) -> Tensor:
    """The same formula in float64, a block of rows at a time to bound memory."""
    b1, b2 = boxes1.double(), boxes2.double()
    return torch.cat([broadcast_box_iou(b1[i : i + rows], b2) for i in range(0, len(b1), rows)])


def random_boxes(n: int, generator: torch.Generator) -> Tensor:
    """Boxes in a 1000 x 1000 image, sides 1 to 100: many overlaps, many disjoint pairs."""
    xy = torch.rand(n, 2, generator=generator) * 1000
    wh = 1 + torch.rand(n, 2, generator=generator) * 99
    return torch.cat([xy, xy + wh], 1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeat: int
) -> dict[str, list[float]]:
    """Seconds per call of each function; one call of each per round, in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def copy_bandwidth(device: torch.device, nbytes: int, warmup: int, repeat: int) -> float:
    """Bytes per second moved (read + write) by ``dst.copy_(src)`` of ``nbytes`` floats."""
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    times = time_interleaved({"copy": lambda: dst.copy_(src)}, device, warmup, repeat)["copy"]
    return 2 * nbytes / statistics.median(times)


@dataclass
class Row:
    device: str
    impl: str
    median_s: float
    min_s: float
    max_err: float
    out_bytes: int
    pairs: int
    bandwidth: float  # bytes/s of a copy on this device

    def line(self, ref_median_s: float) -> str:
        out_gbps = self.out_bytes / self.median_s / 1e9
        bound_pct = 100 * (self.out_bytes / self.bandwidth) / self.median_s
        return (
            f"{self.device:6} {self.impl:18} {1e3 * self.median_s:10.2f} {1e3 * self.min_s:8.2f} "
            f"{self.pairs / self.median_s / 1e6:9.0f} {out_gbps:9.2f} {bound_pct:13.1f} "
            f"{self.max_err:17.2e} {ref_median_s / self.median_s:5.2f}x"
        )


HEADER = (
    f"{'device':6} {'implementation':18} {'median ms':>10} {'min ms':>8} {'Mpairs/s':>9} "
    f"{'out GB/s':>9} {'% of BW bound':>13} {'max |err| vs f64':>17} {'ratio':>6}"
)


def bench_device(device: torch.device, args: argparse.Namespace) -> tuple[list[Row], bool]:
    """Timing rows (broadcast formula, objdet) on ``device`` and whether the outputs are bitwise equal."""
    g = torch.Generator().manual_seed(args.seed)
    boxes1 = random_boxes(args.n, g).to(device)
    boxes2 = random_boxes(args.m, g).to(device)

    truth = float64_box_iou(boxes1, boxes2)
    results = {
        "broadcast formula": broadcast_box_iou(boxes1, boxes2),
        "objdet box_iou": box_iou(boxes1, boxes2),
    }
    identical = torch.equal(results["broadcast formula"], results["objdet box_iou"])
    errors = {name: (out.double() - truth).abs().max().item() for name, out in results.items()}
    del truth, results

    times = time_interleaved(
        {
            "broadcast formula": lambda: broadcast_box_iou(boxes1, boxes2),
            "objdet box_iou": lambda: box_iou(boxes1, boxes2),
        },
        device,
        args.warmup,
        args.repeat,
    )
    copy_bytes = args.copy_mib * 2**20 if device.type == "cpu" else 4 * args.copy_mib * 2**20
    bandwidth = copy_bandwidth(device, copy_bytes, args.warmup, args.repeat)
    out_bytes = args.n * args.m * 4  # float32 output

    rows = [
        Row(
            device.type,
            name,
            statistics.median(ts),
            min(ts),
            errors[name],
            out_bytes,
            args.n * args.m,
            bandwidth,
        )
        for name, ts in times.items()
    ]
    ref_t, ours_t = rows[0].median_s, rows[1].median_s
    print(
        f"[{device.type}] copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write, {copy_bytes >> 20} MiB); "
        f"output {out_bytes / 2**20:.0f} MiB; write-only lower bound {1e3 * out_bytes / bandwidth:.2f} ms; "
        f"outputs bitwise identical: {identical}; speed-up {ref_t / ours_t:.2f}x"
    )
    return rows, identical


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4000, help="rows: boxes1 is (n, 4)")
    parser.add_argument("--m", type=int, default=5000, help="columns: boxes2 is (m, 4)")
    parser.add_argument("--repeat", type=int, default=15, help="timed calls of each implementation")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: usable cores)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--copy-mib", type=int, default=256, help="copy size for bandwidth (x4 on CUDA)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> list[dict]:
    """Run the benchmark as configured, print its full table, return one summary row per device."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(args.threads or cores)
    devices = []
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {cores} usable cores, "
        f"{torch.get_num_threads()} threads; float32 boxes {args.n} x {args.m}; "
        f"median of {args.repeat} after {args.warmup} warm-up calls"
    )
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name()}")
    rows, summary = [], []
    for device in devices:
        device_rows, identical = bench_device(device, args)
        rows += device_rows
        ref, ours = device_rows
        summary.append(
            {
                "benchmark": f"pairwise box IoU {args.n} x {args.m} float32, {device.type}",
                "objdet_s": ours.median_s,
                "reference": "broadcasting formula (torchvision-style)",
                "reference_s": ref.median_s,
                "note": f"outputs bitwise identical: {identical}; max |err| vs float64 {ours.max_err:.1e}",
            }
        )
    if hasattr(os, "getloadavg"):
        # Other processes on the CPU slow both implementations (multi-threaded ones most).
        print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    print()
    print(HEADER)
    print("-" * len(HEADER))
    for i in range(0, len(rows), 2):  # (broadcast formula, objdet) per device
        for r in rows[i : i + 2]:
            print(r.line(rows[i].median_s))
    return summary


def run(quick: bool = False) -> list[dict]:
    """Summary rows for ``benchmarks/run.py``: the defaults above, or small sizes with ``quick``."""
    return measure(
        parse_args(["--n", "400", "--m", "500", "--repeat", "3", "--copy-mib", "16"] if quick else [])
    )


if __name__ == "__main__":
    measure(parse_args())
