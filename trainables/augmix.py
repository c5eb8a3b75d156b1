"""AugMix (Hendrycks et al., ICLR 2020) on whole uint8 NCHW batches, every image its own draws, and its
Jensen-Shannon consistency loss.

Per image: `width` chains of 1-3 (or `depth`) random ops at random strengths up to `severity`, mixed with
Dirichlet(alpha) weights, then blended with the original by m ~ Beta(alpha, alpha). The ops are the
paper's set *without* those that overlap the test corruptions (contrast, colour, brightness, sharpness,
noise, blur), so what it buys on corrupted data is generalisation, not having seen the corruption.
Every draw comes from one numpy Generator seeded by one draw of the caller's torch.Generator: the
same batch and generator state give the same output, and a resumed run replays exactly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F

OPS = ("autocontrast", "equalize", "posterize", "solarize", "rotate", "shear_x", "shear_y", "translate_x",
       "translate_y")
_AFFINE = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _level(levels: np.ndarray, maxval: float, integer: bool) -> np.ndarray:
    """The reference implementation's int_parameter / float_parameter: level in (0.1, severity) of 10."""
    v = levels * maxval / 10
    return np.floor(v) if integer else v


def _affine(x: torch.Tensor, op: str, level: np.ndarray, sign: np.ndarray) -> torch.Tensor:
    """Rotation / shear / translation about the centre, per image, bilinear, black outside (PIL's look)."""
    n, _, h, w = x.shape
    s = np.where(sign, -1.0, 1.0)
    a = np.zeros((n, 2, 3))  # output pixel (centred) -> input pixel, for each image
    a[:, 0, 0] = a[:, 1, 1] = 1.0
    if op == "rotate":
        rad = np.deg2rad(_level(level, 30, True) * s)
        a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = np.cos(rad), -np.sin(rad), np.sin(rad), np.cos(rad)
    elif op == "shear_x":
        a[:, 0, 1] = _level(level, 0.3, False) * s
    elif op == "shear_y":
        a[:, 1, 0] = _level(level, 0.3, False) * s
    elif op == "translate_x":
        a[:, 0, 2] = _level(level, w / 3, True) * s
    else:
        a[:, 1, 2] = _level(level, h / 3, True) * s
    # to affine_grid's normalised coordinates (align_corners=False): x_n = 2 x / w about the centre
    scale = np.array([2.0 / w, 2.0 / h])
    theta = a.copy()
    theta[:, :, :2] = a[:, :, :2] * scale[None, :, None] / scale[None, None, :]
    theta[:, :, 2] = a[:, :, 2] * scale[None, :]
    grid = nnf.affine_grid(torch.tensor(theta, dtype=torch.float32, device=x.device), [n, 3, h, w],
                           align_corners=False)
    out = nnf.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _apply(x: torch.Tensor, op: str, level: np.ndarray, sign: np.ndarray) -> torch.Tensor:
    """One op on a uint8 group of images, each with its own level; torchvision's kernels where they fit."""
    if op == "autocontrast":
        return F.autocontrast(x)  # per image and channel
    if op == "equalize":
        return F.equalize(x)  # per image histogram
    if op == "posterize":  # keep 4 - level bits: at most 4 distinct values, one torchvision call each
        bits = 4 - _level(level, 4, True).astype(np.int64)
        out = x.clone()
        for b in np.unique(bits):
            idx = torch.from_numpy(np.flatnonzero(bits == b)).to(x.device)
            out[idx] = F.posterize(x[idx], int(max(b, 0)))
        return out
    if op == "solarize":  # F.solarize's rule with a per-image threshold
        thr = torch.tensor(256 - _level(level, 256, True), dtype=torch.float32, device=x.device)
        return torch.where(x.float() >= thr.view(-1, 1, 1, 1), F.invert(x), x)
    return _affine(x, op, level, sign)


class AugMix:
    """`AugMix(severity, width, depth, alpha)(x_uint8_nchw, generator)` -> float32 NCHW on the 0-255 scale
    (the mixture is not re-quantised), same device."""

    def __init__(self, severity: int = 3, width: int = 3, depth: int = 0, alpha: float = 1.0):
        self.severity, self.width, self.depth, self.alpha = severity, width, depth, alpha

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        # A fixed number of draws per call, whatever the images: the generator advances the same way always.
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=g, device=g.device)))
        k, d = self.width, self.depth or 3
        weights = rng.dirichlet([self.alpha] * k, size=n).astype(np.float32)  # (n, k)
        m = rng.beta(self.alpha, self.alpha, size=n).astype(np.float32)
        depth = np.full((k, n), d) if self.depth else rng.integers(1, 4, size=(k, n))
        ops = rng.integers(len(OPS), size=(k, d, n))
        levels = rng.uniform(0.1, self.severity, size=(k, d, n))
        signs = rng.random((k, d, n)) < 0.5
        w = torch.from_numpy(weights).to(x.device)
        mix = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for i in range(k):
            chain = x
            for j in range(d):
                op = np.where(depth[i] > j, ops[i, j], -1)
                chain = self._step(chain, op, levels[i, j], signs[i, j])
            mix.add_(chain.float() * w[:, i].view(-1, 1, 1, 1))
        m_t = torch.from_numpy(m).to(x.device).view(-1, 1, 1, 1)
        return x.float() * (1 - m_t) + mix * m_t

    @staticmethod
    def _step(x: torch.Tensor, op: np.ndarray, level: np.ndarray, sign: np.ndarray) -> torch.Tensor:
        """Each image's drawn op (-1: this chain is already done for it), one call per op group."""
        out = None
        for k in np.unique(op[op >= 0]):
            sel = np.flatnonzero(op == k)
            idx = torch.from_numpy(sel).to(x.device)
            out = x.clone() if out is None else out
            out[idx] = _apply(x[idx], OPS[k], level[sel], sign[sel])
        return x if out is None else out


def jsd_loss(logits: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Jensen-Shannon divergence among the softmax outputs of the views (the paper's consistency loss:
    mean KL of each view to the clamped mixture), averaged over the batch; 0 when all views agree."""
    probs = [z.float().softmax(1) for z in logits]
    log_mixture = torch.clamp(torch.stack(probs).mean(0), 1e-7, 1).log()
    return sum(nnf.kl_div(log_mixture, p, reduction="batchmean") for p in probs) / len(probs)
