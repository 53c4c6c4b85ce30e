"""COCO and LVIS JSON <-> tensors: read GT and results files into torchmetrics-format inputs, write them back.

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
    from objdet.io.coco_arrays import CocoInputWarning, UnknownCategoryError
    from objdet.io.lvis import LvisGroundTruth, load_lvis_dt, load_lvis_gt
    from objdet.io.torchmetrics_compat import coco_to_tm, tm_to_coco

#: public name -> module that defines it
_HOME = {
    **dict.fromkeys(
        ["CocoGroundTruth", "LazyImages", "load_coco_dt", "load_coco_gt", "to_coco_gt", "to_coco_results"],
        "objdet.io.coco",
    ),
    **dict.fromkeys(["coco_to_tm", "tm_to_coco"], "objdet.io.torchmetrics_compat"),
    **dict.fromkeys(["CocoInputWarning", "UnknownCategoryError"], "objdet.io.coco_arrays"),
    **dict.fromkeys(["LvisGroundTruth", "load_lvis_dt", "load_lvis_gt"], "objdet.io.lvis"),
}
__all__ = [
    "CocoGroundTruth",
    "CocoInputWarning",
    "LazyImages",
    "LvisGroundTruth",
    "UnknownCategoryError",
    "coco_to_tm",
    "load_coco_dt",
    "load_coco_gt",
    "load_lvis_dt",
    "load_lvis_gt",
    "tm_to_coco",
    "to_coco_gt",
    "to_coco_results",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
