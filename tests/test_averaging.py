"""EMA, SWA and gradient clipping in the engine: what each computes, exact resume from any epoch, and the weights
a checkpoint predicts with."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook
from conftest import TinyNet
from helpers.runs import assert_same_state, roundtrip, untimed

from trainables.checkpoint import inference_weights
from trainables.data import normalize
from trainables.engine import evaluate, prepare_split, train
from trainables.models import model_from_config


def saving(into: dict):
    return lambda metrics, checkpoint: into.setdefault(metrics["epoch"], roundtrip(checkpoint))


def loaded(cfg, state: dict) -> torch.nn.Module:
    model = model_from_config(cfg)
    model.load_state_dict(state)
    return model


# ---- exact resume from every epoch ----------------------------------------------------------------------

RESUME_CASES = {
    "ema_augmix_jsd_mixup": dict(ema_decay=0.9, augmix=True, augmix_width=1, mixup_alpha=0.4, subset=160),
    "ema_freeze_lr_mult": dict(ema_decay=0.95, freeze_epochs=1, backbone_lr_mult=0.1),
    "swa_swalr_freeze_lr_mult": dict(swa_epochs=2, swa_lr=0.01, freeze_epochs=1, backbone_lr_mult=0.1),
    "swa_schedule_continues_cutmix": dict(swa_epochs=1, cutmix_alpha=1.0, crop_padding=4, hflip=True),
    "swa_nchw_step": dict(swa_epochs=2, swa_lr=0.02, channels_last=False, scheduler="step", step_size=1),
    "clip_adamw_onecycle": dict(clip_grad_norm=0.5, optimizer="adamw", lr=0.003, scheduler="onecycle"),
    "clip_fp16_scaler": dict(clip_grad_norm=1.0, precision="fp16"),
}


@pytest.mark.parametrize("case", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_resume_from_any_epoch_equals_uninterrupted(tiny_config, case):
    cfg = tiny_config(epochs=3, **case)
    saved = {}
    straight = train(cfg, saving(saved))
    for epoch in (1, 2):
        resumed = train(cfg, checkpoint=saved[epoch], report=saving(again := {}))
        assert untimed(resumed.history) == untimed(straight.history), epoch
        assert_same_state(resumed.model.state_dict(), straight.model.state_dict())
        assert_same_state(inference_weights(again[3]), inference_weights(saved[3]))


# ---- EMA ----------------------------------------------------------------------------------------------

def test_ema_is_the_moving_average_of_the_weights_and_buffers_after_every_step(tiny_config, add_model):
    """Independently of the engine: the weights (and batch-norm buffers) after each optimizer step, averaged."""
    built, after_steps = [], []
    name = add_model("recorded_net", lambda: built.append(TinyNet()) or built[-1])
    decay = 0.9
    cfg = tiny_config(model=name, ema_decay=decay, epochs=2)

    def record(optimizer, args, kwargs):
        after_steps.append({k: v.detach().clone() for k, v in built[0].state_dict().items()})

    hook = register_optimizer_step_post_hook(record)
    try:
        saved = {}
        result = train(cfg, saving(saved))
    finally:
        hook.remove()
    expected = dict(after_steps[0])
    for state in after_steps[1:]:
        expected = {k: decay * e + (1 - decay) * state[k] if e.is_floating_point() else e for k, e in expected.items()}
    ema = result.model.state_dict()
    for k, value in expected.items():
        if value.is_floating_point():
            assert torch.allclose(ema[k], value, rtol=1e-4, atol=1e-6), k
    raw = saved[2]["model"]
    assert not torch.allclose(ema["classifier.weight"], raw["classifier.weight"])  # not the trained weights
    assert not torch.allclose(ema["features.1.running_mean"], raw["features.1.running_mean"])  # buffers too
    # every epoch's validation measured the averaged weights, which the checkpoint predicts with
    val = prepare_split(cfg)
    for epoch in (1, 2):
        ev = evaluate(loaded(cfg, inference_weights(saved[epoch])), val.x_val, val.y_val)
        assert (ev["acc"], ev["loss"]) == pytest.approx((saved[epoch]["history"][-1]["val_acc"],
                                                         saved[epoch]["history"][-1]["val_loss"]))
    assert_same_state(loaded(cfg, inference_weights(saved[2])).state_dict(), ema)


# ---- SWA ----------------------------------------------------------------------------------------------

def test_swa_averages_the_last_epochs_and_recomputes_batch_norm_on_the_training_images(tiny_config):
    cfg = tiny_config(epochs=3, swa_epochs=2)
    saved = {}
    result = train(cfg, saving(saved))
    swa = result.model.state_dict()
    for k in ("features.0.weight", "classifier.weight", "classifier.bias"):  # the mean of epochs 2 and 3's ends
        assert torch.allclose(swa[k], (saved[2]["model"][k] + saved[3]["model"][k]) / 2, atol=1e-6), k
    # BN statistics of the averaged weights, on the training images normalised as training does, unaugmented,
    # in batches of batch_size (update_bn weighs each batch equally)
    split = prepare_split(cfg)
    x = normalize(torch.from_numpy(split.x_train).permute(0, 3, 1, 2))
    with torch.no_grad():
        conv = result.model.features[0]
        means = [conv(xb).mean((0, 2, 3)) for xb in x.split(cfg.batch_size)]
    assert torch.allclose(swa["features.1.running_mean"], torch.stack(means).mean(0), atol=1e-5)
    # validation: the raw weights before the SWA epochs, the averaged ones on them
    val = prepare_split(cfg)
    first = evaluate(loaded(cfg, saved[1]["model"]), val.x_val, val.y_val)
    assert (first["acc"], first["loss"]) == pytest.approx((result.history[0]["val_acc"], result.history[0]["val_loss"]))
    assert inference_weights(saved[1]) is saved[1]["model"]  # nothing averaged yet
    last = evaluate(result.model, val.x_val, val.y_val)
    assert (last["acc"], last["loss"]) == pytest.approx((result.metrics["val_acc"], result.metrics["val_loss"]))
    assert_same_state(loaded(cfg, inference_weights(saved[3])).state_dict(), swa)


def test_swa_lr_holds_the_swa_epochs_at_swa_lr_per_group(tiny_config):
    swa_lr, mult = 0.01, 0.5
    saved = {}
    result = train(tiny_config(epochs=3, swa_epochs=2, swa_lr=swa_lr, backbone_lr_mult=mult), saving(saved))
    # annealed over the first SWA epoch's steps, held after: from then on every group at swa_lr x its multiplier
    for epoch in (2, 3):
        assert [g["lr"] for g in saved[epoch]["optimizer"]["param_groups"]] == pytest.approx([swa_lr, swa_lr * mult])
    assert result.history[2]["lr"] == pytest.approx(swa_lr)
    plain = train(tiny_config(epochs=3))
    assert result.history[0]["lr"] == plain.history[0]["lr"]  # before the SWA epochs: the configured schedule
    continued = train(tiny_config(epochs=3, swa_epochs=2))  # swa_lr 0: the configured schedule throughout
    assert [m["lr"] for m in continued.history] == [m["lr"] for m in plain.history]


# ---- gradient clipping --------------------------------------------------------------------------------

def test_clip_grad_norm_bounds_every_step(tiny_config):
    """Plain SGD at a constant LR: each step moves the weights by lr x the clipped gradient, so the whole
    run moves them at most steps x lr x clip_grad_norm."""
    kw = dict(epochs=1, momentum=0.0, weight_decay=0.0, scheduler="none", lr=0.05)
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in TinyNet().parameters()])
    clip = 0.01
    cfg = tiny_config(**kw)
    steps = len(prepare_split(cfg).y_train) // cfg.batch_size

    def moved(**extra):
        model = train(tiny_config(**kw, **extra)).model
        return float((torch.cat([p.detach().flatten() for p in model.parameters()]) - start).norm())

    assert moved(clip_grad_norm=clip) <= steps * kw["lr"] * clip * (1 + 1e-4)
    assert moved() > steps * kw["lr"] * clip  # the bound is not one the run meets anyway


def test_averaged_model_trains_with_amp_channels_last_and_loads_as_the_config_s_model(tiny_config):
    for averaging in (dict(ema_decay=0.9), dict(swa_epochs=1, swa_lr=0.01)):
        cfg = tiny_config(epochs=2, precision="bf16", **averaging)
        result = train(cfg)
        model = loaded(cfg, result.model.state_dict())  # a plain module of the config's architecture
        x = normalize(torch.from_numpy(prepare_split(cfg).x_val[:8]).permute(0, 3, 1, 2))
        with torch.no_grad():
            assert torch.allclose(model.eval()(x), result.model.eval()(x), atol=1e-5)
        assert F.softmax(model(x), 1).isfinite().all()
