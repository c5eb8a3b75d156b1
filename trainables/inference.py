"""Batched prediction over any uint8 NHWC array, including a memory-mapped one (read a batch at a time)."""
from __future__ import annotations

import numpy as np
import torch

from .data import normalize


@torch.no_grad()
def predict_logits_batches(model: torch.nn.Module, x, batch_size: int = 1024, device: str | torch.device = "cpu",
                           channels_last: bool = False, autocast_dtype: torch.dtype | None = None):
    """Yield (start, logits float32 CPU tensor) for consecutive batches of x (N, 32, 32, 3) uint8."""
    model.eval()
    device = torch.device(device)
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
        batch = normalize(batch.to(device, non_blocking=True).permute(0, 3, 1, 2))
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(batch)
        yield start, logits.float().cpu()


def predict(model: torch.nn.Module, x, batch_size: int = 1024, device: str | torch.device = "cpu", **kw) -> np.ndarray:
    """Predicted labels (int64) for every image of x."""
    out = np.empty(len(x), dtype=np.int64)
    for start, logits in predict_logits_batches(model, x, batch_size, device, **kw):
        out[start:start + len(logits)] = logits.argmax(1).numpy()
    return out
