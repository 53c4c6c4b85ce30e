"""Normalising a detection confusion matrix, on a torch tensor or a numpy array (no torch import).

Kept apart from :mod:`objdet.functional.confusion` (torch code) so that the torch-free command
line draws its normalised matrix without importing torch; that module re-exports it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["normalize_confusion_matrix"]

Normalize = Literal["true", "pred", "all"]


def normalize_confusion_matrix(matrix: Any, normalize: Normalize | None = "true") -> Any:
    """The matrix in float64 divided by its row sums ("true"), column sums ("pred") or total ("all").

    Rows or columns that sum to 0 stay 0 (as scikit-learn does). ``None`` only converts to float64.
    With "true" row i is how the GTs of class i were detected (the background row: how the false
    positives are spread over the predicted classes); with "pred" column j is what the
    detections of class j really were. A torch tensor gives a tensor on its device, anything
    else (a numpy array, nested lists) a numpy array.

    Example:
        >>> import torch
        >>> from objdet.functional.confusion import normalize_confusion_matrix
        >>> normalize_confusion_matrix(torch.tensor([[3, 1], [0, 0]]), "true")
        tensor([[0.7500, 0.2500],
                [0.0000, 0.0000]], dtype=torch.float64)
        >>> normalize_confusion_matrix([[3, 1], [0, 0]], "pred").tolist()
        [[1.0, 1.0], [0.0, 0.0]]
    """
    where: Any
    if hasattr(matrix, "detach"):  # a tensor: torch is imported already
        import torch

        m, where = matrix.to(torch.float64), torch.where
    else:
        m, where = np.asarray(matrix, dtype=np.float64), np.where
    if normalize is None:
        return m
    if normalize == "true":
        total = m.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        total = m.sum(axis=0, keepdims=True)
    elif normalize == "all":
        total = m.sum()
    else:
        raise ValueError(f"`normalize` must be None, 'true', 'pred' or 'all', got {normalize!r}")
    return where(total > 0, m / where(total > 0, total, 1.0), 0.0)
