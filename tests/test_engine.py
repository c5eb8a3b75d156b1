"""Engine: learning, metric names, exact resume, unaugmented validation, divergence, config checks, CLI."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import TinyNet
from helpers.runs import roundtrip, untimed
from trainables import engine
from trainables.__main__ import main, read_config_file
from trainables.config import TrainConfig, config_fields
from trainables.data import load_arrays, normalize
from trainables.engine import evaluate, prepare_split, train
from trainables.errors import ConfigError, DivergedError
from trainables.optim import build_optimizer, build_scheduler

STRONG_AUG = dict(crop_padding=4, hflip=True, auto_augment="autoaugment", color_jitter=0.4, mixup_alpha=0.4,
                  random_erasing=0.25)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- learning and metrics -------------------------------------------------------------------------

def test_beats_chance_on_learnable_data(tiny_config):
    result = train(tiny_config(epochs=3))
    assert result.metrics["val_acc"] > 0.5  # 10 classes: chance is 0.1
    assert result.history[-1] == result.metrics and len(result.history) == 3


def test_metric_names(tiny_config, synth_arrays):
    extra = {"ood_val": (synth_arrays["x_test"], synth_arrays["y_test"])}
    reported = []
    result = train(tiny_config(epochs=1), lambda m, c: reported.append(m), extra_val=extra)
    assert list(result.metrics) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "ood_val_loss",
                                    "ood_val_acc", "lr", "epoch_time_s", "images_per_s"]
    assert reported == result.history and result.metrics["epoch"] == 1
    # plain finite numbers: what JSON, the CSVs and Tune take (a tensor or numpy scalar would not survive this)
    assert json.loads(json.dumps(result.metrics)) == result.metrics
    assert all(math.isfinite(v) for v in result.metrics.values())
    no_val = train(tiny_config(epochs=1, val_fraction=0)).metrics
    assert not any(k.startswith("val_") for k in no_val)


def test_data_forms(tiny_config, synth_npz):
    cfg = tiny_config(epochs=1)
    arrays = load_arrays(synth_npz)
    runs = [train(cfg, data=d).metrics for d in (None, synth_npz, arrays, prepare_split(cfg, arrays))]
    assert all(untimed([m]) == untimed([runs[0]]) for m in runs)
    with pytest.raises(TypeError):
        train(cfg, data=[1, 2])


# ---- resume ----------------------------------------------------------------------------------------

RESUME_CASES = {
    "sgd_nesterov_cosine_warmup": dict(scheduler="cosine", warmup_epochs=1, nesterov=True),
    "adamw_onecycle": dict(optimizer="adamw", lr=0.003, scheduler="onecycle", weight_decay=0.05),
    "step_freeze_lr_mult_smoothing": dict(scheduler="step", step_size=1, gamma=0.5, freeze_epochs=1,
                                          backbone_lr_mult=0.1, label_smoothing=0.1),
    "augmented": {**STRONG_AUG, "subset": 160},  # augmentation is slow on CPU: fewer images
    "augmix_jsd_cutmix": dict(augmix=True, augmix_width=2, cutmix_alpha=1.0, crop_padding=4, hflip=True, subset=160),
    "augmix_no_jsd": dict(augmix=True, augmix_jsd=False, augmix_depth=2, augmix_severity=6, subset=160),
}


@pytest.mark.parametrize("case", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_resume_equals_uninterrupted(tiny_config, case):
    cfg = tiny_config(epochs=3, **case)
    saved = {}
    straight = train(cfg, lambda m, c: saved.setdefault(m["epoch"], roundtrip(c)))
    resumed = train(cfg, checkpoint=saved[1])
    assert untimed(resumed.history) == untimed(straight.history)
    theirs = resumed.model.state_dict()
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, theirs[name]), name
    assert saved[3]["epoch"] == 3 and len(saved[3]["history"]) == 3 and saved[3]["config"] == cfg.to_dict()


def test_resume_refuses_a_different_config(tiny_config):
    saved = []
    train(tiny_config(epochs=1), lambda m, c: saved.append(c))
    with pytest.raises(ConfigError, match="lr"):
        train(tiny_config(epochs=1, lr=0.01), checkpoint=saved[0])
    train(tiny_config(epochs=1, eval_batch_size=7), checkpoint=saved[0])  # runtime-only keys may differ


# ---- validation is never augmented -------------------------------------------------------------

class SpyNet(TinyNet):
    """Records every input seen in eval mode (validation), in order."""

    seen: list = []

    def forward(self, x):
        if not self.training:
            SpyNet.seen.append(x.detach().clone())
        return super().forward(x)


@pytest.mark.parametrize("aug", [{}, STRONG_AUG, {"augmix": True}], ids=["plain", "augmented", "augmix"])
def test_validation_images_are_normalized_only(tiny_config, add_model, aug):
    SpyNet.seen = []
    cfg = tiny_config(model=add_model("spy_net", SpyNet), epochs=1, eval_batch_size=16, subset=160, **aug)
    result = train(cfg)
    val = prepare_split(cfg)
    expected = normalize(torch.from_numpy(val.x_val).permute(0, 3, 1, 2))
    assert torch.equal(torch.cat(SpyNet.seen), expected)
    again = evaluate(result.model, val.x_val, val.y_val, 16)
    assert again == {"loss": result.metrics["val_loss"], "acc": result.metrics["val_acc"]}


# ---- divergence --------------------------------------------------------------------------------

class BombNet(TinyNet):
    """Finite for two training batches, then `bad` (NaN or inf) logits: a forced divergence."""

    bad = float("nan")

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls >= 3:
                return out * self.bad
        return out


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_loss_raises_diverged_before_reporting(tiny_config, add_model, monkeypatch, bad):
    monkeypatch.setattr(BombNet, "bad", bad)
    reported = []
    with pytest.raises(DivergedError) as err:
        train(tiny_config(model=add_model("bomb_net", BombNet)), lambda m, c: reported.append(m))
    assert (err.value.epoch, err.value.step) == (1, 3) and "diverged" in str(err.value)
    assert reported == []


# ---- optimisation pieces ------------------------------------------------------------------------

def _lrs(cfg: TrainConfig, steps: int) -> list[list[float]]:
    model = TinyNet()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps)
    out = []
    for _ in range(cfg.epochs * steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def test_param_groups_head_and_backbone(tiny_model):
    cfg = TrainConfig.from_dict(model=tiny_model, lr=0.1, backbone_lr_mult=0.1)
    opt = build_optimizer(TinyNet(), cfg)
    assert [g["lr"] for g in opt.param_groups] == [0.1, pytest.approx(0.01)]
    grouped = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert grouped == sum(p.numel() for p in TinyNet().parameters())


def test_schedules(tiny_model):
    base = dict(model=tiny_model, lr=0.1, epochs=4)
    cos = [g[0] for g in _lrs(TrainConfig.from_dict(base, scheduler="cosine", warmup_epochs=1), 10)]
    assert cos[0] == pytest.approx(0.01) and cos[9] == pytest.approx(0.1) and max(cos) == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(cos[9:], cos[10:])) and cos[-1] < 0.001
    step = [g[0] for g in _lrs(TrainConfig.from_dict(base, scheduler="step", step_size=2, gamma=0.1), 10)]
    assert step[:20] == [pytest.approx(0.1)] * 20 and step[20:] == [pytest.approx(0.01)] * 20
    one = _lrs(TrainConfig.from_dict(base, scheduler="onecycle", pct_start=0.25, backbone_lr_mult=0.5), 10)
    peak = max(range(40), key=lambda i: one[i][0])
    assert one[peak] == [pytest.approx(0.1), pytest.approx(0.05)] and 8 <= peak <= 11 and one[-1][0] < 1e-4
    none = [g[0] for g in _lrs(TrainConfig.from_dict(base, scheduler="none"), 10)]
    assert none == [pytest.approx(0.1)] * 40


def test_freeze_epochs_train_only_the_head(tiny_config):
    cfg = tiny_config(epochs=2, freeze_epochs=1)
    torch.manual_seed(cfg.seed)
    init = TinyNet().state_dict()
    saved = {}
    train(cfg, lambda m, c: saved.setdefault(m["epoch"], c))
    for epoch, backbone_moved in ((1, False), (2, True)):
        state = saved[epoch]["model"]
        assert torch.equal(state["features.0.weight"], init["features.0.weight"]) != backbone_moved
        assert not torch.equal(state["classifier.weight"], init["classifier.weight"])


@pytest.mark.parametrize("bf16", [True, False], ids=["ampere", "p100"])
def test_auto_precision_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16(monkeypatch, bf16):
    # A P100 'supports' bf16 only by emulation (slow): the check must not count that.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16 or including_emulation)
    want = torch.bfloat16 if bf16 else torch.float16
    assert engine.amp_dtype("auto", torch.device("cuda")) == want
    assert engine.amp_dtype("auto", torch.device("cpu")) is None
    assert engine.amp_dtype("fp32", torch.device("cuda")) is None


def test_jsd_weight_enters_the_loss(tiny_config):
    kw = dict(epochs=1, augmix=True, augmix_width=1, subset=160)
    plain = train(tiny_config(augmix_jsd_weight=0.0, **kw)).metrics
    jsd = train(tiny_config(augmix_jsd_weight=12.0, **kw)).metrics
    assert math.isfinite(jsd["train_loss"]) and jsd["train_loss"] != plain["train_loss"]


def test_model_follows_stem_and_input_size():
    cfg = TrainConfig.from_dict(model="resnet18", stem="cifar", input_size=48, device="cpu")
    model = engine.build_run(cfg, 1).model
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))  # the stem
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[-2:], o.shape[-2:])))
    model.eval()(torch.zeros(1, 3, 32, 32))
    assert seen == [((48, 48), (48, 48))]  # upsampled to input_size, then the CIFAR stem keeps the resolution


@pytest.mark.parametrize("runtime", [dict(precision="bf16"), dict(precision="fp16"), dict(channels_last=False),
                                     dict(threads=1), pytest.param(dict(compile=True), marks=pytest.mark.slow)])
def test_runtime_options_train(tiny_config, runtime):
    m = train(tiny_config(epochs=1, **runtime)).metrics
    assert math.isfinite(m["train_loss"]) and 0 <= m["val_acc"] <= 1


# ---- every config check fails clearly -----------------------------------------------------------

BAD_CONFIGS = [
    ({"model": "resnet51"}, "model"), ({"optimizer": "adam"}, "optimizer"), ({"scheduler": "linear"}, "scheduler"),
    ({"auto_augment": "augmix"}, "auto_augment"), ({"precision": "fp8"}, "precision"), ({"device": "tpu"}, "device"),
    ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"lr": 0}, "lr"), ({"lr": 11}, "lr"), ({"momentum": 1.0}, "momentum"), ({"momentum": -0.1}, "momentum"),
    ({"weight_decay": -1e-4}, "weight_decay"), ({"step_size": 0}, "step_size"), ({"gamma": 0}, "gamma"),
    ({"gamma": 1.5}, "gamma"), ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs"), ({"pct_start": 0}, "pct_start"),
    ({"pct_start": 1}, "pct_start"), ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"mixup_alpha": -0.1}, "mixup_alpha"), ({"cutmix_alpha": 11}, "cutmix_alpha"),
    ({"crop_padding": 17}, "crop_padding"), ({"randaugment_ops": 0}, "randaugment_ops"),
    ({"randaugment_magnitude": 31}, "randaugment_magnitude"), ({"color_jitter": 1.5}, "color_jitter"),
    ({"random_erasing": 1.1}, "random_erasing"), ({"corruption_aug": -0.1}, "corruption_aug"),
    ({"freeze_epochs": 6, "epochs": 5}, "freeze_epochs"), ({"backbone_lr_mult": -1}, "backbone_lr_mult"),
    ({"threads": -1}, "threads"), ({"seed": -1}, "seed"), ({"val_fraction": 0.95}, "val_fraction"),
    ({"subset": -1}, "subset"), ({"nesterov": True, "optimizer": "adamw"}, "nesterov"),
    ({"nesterov": True, "momentum": 0}, "nesterov"), ({"weights_path": "w.pth"}, "weights_path"),
    ({"pretrained": True, "model": "simple_cnn"}, "pretrained"),
    ({"stem": "tiny"}, "stem"), ({"stem": "cifar", "model": "simple_cnn"}, "stem"),
    ({"stem": "imagenet", "model": "resnet18_cifar"}, "stem"), ({"input_size": 1025}, "input_size"),
    ({"input_size": 16, "model": "resnet50"}, "input_size"), ({"input_size": 64, "model": "bn_cnn"}, "input_size"),
    ({"augmix_severity": 11}, "augmix_severity"), ({"augmix_width": 0}, "augmix_width"),
    ({"augmix_depth": 11}, "augmix_depth"), ({"augmix_alpha": 0}, "augmix_alpha"),
    ({"augmix_jsd_weight": 101}, "augmix_jsd_weight"),
    ({"ema_decay": 1.0}, "ema_decay"), ({"ema_decay": -0.1}, "ema_decay"), ({"swa_epochs": -1}, "swa_epochs"),
    ({"swa_epochs": 5, "epochs": 5}, "swa_epochs"), ({"swa_lr": -0.1, "swa_epochs": 1}, "swa_lr"),
    ({"swa_lr": 0.01}, "swa_lr"), ({"ema_decay": 0.99, "swa_epochs": 1}, "swa_epochs"),
    ({"clip_grad_norm": -1}, "clip_grad_norm"),
    # coercion and unknown keys
    ({"learning_rate": 0.1}, "learning_rate"), ({"lr": "fast"}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"epochs": 2.5}, "epochs"), ({"hflip": "maybe"}, "hflip"), ({"model": 3}, "model"),
]


@pytest.mark.parametrize("bad,key", BAD_CONFIGS, ids=[f"{k}={list(b.values())[0]!r}" for b, k in BAD_CONFIGS])
def test_bad_config_value_is_a_clear_error(bad, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        train(bad)  # train() accepts a raw dict and validates it before touching data


PROBES = {"int": (-1, 0, 10**9), "float": (-1.0, 0.0, 1.0, 1e9), "str": ("bogus",), "bool": (True, False)}


def test_bad_config_table_covers_every_check():
    """Every key that some value makes TrainConfig reject, found by trying values on each field (not by reading
    the source), has a case above: so every check's message is tested to name its key."""
    rejected = set()
    for key, typ in config_fields().items():
        for value in PROBES[typ]:
            try:
                TrainConfig.from_dict({key: value})
            except ConfigError as err:
                rejected.add(err.key)
    assert len(rejected) > 30 and rejected <= {k for _, k in BAD_CONFIGS}, rejected - {k for _, k in BAD_CONFIGS}


@pytest.mark.parametrize("bad,words", [
    ({"ema_decay": 1.0}, ("ema_decay", "1.0", "between 0 and 1")),
    ({"swa_epochs": 5, "epochs": 5}, ("swa_epochs", "5", "longer than the run", "epochs=5", "0 to 4")),
    ({"ema_decay": 0.99, "swa_epochs": 1}, ("ema_decay", "swa_epochs", "choose one")),
    ({"clip_grad_norm": -1}, ("clip_grad_norm", "-1", "allowed")),
], ids=["ema_decay", "swa_epochs", "both", "clip"])
def test_averaging_and_clipping_errors_say_what_is_allowed(bad, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(bad)
    assert all(w in str(err.value) for w in words), str(err.value)


# ---- the CLI -----------------------------------------------------------------------------------

def _cli(*args) -> list[str]:
    return ["--set", "model=tiny_net", "--set", "epochs=2", "--set", "batch_size=32", "--set", "device=cpu",
            "--set", "crop_padding=0", "--set", "hflip=false", *args]


def test_cli_end_to_end(tiny_model, synth_npz, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--data", synth_npz, "--out", str(out), *_cli()]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "completed" and len(record["history"]) == 2
    assert 0 <= record["test_acc"] <= 1 and record["seed"] == 0 and record["commit"]
    assert len(record["data_fingerprint"]) == 64 and record["config"]["data"] == os.path.abspath(synth_npz)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    assert "test_acc" in capsys.readouterr().out
    # a second run into the same folder must not silently overwrite it
    assert main(["--data", synth_npz, "--out", str(out), *_cli()]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_cli_resume_continues(tiny_model, synth_npz, tmp_path, monkeypatch):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert main(["--data", synth_npz, "--out", str(straight), *_cli()]) == 0
    real = engine.train_one_epoch

    def crash_in_epoch_2(run, x, y, epoch, progress=None):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(run, x, y, epoch, progress)

    monkeypatch.setattr(engine, "train_one_epoch", crash_in_epoch_2)
    # Ctrl-C: exit status 130 and a line saying --resume continues (trainables.cli), the last epoch kept
    assert main(["--data", synth_npz, "--out", str(broken), *_cli()]) == 130
    assert json.loads((broken / "metrics.json").read_text())["status"] == "running"
    monkeypatch.setattr(engine, "train_one_epoch", real)
    assert main(["--data", synth_npz, "--out", str(broken), "--resume", *_cli()]) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (straight, broken))
    assert untimed(a["history"]) == untimed(b["history"]) and a["test_acc"] == b["test_acc"]


def test_cli_diverged(synth_npz, tmp_path, add_model, capsys):
    add_model("tiny_net", BombNet)
    assert main(["--data", synth_npz, "--out", str(tmp_path), *_cli()]) == 3
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "diverged" and "diverged" in record["message"]
    assert "diverged" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--set", "lr=fast"], ["--set", "lr"], ["--set", "learning_rate=0.1"], ["--config", "missing.json"],
    ["--data", "missing.npz"], ["--bogus"], [],
], ids=["bad-value", "no-equals", "unknown-key", "no-config-file", "no-data-file", "bad-flag", "no-data"])
def test_cli_bad_input_is_one_line_exit_2(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(["--out", str(tmp_path / "o"), *args])
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err


def test_cli_config_files(tmp_path, synth_npz):
    (tmp_path / "c.json").write_text('{"lr": "1e-4", "epochs": 3}')  # numeric strings are coerced
    assert TrainConfig.from_dict(read_config_file(str(tmp_path / "c.json"))).lr == 1e-4
    (tmp_path / "c.yaml").write_text("lr: 0.1\n")
    with pytest.raises(ConfigError, match="as JSON"):
        read_config_file(str(tmp_path / "c.yaml"))
    (tmp_path / "m.json").write_text(json.dumps({"status": "completed", "config": {"lr": 0.5}}))
    assert read_config_file(str(tmp_path / "m.json")) == {"lr": 0.5}  # a metrics.json retrains as is
    (tmp_path / "bad.json").write_text("{lr: ")
    with pytest.raises(ConfigError, match="bad.json"):
        read_config_file(str(tmp_path / "bad.json"))


def test_cli_subprocess_real_model_and_bad_input(synth_npz, tmp_path):
    def run(*a):
        return subprocess.run([sys.executable, "-m", "trainables", *a], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    ok = run("--data", synth_npz, "--out", str(tmp_path / "ok"), "--set", "model=small_cnn", "--set", "epochs=1",
             "--set", "subset=64", "--set", "batch_size=32", "--set", "device=cpu", "--set", "threads=1")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["status"] == "completed"
    bad = run("--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "nope.npz" in bad.stderr


def test_trainables_imports_no_sweep_libraries():
    code = ("import sys, trainables.engine, trainables.data, trainables.__main__; "
            "print([m for m in ('ray', 'optuna', 'wandb', 'yaml') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
