"""numpy arrays on the host from numpy arrays, sequences or torch tensors (no torch import)."""

from __future__ import annotations

from typing import Any

import numpy as np


def host_array(x: Any) -> np.ndarray:
    """A numpy array of ``x``: a numpy array or a sequence as it is, a torch tensor (any device)
    copied to the host; bfloat16 and float16 tensors, as mixed precision gives them, as float32
    (numpy has no bfloat16)."""
    if not hasattr(x, "detach"):
        return np.asarray(x)
    x = x.detach().cpu()
    return (x.float() if x.is_floating_point() and x.element_size() < 4 else x).numpy()
