"""Population Based Training: a run continued from another run's checkpoint under new values of the mutable keys
(train(..., mutated=True)); the torch-free table of what may mutate."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import TinyNet
from helpers.runs import assert_same_state, roundtrip, untimed
from source_scan import ROOT
from torch.optim.optimizer import register_optimizer_step_pre_hook

from trainables.config import config_fields
from trainables.engine import prepare_split, steps_per_epoch, train
from trainables.errors import ConfigError
from trainables.mutable import MUTABLE_KEYS, RUNTIME_KEYS, STRUCTURAL, mutation_error, why_not_mutable
from trainables.optim import build_optimizer, build_scheduler

BASE = dict(epochs=3, scheduler="cosine", warmup_epochs=1, backbone_lr_mult=0.1, lr=0.05, weight_decay=5e-4)


def saving(into: dict):
    return lambda metrics, checkpoint: into.setdefault(metrics["epoch"], roundtrip(checkpoint))


def first_step_lrs(run) -> list[float]:
    """The param groups' LRs at the first optimizer step of `run()`, and their weight decay and momentum."""
    seen = []

    def record(opt, args, kwargs):
        seen.append([(g["lr"], g["weight_decay"], g.get("momentum")) for g in opt.param_groups])

    hook = register_optimizer_step_pre_hook(record)
    try:
        run()
    finally:
        hook.remove()
    return seen[0]


def schedule_lrs(cfg, step: int) -> list[float]:
    """What the configured schedule gives each group at `step` (counted from 0), from a fresh optimizer."""
    opt = build_optimizer(TinyNet(), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch(len(prepare_split(cfg).y_train), cfg.batch_size))
    for _ in range(step):
        opt.step()
        sched.step()
    return [g["lr"] for g in opt.param_groups]


@pytest.fixture
def donor(tiny_config):
    """A 3-epoch run's checkpoints, by epoch."""
    saved = {}
    train(tiny_config(**BASE), saving(saved))
    return saved


def test_continued_under_new_lr_weight_decay_momentum_and_mixup(tiny_config, donor):
    new = tiny_config(**{**BASE, "lr": 0.1, "backbone_lr_mult": 0.3, "weight_decay": 1e-3, "momentum": 0.8,
                         "mixup_alpha": 0.4})
    saved = {}
    lrs = first_step_lrs(lambda: train(new, saving(saved), checkpoint=donor[1], mutated=True))
    # the schedule continues at the same step, scaled to the new base lr and each group's new multiplier
    step = steps_per_epoch(len(prepare_split(new).y_train), new.batch_size)
    assert [lr for lr, _, _ in lrs] == pytest.approx(schedule_lrs(new, step), rel=1e-12)
    assert [(wd, m) for _, wd, m in lrs] == [(1e-3, 0.8)] * 2  # head and backbone groups
    for epoch in (2, 3):  # it trains on, under the new values, and its checkpoints say so
        groups = saved[epoch]["optimizer"]["param_groups"]
        assert [(g["weight_decay"], g["momentum"]) for g in groups] == [(1e-3, 0.8)] * 2
        assert saved[epoch]["config"] == new.to_dict()
    assert [m["epoch"] for m in saved[3]["history"]] == [1, 2, 3] and saved[3]["history"][0] == donor[1]["history"][0]
    # mixup applies from the next step: the same continuation without it trains differently
    plain = train(tiny_config(**{**BASE, "lr": 0.1, "backbone_lr_mult": 0.3, "weight_decay": 1e-3, "momentum": 0.8}),
                  checkpoint=donor[1], mutated=True)
    assert plain.history[1]["train_loss"] != saved[2]["history"][1]["train_loss"]


def test_mutated_with_nothing_changed_is_a_plain_exact_resume(tiny_config, donor):
    """Also: continuing from a checkpoint leaves it as it was (the optimizer's state is not the caller's tensors),
    so the population can continue one checkpoint twice."""
    cfg = tiny_config(**BASE)
    before = roundtrip(donor[1])
    plain, mutated = (train(cfg, checkpoint=donor[1], mutated=m) for m in (False, True))
    assert untimed(plain.history) == untimed(mutated.history)
    assert_same_state(plain.model.state_dict(), mutated.model.state_dict())
    assert_same_state(donor[1]["optimizer"]["state"][0], before["optimizer"]["state"][0])


def test_onecycle_continues_scaled_and_keeps_cycling_momentum(tiny_config):
    base = dict(epochs=3, optimizer="sgd", scheduler="onecycle", lr=0.05, backbone_lr_mult=0.5)
    saved = {}
    train(tiny_config(**base), saving(saved))
    new = tiny_config(**{**base, "lr": 0.02, "momentum": 0.5})
    lrs = first_step_lrs(lambda: train(new, checkpoint=saved[1], mutated=True))
    step = steps_per_epoch(len(prepare_split(new).y_train), new.batch_size)
    assert [lr for lr, _, _ in lrs] == pytest.approx(schedule_lrs(new, step), rel=1e-12)
    assert all(0.85 <= m <= 0.95 for _, _, m in lrs)  # onecycle's own momentum, as in a fresh onecycle run


def test_ema_and_swa_state_carry_over_and_swalr_keeps_swa_lr(tiny_config):
    saved = {}
    train(tiny_config(**BASE, ema_decay=0.9), saving(saved))
    again = {}
    train(tiny_config(**{**BASE, "lr": 0.1}, ema_decay=0.9), saving(again), checkpoint=saved[1], mutated=True)
    assert int(again[3]["ema"]["n_averaged"]) == int(saved[3]["ema"]["n_averaged"])  # one average, continued
    swa = dict(BASE, swa_epochs=2, swa_lr=0.01)
    saved = {}
    train(tiny_config(**swa), saving(saved))
    new = tiny_config(**{**swa, "lr": 0.1, "backbone_lr_mult": 0.2})
    again = {}
    lrs = first_step_lrs(lambda: train(new, saving(again), checkpoint=saved[2], mutated=True))
    assert [lr for lr, _, _ in lrs] == pytest.approx([0.01, 0.01 * 0.2])  # SWALR's LR, at the new multiplier
    assert int(again[3]["swa"]["n_averaged"]) == 2


@pytest.mark.parametrize("change", [dict(batch_size=16), dict(model="small_cnn"), dict(scheduler="step"),
                                    dict(ema_decay=0.9)], ids=["batch_size", "model", "scheduler", "ema_decay"])
def test_a_structural_change_is_refused_naming_the_key(tiny_config, donor, change):
    (key, value), = change.items()
    with pytest.raises(ConfigError) as err:
        train(tiny_config(**{**BASE, **change}), checkpoint=donor[1], mutated=True)
    assert err.value.key == key and f"{key} cannot mutate under PBT" in str(err.value)


def test_without_mutated_a_mutable_key_is_still_refused(tiny_config, donor):
    with pytest.raises(ConfigError, match="lr=0.1") as err:
        train(tiny_config(**{**BASE, "lr": 0.1}), checkpoint=donor[1])
    assert err.value.key == "lr"


def test_momentum_cannot_cross_zero(tiny_config, donor):
    with pytest.raises(ConfigError, match="momentum cannot mutate from 0.9 to 0.0"):
        train(tiny_config(**{**BASE, "momentum": 0.0}), checkpoint=donor[1], mutated=True)
    assert mutation_error("momentum", 0.9, 0.5) is None


# ---- the table --------------------------------------------------------------------------------------------

def test_every_config_key_is_mutable_runtime_or_structural_with_a_reason():
    keys = set(config_fields())
    groups = [set(MUTABLE_KEYS), set(RUNTIME_KEYS), set(STRUCTURAL)]
    assert set().union(*groups) == keys and sum(map(len, groups)) == len(keys)  # each in exactly one
    assert all(why_not_mutable(k) is None for k in MUTABLE_KEYS + RUNTIME_KEYS)
    assert why_not_mutable("batch_size") == ("batch_size cannot mutate under PBT: it changes the steps per epoch "
                                             "and the schedule's length")
    with pytest.raises(ConfigError, match="learning_rate"):
        why_not_mutable("learning_rate")


def test_the_table_imports_no_torch():
    code = ("import sys; from trainables.mutable import why_not_mutable; why_not_mutable('model'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
