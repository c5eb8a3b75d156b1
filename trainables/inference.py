"""Batched prediction over any uint8 NHWC array, including a memory-mapped one (read a batch at a time),
optionally with test-time augmentation (TTA).

TTA averages the softmax probabilities of a few views of each image: `flip` (2 views: as is, mirrored),
`flip_shift` (10 views: the image and 2-pixel shifts up/down/left/right, each also mirrored, black where
the shift exposes the border: what training's zero-padded random crop shows). Cost: that many forward
passes, i.e. n x inference time; memory stays one batch (views run one after another).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf

from .data import MEAN, STD, normalize
from .tta_views import TTA_VIEWS, check_tta

class TestTimeAugment(torch.nn.Module):
    """Wraps a logits model: forward(normalised NCHW batch) -> log of the views' mean softmax probabilities.

    The output is a valid logits tensor (softmax gives the averaged probabilities back; argmax and
    cross-entropy mean what they should), so an ensemble of TTA-wrapped members (sweep.retrain.Ensemble,
    which averages softmax outputs) is TTA and ensemble together. Wrap the members, not the ensemble.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, model: torch.nn.Module, mode: str = "flip"):
        super().__init__()
        self.model = model
        self.views = TTA_VIEWS[check_tta(mode)]
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for mirrored, dy, dx in self.views:
            p = self.model(view(x, mirrored, dy, dx)).float().softmax(-1)
            total = p if total is None else total + p
        return (total / len(self.views)).clamp_min_(1e-12).log_()


def view(x: torch.Tensor, mirrored: bool, dy: int, dx: int) -> torch.Tensor:
    """A normalised NCHW batch shifted by (dy, dx) pixels (content moves by -dy, -dx), exposed border
    black (the normalised value of pixel 0), then mirrored left-right if asked. Keeps x's memory format."""
    if not (mirrored or dy or dx):
        return x
    nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if dy or dx:
        black = (-torch.tensor(MEAN, device=x.device) / torch.tensor(STD, device=x.device)).view(1, -1, 1, 1)
        p = max(abs(dy), abs(dx))
        h, w = x.shape[-2:]
        padded = nnf.pad(x - black, (p, p, p, p)) + black
        x = padded[..., p + dy:p + dy + h, p + dx:p + dx + w]
    if mirrored:
        x = x.flip(-1)
    return x.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def with_tta(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`model` itself for 'none' (bit-identical to no TTA), else wrapped."""
    return model if check_tta(mode) == "none" else TestTimeAugment(model, mode)


@torch.no_grad()
def predict_logits_batches(model: torch.nn.Module, x, batch_size: int = 1024, device: str | torch.device = "cpu",
                           channels_last: bool = False, autocast_dtype: torch.dtype | None = None,
                           tta: str = "none"):
    """Yield (start, logits float32 CPU tensor) for consecutive batches of x (N, 32, 32, 3) uint8.
    With tta != 'none' the 'logits' are log mean probabilities over the TTA views (TestTimeAugment)."""
    model.eval()
    model = with_tta(model, tta)
    device = torch.device(device)
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
        batch = normalize(batch.to(device, non_blocking=True).permute(0, 3, 1, 2))
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(batch)
        yield start, logits.float().cpu()


def predict_probs(model: torch.nn.Module, x, batch_size: int = 1024, device: str | torch.device = "cpu",
                  **kw) -> np.ndarray:
    """(N, 100) float32 softmax probabilities (TTA-averaged with tta=...), e.g. for calibration or ensembling."""
    out = None
    for start, logits in predict_logits_batches(model, x, batch_size, device, **kw):
        probs = logits.softmax(1).numpy()
        out = np.empty((len(x), probs.shape[1]), dtype=np.float32) if out is None else out
        out[start:start + len(probs)] = probs
    return np.empty((0, 0), dtype=np.float32) if out is None else out


def predict(model: torch.nn.Module, x, batch_size: int = 1024, device: str | torch.device = "cpu", **kw) -> np.ndarray:
    """Predicted labels (int64) for every image of x."""
    out = np.empty(len(x), dtype=np.int64)
    for start, logits in predict_logits_batches(model, x, batch_size, device, **kw):
        out[start:start + len(logits)] = logits.argmax(1).numpy()
    return out
