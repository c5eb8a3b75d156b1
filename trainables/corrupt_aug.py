"""CIFAR-C-style corruptions as a training augmentation (AugMix's idea: make the model see the kinds of
damage the OOD test applies), batched with torch ops, a random corruption and severity per image.

Parameters come from trainables/corruption_table.py, the table the evaluation suite (robustness/corruptions*.py)
reads too; tests/test_corruptions.py checks that both change images alike per (name, severity). These 9
corruptions are 9 of the OOD set's 19: training on them targets those directly, so OOD accuracy on them
overstates generalisation.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as nnf
from PIL import Image
from torchvision.io import decode_jpeg, encode_jpeg

from .compat_torchvision import hsv_to_rgb, rgb_to_hsv
from .corruption_table import PARAMS

# Here a severity is 0..4 (an index into a table row): `sev` tensors are drawn with randint(5).


def _param(table, sev: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(table, dtype=like.dtype, device=like.device)[sev.to(like.device)].view(-1, 1, 1, 1)


def _draw(fn, shape, g: torch.Generator, device) -> torch.Tensor:
    # On the generator's device, so a CPU generator (checkpointed by the engine) can drive GPU batches.
    return fn(shape, generator=g, device=g.device).to(device)


def gaussian_noise(x, sev, g):
    return x + _draw(torch.randn, x.shape, g, x.device) * _param(PARAMS["gaussian_noise"], sev, x)


def shot_noise(x, sev, g):
    c = _param(PARAMS["shot_noise"], sev, x)
    return torch.poisson((x * c).to(g.device), generator=g).to(x.device) / c


def impulse_noise(x, sev, g):
    hit = _draw(torch.rand, x.shape, g, x.device) < _param(PARAMS["impulse_noise"], sev, x)
    salt = (_draw(torch.rand, x.shape, g, x.device) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def gaussian_blur(x, sev, g):
    # skimage's gaussian (truncate=4, mode='nearest') as CIFAR-C used it; sigma <= 1 -> radius 4.
    n, c, h, w = x.shape
    k = torch.arange(-4, 5, dtype=x.dtype, device=x.device)
    sigma = _param(PARAMS["gaussian_blur"], sev, x).view(n, 1)
    kern = torch.exp(-(k**2) / (2 * sigma**2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, 9): one kernel per image channel
    y = nnf.pad(x.reshape(1, n * c, h, w), (4, 4, 4, 4), mode="replicate")
    y = nnf.conv2d(y, kern.view(n * c, 1, 1, 9), groups=n * c)
    y = nnf.conv2d(y, kern.view(n * c, 1, 9, 1), groups=n * c)
    return y.view(n, c, h, w)


def contrast(x, sev, g):
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * _param(PARAMS["contrast"], sev, x) + mean


def brightness(x, sev, g):
    h, s, v = rgb_to_hsv(x).unbind(-3)
    v = (v + _param(PARAMS["brightness"], sev, x)[:, 0]).clamp(0, 1)
    return hsv_to_rgb(torch.stack((h, s, v), -3))


def saturate(x, sev, g):
    a = _param([p[0] for p in PARAMS["saturate"]], sev, x)[:, 0]
    b = _param([p[1] for p in PARAMS["saturate"]], sev, x)[:, 0]
    h, s, v = rgb_to_hsv(x).unbind(-3)
    return hsv_to_rgb(torch.stack((h, (s * a + b).clamp(0, 1), v), -3))


@functools.lru_cache(maxsize=None)
def _box_resize(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix of Pillow's BOX resampling of one row, the resize the suite's pixelate uses.

    torch has no equivalent for enlarging ("area" only shrinks); "nearest" back up shifted whole rows and
    changed 6x more than the suite at severity 1 (tests/test_corruptions.py compares the two). Read off Pillow
    itself: the rows of the identity, resized as a float image.
    """
    eye = Image.fromarray(np.eye(n_in, dtype=np.float32))
    return torch.from_numpy(np.asarray(eye.resize((n_out, n_in), Image.BOX), dtype=np.float32).T.copy())


def pixelate(x, sev, g):
    out = x.clone()
    h, w = x.shape[-2:]
    for s in sev.unique().tolist():  # output size differs by severity: at most 5 groups
        idx = (sev == s).nonzero().squeeze(1).to(x.device)
        c = PARAMS["pixelate"][s]
        dh, dw, uh, uw = (_box_resize(a, b).to(x.device, x.dtype)
                          for a, b in ((h, int(h * c)), (w, int(w * c)), (int(h * c), h), (int(w * c), w)))
        out[idx] = uh @ (dh @ x[idx] @ dw.T) @ uw.T
    return out


def jpeg_compression(x, sev, g):
    out = x.clone()
    u8 = x.mul(255).round_().to(torch.uint8).cpu()  # torchvision's JPEG codec is CPU-side here
    for s in sev.unique().tolist():
        idx = (sev == s).nonzero().squeeze(1)
        coded = encode_jpeg(list(u8[idx]), quality=PARAMS["jpeg_compression"][s])
        out[idx.to(x.device)] = torch.stack(decode_jpeg(coded)).to(x.device, x.dtype) / 255
    return out


# The augmentation's corruptions by name (a subset of corruption_table.NAMES); the order fixes the random draw.
AUGMENTATIONS = {
    f.__name__: f
    for f in (gaussian_noise, shot_noise, impulse_noise, gaussian_blur, contrast, brightness, saturate, pixelate,
              jpeg_compression)
}

_BY_INDEX = tuple(AUGMENTATIONS.values())


def corrupt(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """uint8 NCHW -> uint8: each image, with probability p, gets a random corruption at a random severity."""
    n = x.shape[0]
    # Drawn for every image whatever p, so the generator advances the same way for any batch content.
    hit = _draw(torch.rand, (n,), g, "cpu") < p
    kind = torch.randint(len(AUGMENTATIONS), (n,), generator=g, device=g.device).cpu()
    sev = torch.randint(5, (n,), generator=g, device=g.device).cpu()
    if not hit.any():
        return x
    out = x.clone()
    for k in kind[hit].unique().tolist():
        idx = (hit & (kind == k)).nonzero().squeeze(1)
        dev_idx = idx.to(x.device)
        y = _BY_INDEX[k](x[dev_idx].float() / 255, sev[idx], g)
        out[dev_idx] = y.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return out
