import torch
import torch.distributed as dist

from tests.helpers.ddp import run_distributed


def _sum_ranks(rank: int, world_size: int, payload: int) -> float:
    t = torch.tensor([float(rank + payload)])
    dist.all_reduce(t)
    return float(t.item())


def test_two_process_all_reduce() -> None:
    assert run_distributed(_sum_ranks, world_size=2, payload=10) == [21.0, 21.0]
