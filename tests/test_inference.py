"""Test-time augmentation: the views are what training's crop/flip shows, probabilities are averaged,
the cost is one forward pass per view, and 'none' is bit-identical to plain prediction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from conftest import TinyNet
from trainables.data import normalize
from trainables.errors import ConfigError
from trainables.inference import TestTimeAugment, predict, predict_logits_batches, predict_probs, with_tta
from trainables.tta_views import TTA_MODES, TTA_VIEWS, tta_cost


class Spy(torch.nn.Module):
    """Records every batch it is called with; logits from a fixed TinyNet."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = TinyNet().eval()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.net(x)


def images(n=6, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def uint8_view(x: np.ndarray, mirrored: bool, dy: int, dx: int) -> torch.Tensor:
    """The view built the training way: zero-pad the uint8 image, crop at the offset, flip, normalise."""
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    t = nnf.pad(t, (4, 4, 4, 4))[..., 4 + dy:36 + dy, 4 + dx:36 + dx]
    return normalize(t.flip(-1) if mirrored else t)


@pytest.mark.parametrize("mode", TTA_MODES)
def test_views_are_the_training_crops_and_cost_is_one_pass_each(mode):
    x, spy = images(), Spy()
    list(predict_logits_batches(spy, x, batch_size=4, tta=mode))
    assert len(spy.seen) == 2 * tta_cost(mode) == 2 * len(TTA_VIEWS[mode])  # 2 batches of <= 4 images
    first = spy.seen[:tta_cost(mode)]
    for got, (mirrored, dy, dx) in zip(first, TTA_VIEWS[mode]):
        assert torch.allclose(got, uint8_view(x[:4], mirrored, dy, dx), atol=1e-5)
    assert tta_cost("none") == 1 and tta_cost("flip") == 2 and tta_cost("flip_shift") == 10


@pytest.mark.parametrize("mode", ["flip", "flip_shift"])
def test_probabilities_are_averaged(mode):
    x, spy = images(), Spy()
    logits = torch.cat([b for _, b in predict_logits_batches(spy, x, tta=mode)])
    ref = torch.stack([spy.net(uint8_view(x, *v)).softmax(1) for v in TTA_VIEWS[mode]]).mean(0)
    assert torch.allclose(logits.softmax(1), ref, atol=1e-5)
    assert np.allclose(predict_probs(spy, x, tta=mode), ref.detach().numpy(), atol=1e-5)
    assert (predict(spy, x, tta=mode) == ref.argmax(1).numpy()).all()


def test_none_is_the_model_itself():
    x, spy = images(), Spy()
    assert with_tta(spy, "none") is spy
    plain = torch.cat([b for _, b in predict_logits_batches(spy, x)])
    none = torch.cat([b for _, b in predict_logits_batches(spy, x, tta="none")])
    assert torch.equal(plain, none)


def test_flip_tta_makes_a_mirror_invariant_prediction():
    x, spy = images(), Spy()
    a = torch.cat([b for _, b in predict_logits_batches(spy, x, tta="flip")])
    b = torch.cat([b for _, b in predict_logits_batches(spy, x[:, :, ::-1], tta="flip")])
    assert torch.allclose(a, b, atol=1e-5)


def test_ensemble_of_tta_members_averages_probabilities():
    """The seeds' ensemble averages softmax outputs (sweep's Ensemble): members wrapped in TTA give the mean
    over seeds and views, because softmax of TTA's output is exactly its averaged probabilities."""
    members = [Spy(), Spy()]
    members[1].net.classifier.weight.data.mul_(-1)
    x = images()
    xn = normalize(torch.from_numpy(x).permute(0, 3, 1, 2))
    with torch.no_grad():
        out = torch.stack([TestTimeAugment(m, "flip")(xn).softmax(-1) for m in members]).mean(0)
        ref = torch.stack([m.net(uint8_view(x, *v)).softmax(1) for m in members for v in TTA_VIEWS["flip"]]).mean(0)
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(out.sum(1), torch.ones(len(x)))


def test_bad_mode_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="tta 'mirror'.*none, flip, flip_shift"):
        list(predict_logits_batches(Spy(), images(), tta="mirror"))
