"""Shared check: a metric gives the same result for one update as for the same data split in pieces."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
from torchmetrics import Metric


def assert_split_invariant(
    make_metric: Callable[[], Metric],
    data: torch.Tensor,
    cuts: list[int],
    rel: float = 1e-12,
    make_split_metric: Callable[[], Metric] | None = None,
) -> dict[str, torch.Tensor]:
    """Update one metric with ``data`` and another with ``data`` cut at ``cuts`` (rows); compare.

    Returns the whole-data result. ``make_split_metric`` builds the second metric when it needs
    other arguments (default: ``make_metric``).
    """
    whole = make_metric()
    whole.update(data)
    split = (make_split_metric or make_metric)()
    for lo, hi in itertools.pairwise(sorted({0, len(data), *cuts})):
        split.update(data[lo:hi])
    a, b = whole.compute(), split.compute()
    for key in a:
        assert float(a[key]) == pytest.approx(float(b[key]), rel=rel, abs=1e-12), key
    return a
