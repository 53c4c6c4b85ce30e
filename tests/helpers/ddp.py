"""Run a function in N CPU processes joined by a gloo process group and collect what each returns.

Usage::

    def work(rank: int, world_size: int, payload) -> Any:  # module-level, so it pickles
        ...
    results = run_distributed(work, world_size=2, payload=...)  # list indexed by rank

The worker must be importable (module level). Exceptions in any rank are re-raised here
with the rank's traceback. A timeout turns a hang into a failure instead of a stuck CI.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world_size: int, port: int, fn: Callable[..., Any], payload: Any, queue: Any) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        result = fn(rank, world_size, payload)
        queue.put((rank, "ok", result))
    except BaseException:  # report everything, including assertion errors, to the parent
        queue.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_distributed(
    fn: Callable[..., Any], world_size: int = 2, payload: Any = None, timeout: float = 120.0
) -> list:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_entry, args=(rank, world_size, port, fn, payload, queue))
        for rank in range(world_size)
    ]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in range(world_size):
            rank, status, value = queue.get(timeout=timeout)
            if status == "ok":
                results[rank] = value
            else:
                errors.append(f"rank {rank} failed:\n{value}")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    if errors:
        raise AssertionError("\n".join(errors))
    return [results[r] for r in range(world_size)]


def count_all_gathers(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the number of ``torch.distributed.all_gather`` calls it made (inside a worker)."""
    calls = 0
    original = dist.all_gather

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    dist.all_gather = counting
    try:
        return fn(), calls
    finally:
        dist.all_gather = original
