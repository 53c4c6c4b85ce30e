"""COCO JSON <-> tensors: read GT and results files into torchmetrics-format inputs, write them back.

The names below are imported on first use (PEP 562), so ``objdet.io.coco_arrays`` (numpy
columns, no torch) can be used without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from objdet.io.coco import (
        CocoGroundTruth,
        LazyImages,
        load_coco_dt,
        load_coco_gt,
        to_coco_gt,
        to_coco_results,
    )

__all__ = ["CocoGroundTruth", "LazyImages", "load_coco_dt", "load_coco_gt", "to_coco_gt", "to_coco_results"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("objdet.io.coco"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
