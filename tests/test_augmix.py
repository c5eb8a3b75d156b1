"""AugMix: per-image draws from the caller's generator (reproducible, content-independent), ops that match
torchvision's, the three-view batch for the Jensen-Shannon loss, and the loss itself."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from trainables import augment as A
from trainables import augmix as M
from trainables.config import TrainConfig
from trainables.data import normalize

OFF = dict(crop_padding=0, hflip=False, auto_augment="none", color_jitter=0.0, corruption_aug=0.0, random_erasing=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    with A._one_thread(True):
        yield


def images(n=16, seed=0):
    """Smooth colour images: every op visibly acts on them."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float()
    return nnf.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False).round().to(torch.uint8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kw", [{}, dict(severity=10, width=1, depth=3, alpha=0.5)], ids=["defaults", "other"])
def test_same_generator_same_output_other_seed_other_output(kw):
    aug, x = M.AugMix(**kw), images()
    a, b, c = aug(x, gen(0)), aug(x, gen(0)), aug(x, gen(1))
    assert a.dtype == torch.float32 and a.shape == x.shape and torch.isfinite(a).all()
    assert a.min() >= 0 and a.max() <= 255
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generator_advances_the_same_whatever_the_images():
    g1, g2 = gen(3), gen(3)
    M.AugMix()(images(seed=1), g1)
    M.AugMix()(images(seed=2), g2)
    assert torch.equal(g1.get_state(), g2.get_state())
    g3 = gen(3)
    first = M.AugMix()(images(seed=1), g3)
    assert not torch.equal(M.AugMix()(images(seed=1), g3), first)  # the next call draws anew


def test_each_image_draws_its_own_augmentation():
    x = images(1).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    out = M.AugMix()(x, gen())
    distinct = {tuple(o.flatten()[::97].tolist()) for o in out}
    assert len(distinct) == 16


@pytest.mark.parametrize("op", M.OPS)
def test_every_op_changes_images_and_keeps_uint8(op):
    x = images(8)
    level = np.full(8, 9.0)
    out = M._apply(x, op, level, np.zeros(8, dtype=bool))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert (out != x).flatten(1).any(1).all()


@pytest.mark.parametrize("op", ["autocontrast", "equalize", "posterize", "solarize"])
def test_colour_ops_are_torchvisions_per_image(op):
    x = images(6)
    level = np.linspace(0.5, 9.5, 6)
    out = M._apply(x, op, level, np.zeros(6, dtype=bool))
    for i in range(6):
        if op == "autocontrast":
            ref = F.autocontrast(x[i])
        elif op == "equalize":
            ref = F.equalize(x[i])
        elif op == "posterize":
            ref = F.posterize(x[i], 4 - int(level[i] * 4 / 10))
        else:
            ref = F.solarize(x[i], 256 - int(level[i] * 256 / 10))
        assert torch.equal(out[i], ref), (op, i)


def test_translate_and_rotate_match_torchvision():
    x = images(4)
    level = np.array([3.0, 6.0, 9.0, 9.9])
    for sign in (False, True):
        s = -1 if sign else 1
        shifted = M._apply(x, "translate_x", level, np.full(4, sign))
        rotated = M._apply(x, "rotate", level, np.full(4, sign))
        for i in range(4):
            px = int(level[i] * 32 / 3 / 10)
            ref = F.affine(x[i], angle=0.0, translate=[-s * px, 0], scale=1.0, shear=[0.0, 0.0])
            assert torch.equal(shifted[i], ref)
            deg = int(level[i] * 30 / 10) * s
            candidates = [F.rotate(x[i].float(), a, InterpolationMode.BILINEAR) for a in (deg, -deg)]
            err = min((rotated[i].float() - c).abs()[:, 2:-2, 2:-2].max().item() for c in candidates)
            assert err <= 1.0  # the same bilinear warp, up to rounding


def test_batch_augment_three_views_clean_first():
    x = images(8)
    cfg = TrainConfig.from_dict({**OFF, "augmix": True})
    aug = A.BatchAugment(cfg)
    out = aug(x, gen())
    assert aug.views == 3 and out.shape == (8, 9, 32, 32)
    views = A.split_views(out)
    assert views.shape == (24, 3, 32, 32) and torch.equal(views[:8], normalize(x))
    assert not torch.equal(views[8:16], views[16:])  # two independent AugMix draws
    single = A.BatchAugment(TrainConfig.from_dict({**OFF, "augmix": True, "augmix_jsd": False}))
    one = single(x, gen())
    assert single.views == 1 and one.shape == x.shape and not torch.equal(one, normalize(x))


def test_mixup_mixes_all_three_views_alike():
    x = images(8)
    cfg = TrainConfig.from_dict({**OFF, "augmix": True, "mixup_alpha": 1.0})
    batch = A.BatchAugment(cfg)(x, gen())
    mixed, ya, yb, lam = A.mix(batch, torch.arange(8), cfg, gen(5))
    clean = A.split_views(mixed)[:8]
    perm = yb  # labels are 0..7, so y[perm] is the permutation itself
    assert torch.allclose(clean, normalize(x) * lam + normalize(x)[perm] * (1 - lam), atol=1e-5)


def test_jsd_is_zero_for_identical_outputs_and_the_textbook_value_otherwise():
    z = torch.randn(5, 100)
    assert M.jsd_loss([z, z.clone(), z.clone()]).item() == pytest.approx(0.0, abs=1e-6)
    views = [torch.randn(5, 10) for _ in range(3)]
    p = [v.softmax(1).double() for v in views]
    mixture = sum(p) / 3
    entropy = lambda q: -(q * q.log()).sum(1)  # noqa: E731
    textbook = (entropy(mixture) - sum(entropy(q) for q in p) / 3).mean().item()
    got = M.jsd_loss(views).item()
    assert got > 0 and math.isclose(got, textbook, rel_tol=1e-4)


def test_augmix_config_checks():
    from trainables.errors import ConfigError

    for bad, key in [({"augmix_severity": 0}, "augmix_severity"), ({"augmix_width": 11}, "augmix_width"),
                     ({"augmix_depth": -1}, "augmix_depth"), ({"augmix_alpha": 0}, "augmix_alpha"),
                     ({"augmix_jsd_weight": -1}, "augmix_jsd_weight")]:
        with pytest.raises(ConfigError, match=key):
            TrainConfig.from_dict(bad)
