"""Data sources, validation and the train/validation split. (Normalisation constants first: everything shares them.)"""
from __future__ import annotations

import numpy as np
import torch

# The challenge's OOD evaluation normalises with these (CHALLENGE.md); training must match or OOD collapses.
MEAN = (0.5071, 0.4867, 0.4408)
STD = (0.2675, 0.2565, 0.2761)


def normalize(x_uint8_nchw: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 normalised exactly as the official evaluation does (x/255, mean/std)."""
    mean = torch.tensor(MEAN, device=x_uint8_nchw.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x_uint8_nchw.device).view(1, 3, 1, 1)
    return (x_uint8_nchw.float().div_(255) - mean) / std
