"""The CIFAR-C corruptions: one parameter table, read by the training augmentation (trainables/corrupt_aug.py,
torch, 9 of them) and by the evaluation suite (robustness/corruptions*.py, numpy, all 19).

Parameters are CIFAR-10/100-C's own 32x32 ones (Hendrycks & Dietterich, ICLR 2019; hendrycks/robustness
`ImageNet-C/create_c/make_cifar_c.py`), milder than ImageNet-C's, which destroy a 32x32 image at severity 3+.
`PARAMS[name][severity - 1]` is the parameter of that severity, in the generator's own units (given beside each).
The order of the table is the generator's; the DL4DS file order (distortionNN -> name) is a separate fact about
those files, kept in robustness/ood.py as DL4DS_ORDER.
"""
from __future__ import annotations

import hashlib

SEVERITIES = (1, 2, 3, 4, 5)

PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std on [0, 1]
    "shot_noise": (500, 250, 100, 75, 50),  # photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper fraction
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # (disk radius, anti-alias sigma)
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # (sigma, delta, iterations)
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # (radius, sigma) of ImageMagick's kernel
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # zoom factors 1, 1.01, ... below this bound are averaged
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    # (flake mean, flake std, zoom, threshold, blur radius, blur sigma, share of the image kept)
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # (image weight, frost weight)
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # (strength, fractal decay)
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor on the distance from the channel mean
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                          (0.1, 0.03, 0.03)),  # (alpha, sigma, affine jitter), times the image size
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # downscale factor
    "jpeg_compression": (80, 65, 58, 50, 40),  # quality
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),  # std of the multiplicative noise
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma in pixels
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    # (liquid mean, std, blur sigma, threshold, intensity, mud (1) or water (0))
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),  # HSV saturation * a + b
}
NAMES = tuple(PARAMS)  # the suite's corruptions, in the generator's order

# Bump when an implementation changes what it draws or computes; the table's own content is hashed in.
# Caches of corrupted images (robustness/corrupted_set.py) are keyed by VERSION, so stale ones are never read.
REVISION = 1
VERSION = f"{REVISION}-{hashlib.sha256(repr(PARAMS).encode()).hexdigest()[:12]}"


def param(name: str, severity: int):
    """The parameter of `name` at severity 1..5."""
    return PARAMS[name][severity - 1]
