"""Input validation shared by the anomaly and variance metrics.

Every error names the argument, what was seen and what was expected. Value checks (NaN,
binary targets) need one host synchronisation per update; metrics skip them when created
with ``validate_args=False``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(value: object, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_real(value: Tensor, name: str) -> Tensor:
    """``value`` unchanged if it has a real (floating or integer) dtype; bool and complex are rejected.

    Integer tensors are kept as they are: the metrics compare them exactly and convert them to
    float64 (never float32) for moments, min / max and covariances.
    """
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"`{name}` must have a real floating or integer dtype, got {value.dtype}")
    return value


def match_shapes(scores: Tensor, target: Tensor, names: tuple[str, str] = ("scores", "target")) -> Tensor:
    """Return ``target`` reshaped like ``scores``; (B, 1, H, W) and (B, H, W) are accepted as the same."""
    if scores.shape == target.shape:
        return target
    if scores.numel() == target.numel():
        a = [s for i, s in enumerate(scores.shape) if not (i == 1 and s == 1 and scores.dim() == 4)]
        b = [s for i, s in enumerate(target.shape) if not (i == 1 and s == 1 and target.dim() == 4)]
        if a == b:
            return target.reshape(scores.shape)
    raise ValueError(
        f"`{names[1]}` must have the same shape as `{names[0]}` ({tuple(scores.shape)}; a singleton channel "
        f"dimension (B, 1, H, W) vs (B, H, W) is allowed), got {tuple(target.shape)}"
    )


def value_flags(*flags: Tensor) -> list[bool]:
    """Evaluate several boolean 0-d tensors with a single host synchronisation."""
    if not flags:
        return []
    return [bool(v) for v in torch.stack([f.reshape(()) for f in flags]).tolist()]
