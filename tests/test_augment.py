"""Batched augmentation: contracts, torchvision equivalence, per-image randomness, reproducibility."""

import pytest
import torch
import torch.nn.functional as nnf

from trainables import augment as A
from trainables.compat_torchvision import apply_op
from trainables.compat_torchvision import policies as tv_policies
from trainables.config import AUTO_AUGMENTS, TrainConfig
from trainables.corrupt_aug import AUGMENTATIONS, corrupt
from trainables.data import normalize

AUTOS = [a for a in AUTO_AUGMENTS if a != "none"]
OFF = dict(crop_padding=0, hflip=False, auto_augment="none", color_jitter=0.0, corruption_aug=0.0, random_erasing=0.0)
ALL_ON = dict(crop_padding=4, hflip=True, color_jitter=0.4, corruption_aug=0.5, random_erasing=0.5)


@pytest.fixture(autouse=True)
def one_thread():
    """The torchvision reference loops here are tiny ops: at 2 threads on a shared 2-core box they spin-wait."""
    with A._one_thread(True):
        yield


def images(n=32, seed=0):
    """Smooth colour images: like photos, auto-contrast/equalize/blur ops all visibly act on them."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float()
    return nnf.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False).round().to(torch.uint8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def cfg(**kw):
    return TrainConfig.from_dict({**OFF, **kw})


@pytest.mark.parametrize("auto", AUTO_AUGMENTS)
def test_output_contract(auto):
    x = images(16)
    out = A.BatchAugment(cfg(auto_augment=auto, **ALL_ON))(x, gen())
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device
    assert torch.isfinite(out).all()


def test_everything_off_is_exactly_normalize():
    x = images(8)
    assert torch.equal(A.BatchAugment(cfg())(x, gen()), normalize(x))


def test_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        A.BatchAugment(cfg())(images(2).float(), gen())


@pytest.mark.parametrize("auto", AUTO_AUGMENTS)
def test_same_seed_same_output_and_global_rng_untouched(auto):
    aug, x = A.BatchAugment(cfg(auto_augment=auto, **ALL_ON)), images(16)
    state = torch.get_rng_state()
    torch.manual_seed(1)
    a = aug(x, gen(7))
    torch.manual_seed(2)  # a different global RNG must not matter
    b = aug(x, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, gen(8)))
    torch.set_rng_state(state)


def test_generator_state_continues_reproducibly():
    """A resumed run restores the generator state mid-epoch and must replay the next batch exactly."""
    aug, x, g = A.BatchAugment(cfg(auto_augment="randaugment", **ALL_ON)), images(8), gen(3)
    aug(x, g)
    saved = g.get_state()
    nxt = aug(x, g)
    g2 = torch.Generator()
    g2.set_state(saved)
    assert torch.equal(aug(x, g2), nxt)


@pytest.mark.parametrize("auto", AUTOS)
def test_matches_torchvision_op_by_op(auto):
    """Each image's batched result equals torchvision applying that image's own drawn ops, bit for bit."""
    fam, x = A.AutoAugmentFamily(cfg(auto_augment=auto)), images(48)
    steps = fam.draw(len(x), 32, 32, gen(1))
    out = x
    for op, mag in steps:
        out = fam.apply(out, op, mag)
    for i in range(len(x)):
        ref = x[i : i + 1]
        for op, mag in steps:
            if op[i] >= 0:
                ref = apply_op(fam.tv, ref, fam.names[op[i]], float(mag[i]))
        assert torch.equal(ref, out[i : i + 1]), (i, [(fam.names[o[i]], float(m[i])) for o, m in steps])


@pytest.mark.parametrize("auto", AUTOS)
def test_every_op_at_every_magnitude_matches_torchvision(auto):
    """The batched fast paths (affine grids, per-image blends) against torchvision, whole magnitude table."""
    fam = A.AutoAugmentFamily(cfg(auto_augment=auto))
    table = fam.table(32, 32)
    for k, name in enumerate(fam.names):
        mags = table[k].unique()
        mags = torch.cat([mags, -mags[mags > 0]]) if fam.signed[k] else mags
        x = images(len(mags), seed=k)
        out = fam.apply(x, torch.full((len(mags),), k), mags)
        for i, m in enumerate(mags.tolist()):
            ref = apply_op(fam.tv, x[i : i + 1], name, m)
            assert torch.equal(ref, out[i : i + 1]), (name, m)


@pytest.mark.parametrize("auto", AUTOS)
def test_each_image_draws_its_own_ops(auto):
    n = 64
    fam = A.AutoAugmentFamily(cfg(auto_augment=auto))
    first_op, first_mag = fam.draw(n, 32, 32, gen(0))[0]
    assert len(set(zip(first_op.tolist(), first_mag.tolist()))) > 3  # torchvision's batch call: exactly 1
    if auto == "autoaugment":  # op pairs name the sub-policy: several sub-policies in one batch
        pairs = {tuple(fam.names[o[i]] for o, _ in fam.draw(n, 32, 32, gen(0))) for i in range(n)}
        policies = {(a[0], b[0]) for a, b in tv_policies(fam.tv)}
        assert len(pairs & policies) > 3
    x = images(1).expand(n, -1, -1, -1).contiguous()  # n copies of one image
    out = A.BatchAugment(cfg(auto_augment=auto))(x, gen(0))
    assert len(torch.unique(out.flatten(1), dim=0)) > n // 4


def test_crop_offsets_differ_per_image_and_stay_in_range():
    n, pad = 256, 4
    x = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    x[:, 0] = torch.arange(1, 33, dtype=torch.uint8).view(32, 1)  # row index + 1; 0 marks padding
    x[:, 1] = torch.arange(1, 33, dtype=torch.uint8).view(1, 32)  # column index + 1
    out = A.crop_flip(x, pad, False, gen())
    dy = out[:, 0, 16, 16].long() - 17
    dx = out[:, 1, 16, 16].long() - 17
    assert dy.abs().max() <= pad and dx.abs().max() <= pad
    assert dy.min() == -pad and dy.max() == pad and dx.min() == -pad and dx.max() == pad
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 40  # of 81 possible
    shifted = torch.stack([torch.roll(nnf.pad(x[i], (pad,) * 4), (-dy[i].item() - pad, -dx[i].item() - pad), (1, 2))
                           [:, :32, :32] for i in range(8)])
    assert torch.equal(out[:8], shifted)  # exactly a zero-padded crop


def test_flip_about_half():
    n = 2000
    x = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    x[:, :, :, 0] = 255
    out = A.crop_flip(x, 0, True, gen())
    flipped = out[:, 0, 0, -1] == 255
    assert torch.equal(out[flipped], x[flipped].flip(-1)) and torch.equal(out[~flipped], x[~flipped])
    assert 0.45 < flipped.float().mean() < 0.55


def test_color_jitter_per_image_and_identity_at_zero_strength():
    n, x = 32, images(1).expand(32, -1, -1, -1).contiguous()
    out = A.color_jitter(x, 0.4, gen())
    assert len(torch.unique(out.flatten(1), dim=0)) == n
    assert (out.int() - x.int()).abs().max() > 10
    assert torch.equal(A.color_jitter(x, 0.0, gen()), x)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_corruption_probability_extremes(p):
    x = images(64)
    changed = (corrupt(x, p, gen()) != x).flatten(1).any(1)
    assert changed.all() if p == 1.0 else not changed.any()


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_each_corruption_at_each_severity(name):
    x = images(20).float() / 255
    sev = torch.arange(5).repeat(4)
    out = AUGMENTATIONS[name](x, sev, gen())
    assert out.shape == x.shape and torch.isfinite(out).all()
    q = out.clamp(0, 1).mul(255).round()
    assert (q != x.mul(255).round()).flatten(1).any(1).all()  # every severity changes every image
    assert (out - x).abs().mean() < 0.25  # mild: CIFAR-C parameters, images stay recognisable


def test_random_erasing_probability_and_box_size():
    n = 1000
    x = normalize(images(n))  # real pixels are never exactly 0 after normalisation (mean*255 is not whole)
    zero = (A.random_erase(x, 0.5, gen()) == 0).all(1)  # (n, h, w): erased pixels
    erased = zero.flatten(1).any(1)
    assert 0.45 < erased.float().mean() < 0.55
    frac = zero.flatten(1).float().mean(1)[erased]
    assert frac.min() >= 0.01 and frac.max() <= 0.4
    assert (A.random_erase(x, 1.0, gen()) == 0).all(1).flatten(1).any(1).all()


def test_mix_off_returns_inputs():
    x, y = torch.randn(4, 3, 8, 8), torch.arange(4)
    xm, ya, yb, lam = A.mix(x, y, cfg(mixup_alpha=0.0, cutmix_alpha=0.0), gen())
    assert xm is x and ya is y and yb is y and lam == 1.0


def test_mixup_labels_and_pixels_consistent():
    n = 16
    x, y = torch.randn(n, 3, 8, 8), torch.arange(n) * 3
    xm, ya, yb, lam = A.mix(x, y, cfg(mixup_alpha=0.4), gen())
    assert 0.0 <= lam <= 1.0 and torch.equal(ya, y)
    perm = yb // 3
    assert sorted(perm.tolist()) == list(range(n))
    assert torch.allclose(xm, lam * x + (1 - lam) * x[perm])


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_lam_is_kept_area(seed):
    n = 16
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    xm, ya, yb, lam = A.mix(x, torch.arange(n), cfg(cutmix_alpha=1.0), gen(seed))
    assert 0.0 <= lam <= 1.0
    for i in range(n):
        if yb[i] != i:
            assert (xm[i] == i).float().mean().item() == pytest.approx(lam)
            assert ((xm[i] == i) | (xm[i] == yb[i])).all()


def test_mix_both_on_uses_both_and_is_reproducible():
    x, y, c = torch.rand(8, 3, 32, 32), torch.arange(8), cfg(mixup_alpha=0.4, cutmix_alpha=1.0)
    kinds = set()
    for s in range(20):
        xm, _, yb, lam = A.mix(x, y, c, gen(s))
        moved = yb != y
        pasted = (xm[moved] == x[yb[moved]]).any()  # cutmix copies pixels verbatim; mixup blends them
        kinds.add("cutmix" if pasted else "mixup")
        assert torch.equal(A.mix(x, y, c, gen(s))[0], xm)
    assert kinds == {"mixup", "cutmix"}


def test_thread_count_restored():
    torch.set_num_threads(2)  # the autouse fixture restores the session's own count afterwards
    A.BatchAugment(cfg(auto_augment="trivialaugment", **ALL_ON))(images(4), gen())
    assert torch.get_num_threads() == 2
