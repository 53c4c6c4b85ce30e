"""LVIS summary on COCO-style tables: the 13 numbers of the LVIS API's ``LVISEval.summarize``.

The LVIS API (``lvis`` 0.5.3) accumulates exactly as pycocotools does (per class, detections
sorted by score with a stable sort, precision made non-increasing, read at the 101 recall
points; classes without GT are -1), with one max-detection value (300 per image, applied to
the results before evaluation) and no per-(image, class) cap. Its summary differs: AP over
all, at IoU 0.5 and 0.75, per area range and per frequency group (rare, common, frequent),
and AR at 300 over all and per area range. Each number is the mean of the defined (> -1)
entries of the table slice, -1 when none is defined, as ``LVISEval._summarize``.

No torch here: numpy in, numpy out (the tables are small).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: the LVIS API's ``results`` keys for 300 detections per image, in its order
LVIS_RESULT_KEYS: tuple[str, ...] = (
    "AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf",
    "AR@300", "ARs@300", "ARm@300", "ARl@300",
)  # fmt: skip

#: frequency groups in the LVIS API's order, with the names the metric's keys use
FREQUENCY_GROUPS: tuple[tuple[str, str], ...] = (("r", "rare"), ("c", "common"), ("f", "frequent"))
_GROUP_OF = {
    **{s: i for i, (s, _) in enumerate(FREQUENCY_GROUPS)},
    **{n: i for i, (_, n) in enumerate(FREQUENCY_GROUPS)},
}


def lvis_result_keys(max_det: int = 300) -> tuple[str, ...]:
    """The LVIS API's ``results`` keys (``AR@{max_det}`` etc.).

    Example:
        >>> lvis_result_keys()[-4:]
        ('AR@300', 'ARs@300', 'ARm@300', 'ARl@300')
    """
    return (*LVIS_RESULT_KEYS[:9], f"AR@{max_det}", *(f"AR{a}@{max_det}" for a in "sml"))


def lvis_stat_names(max_det: int = 300) -> tuple[str, ...]:
    """torchmetrics-style names of the 13 LVIS numbers, in :data:`LVIS_RESULT_KEYS` order.

    Example:
        >>> lvis_stat_names()[6:10]
        ('map_rare', 'map_common', 'map_frequent', 'mar_300')
    """
    return (
        "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
        "map_rare", "map_common", "map_frequent",
        f"mar_{max_det}", "mar_small", "mar_medium", "mar_large",
    )  # fmt: skip


def frequency_index(frequencies: Any) -> dict[int, int]:
    """``{class: group}`` (0 rare, 1 common, 2 frequent) from a mapping or a sequence.

    ``frequencies`` maps class ids to "r"/"c"/"f" (LVIS' ``frequency`` field) or
    "rare"/"common"/"frequent"; a sequence is indexed by class id.

    Raises:
        ValueError: on another value or a non-integer class id.

    Example:
        >>> frequency_index({1: "f", 7: "rare"})
        {1: 2, 7: 0}
    """
    items: Any
    if isinstance(frequencies, Mapping):
        items = frequencies.items()
    else:
        if isinstance(frequencies, str | bytes) or not isinstance(frequencies, Sequence):
            raise ValueError(
                "`frequencies` must map class ids to 'r', 'c' or 'f' (or 'rare', 'common', 'frequent'), "
                f"or be a sequence of those indexed by class id; got {type(frequencies).__name__}"
            )
        items = enumerate(frequencies)
    out = {}
    for cls, value in items:
        if isinstance(cls, bool) or not isinstance(cls, int | np.integer):
            raise ValueError(f"`frequencies`: class ids must be ints, got {cls!r}")
        if value not in _GROUP_OF:
            raise ValueError(
                f"`frequencies[{cls!r}]` must be 'r', 'c' or 'f' (or 'rare', 'common', 'frequent'), "
                f"got {value!r}"
            )
        out[int(cls)] = _GROUP_OF[value]
    return out


def _mean_defined(x: np.ndarray) -> float:
    kept = x[x > -1]
    return float(np.mean(kept)) if kept.size else -1.0


def lvis_summarize_np(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray,
    groups: np.ndarray | None,
) -> np.ndarray:
    """The 13 LVIS numbers, float64, in :data:`LVIS_RESULT_KEYS` order.

    Args:
        precision: (T, R, K, A, M) pycocotools-layout table; the last maxDet is read.
        recall: (T, K, A, M).
        iou_thresholds: (T,) float64; AP50 / AP75 read the threshold equal to 0.5 / 0.75
            (-1 when there is none, as the LVIS API).
        groups: (K,) int frequency group of each class (0 rare, 1 common, 2 frequent, -1
            none), or None: the three group APs are then -1.

    Example:
        >>> p = np.full((2, 3, 1, 4, 1), 0.5); r = np.full((2, 1, 4, 1), 0.25)
        >>> lvis_summarize_np(p, r, np.array([0.5, 0.75]), np.array([2]))[[0, 6, 8, 9]].tolist()
        [0.5, -1.0, 0.5, 0.25]
    """
    iou_thresholds = np.asarray(iou_thresholds, np.float64)
    prec, rec = precision[..., -1], recall[..., -1]  # (T, R, K, A), (T, K, A)

    def at(value: float) -> np.ndarray:
        return np.flatnonzero(iou_thresholds == value)

    out = [
        _mean_defined(prec[:, :, :, 0]),
        _mean_defined(prec[at(0.5)][:, :, :, 0]),
        _mean_defined(prec[at(0.75)][:, :, :, 0]),
        *(_mean_defined(prec[:, :, :, a]) for a in (1, 2, 3)),
    ]
    for g in range(len(FREQUENCY_GROUPS)):
        chosen = np.zeros(prec.shape[2], np.bool_) if groups is None else np.asarray(groups) == g
        out.append(_mean_defined(prec[:, :, chosen, 0]))
    out += [_mean_defined(rec[:, :, a]) for a in range(4)]
    return np.array(out, dtype=np.float64)
