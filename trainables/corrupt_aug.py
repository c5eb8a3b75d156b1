"""CIFAR-C-style corruptions as a training augmentation (AugMix's idea: make the model see the kinds of
damage the OOD test applies), batched with torch ops, a random corruption and severity per image.

Severity tables are CIFAR-10-C's own 32x32 parameters (hendrycks/robustness, make_cifar_c.py), not
ImageNet-C's, which destroy a 32x32 image at severity 3+. These 9 corruptions are 9 of the OOD set's 19:
training on them targets those directly, so OOD accuracy on them overstates generalisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

# severity 1..5 -> parameter
_GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # std on [0, 1]
_SHOT_NOISE = (500.0, 250.0, 100.0, 75.0, 50.0)  # photons per unit intensity
_IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # salt-and-pepper fraction
_GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # sigma in pixels
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
_BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
_SATURATE = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))  # HSV saturation * a + b
_PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # downscale factor
_JPEG = (80, 65, 58, 50, 40)  # quality


def _param(table, sev: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(table, dtype=like.dtype, device=like.device)[sev.to(like.device)].view(-1, 1, 1, 1)


def _draw(fn, shape, g: torch.Generator, device) -> torch.Tensor:
    # On the generator's device, so a CPU generator (checkpointed by the engine) can drive GPU batches.
    return fn(shape, generator=g, device=g.device).to(device)


def gaussian_noise(x, sev, g):
    return x + _draw(torch.randn, x.shape, g, x.device) * _param(_GAUSSIAN_NOISE, sev, x)


def shot_noise(x, sev, g):
    c = _param(_SHOT_NOISE, sev, x)
    return torch.poisson((x * c).to(g.device), generator=g).to(x.device) / c


def impulse_noise(x, sev, g):
    hit = _draw(torch.rand, x.shape, g, x.device) < _param(_IMPULSE_NOISE, sev, x)
    salt = (_draw(torch.rand, x.shape, g, x.device) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def gaussian_blur(x, sev, g):
    # skimage's gaussian (truncate=4, mode='nearest') as CIFAR-C used it; sigma <= 1 -> radius 4.
    n, c, h, w = x.shape
    k = torch.arange(-4, 5, dtype=x.dtype, device=x.device)
    sigma = _param(_GAUSSIAN_BLUR, sev, x).view(n, 1)
    kern = torch.exp(-(k**2) / (2 * sigma**2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, 9): one kernel per image channel
    y = nnf.pad(x.reshape(1, n * c, h, w), (4, 4, 4, 4), mode="replicate")
    y = nnf.conv2d(y, kern.view(n * c, 1, 1, 9), groups=n * c)
    y = nnf.conv2d(y, kern.view(n * c, 1, 9, 1), groups=n * c)
    return y.view(n, c, h, w)


def contrast(x, sev, g):
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * _param(_CONTRAST, sev, x) + mean


def brightness(x, sev, g):
    h, s, v = _rgb_to_hsv(x).unbind(-3)
    v = (v + _param(_BRIGHTNESS, sev, x)[:, 0]).clamp(0, 1)
    return _hsv_to_rgb(torch.stack((h, s, v), -3))


def saturate(x, sev, g):
    a = _param([p[0] for p in _SATURATE], sev, x)[:, 0]
    b = _param([p[1] for p in _SATURATE], sev, x)[:, 0]
    h, s, v = _rgb_to_hsv(x).unbind(-3)
    return _hsv_to_rgb(torch.stack((h, (s * a + b).clamp(0, 1), v), -3))


def pixelate(x, sev, g):
    out = x.clone()
    h, w = x.shape[-2:]
    for s in sev.unique().tolist():  # output size differs by severity: at most 5 groups
        idx = (sev == s).nonzero().squeeze(1).to(x.device)
        small = nnf.interpolate(x[idx], size=(int(h * _PIXELATE[s]), int(w * _PIXELATE[s])), mode="area")
        out[idx] = nnf.interpolate(small, size=(h, w), mode="nearest")
    return out


def jpeg_compression(x, sev, g):
    out = x.clone()
    u8 = x.mul(255).round_().to(torch.uint8).cpu()  # torchvision's JPEG codec is CPU-side here
    for s in sev.unique().tolist():
        idx = (sev == s).nonzero().squeeze(1)
        coded = encode_jpeg(list(u8[idx]), quality=_JPEG[s])
        out[idx.to(x.device)] = torch.stack(decode_jpeg(coded)).to(x.device, x.dtype) / 255
    return out


CORRUPTIONS = {
    f.__name__: f
    for f in (gaussian_noise, shot_noise, impulse_noise, gaussian_blur, contrast, brightness, saturate, pixelate,
              jpeg_compression)
}

_BY_INDEX = tuple(CORRUPTIONS.values())


def corrupt(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """uint8 NCHW -> uint8: each image, with probability p, gets a random corruption at a random severity."""
    n = x.shape[0]
    # Drawn for every image whatever p, so the generator advances the same way for any batch content.
    hit = _draw(torch.rand, (n,), g, "cpu") < p
    kind = torch.randint(len(CORRUPTIONS), (n,), generator=g, device=g.device).cpu()
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
