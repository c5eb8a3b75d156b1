"""The final models: the retrain's config (the trial's, with the retrain's epochs, data, seed, threads and a schedule
that fits), when a trial's own weights are reused, a PBT schedule cut into segments, ensemble selection."""
import numpy as np
import pytest

from sweep.ensemble import Member, accuracy, greedy
from sweep.retrain import _segments, cpus, retrain_config, reusable_checkpoint
from sweep.space.sections import Retrain

BEST = {"model": "small_cnn", "epochs": 4, "scheduler": "cosine", "warmup_epochs": 2, "freeze_epochs": 3, "seed": 0,
        "threads": 1}


@pytest.mark.parametrize("epochs,on_val,warmup,freeze,val", [(1, True, 0, 1, 0.0), (2, True, 1, 2, 0.0),
                                                               (10, False, 2, 3, 0.1)])
def test_retrain_config_fits_the_schedule(epochs, on_val, warmup, freeze, val):
    cfg = retrain_config(BEST, Retrain(epochs=epochs, train_on_val=on_val), seed=7)
    assert (cfg.epochs, cfg.warmup_epochs, cfg.freeze_epochs, cfg.val_fraction, cfg.seed) == \
        (epochs, warmup, freeze, val, 7)


@pytest.mark.parametrize("trial_epochs,step,retrain_epochs,want", [(6, 2, 10, 3), (30, 10, 50, 17), (30, 10, 30, 10),
                                                                     (10, 3, 2, 1), (4, 1, 40, 10)])
def test_a_step_schedule_decays_as_often_in_the_retrain_as_in_the_trial(trial_epochs, step, retrain_epochs, want):
    """StepLR's step is in epochs: a longer (or shorter) retrain scales it, so the lr ends where the trial's did."""
    config = dict(BEST, scheduler="step", epochs=trial_epochs, step_size=step)
    cfg = retrain_config(config, Retrain(epochs=retrain_epochs), seed=0)
    assert (cfg.epochs, cfg.step_size) == (retrain_epochs, want)
    assert cfg.epochs // cfg.step_size in {trial_epochs // step - 1, trial_epochs // step, trial_epochs // step + 1}


def test_the_retrain_uses_the_machine_it_has():
    """The trials' threads: 1 (two trials on two cores) is not the retrain's: it runs alone. An explicit
    retrain.threads (--set retrain.threads=1) still wins."""
    assert retrain_config(BEST, Retrain(epochs=2), seed=0).threads == cpus() >= 1
    assert retrain_config(BEST, Retrain(epochs=2, threads=1), seed=0).threads == 1


@pytest.mark.parametrize("retrain,seed,status,reused", [
    (Retrain(epochs=4, train_on_val=False), 0, "completed", True),   # exactly what the trial did
    (Retrain(epochs=4, train_on_val=True), 0, "completed", False),   # more data
    (Retrain(epochs=5, train_on_val=False), 0, "completed", False),  # more epochs
    (Retrain(epochs=4, train_on_val=False), 1, "completed", False),  # another seed
    (Retrain(epochs=4, train_on_val=False), 0, "stopped_early", False),
])
def test_trial_checkpoint_reused_only_for_identical_work(retrain, seed, status, reused):
    from trainables.config import TrainConfig

    config = TrainConfig.from_dict(BEST).to_dict()
    member = Member("t", 1.0, config, "/some/ckpt", status)
    cfg = retrain_config(config, retrain, seed=seed)
    assert (reusable_checkpoint(member, cfg) is not None) == reused


def test_a_schedule_is_cut_where_its_values_change():
    steps = [(1, {"lr": 0.1}, "a"), (2, {"lr": 0.1}, "a"), (3, {"lr": 0.08}, "b"), (4, {"lr": 0.08}, "b"),
             (5, {"lr": 0.096}, "b")]
    assert _segments(steps, 5) == [(1, 2, {"lr": 0.1}), (3, 4, {"lr": 0.08}), (5, 5, {"lr": 0.096})]
    assert _segments(steps[:3], 5) == [(1, 2, {"lr": 0.1}), (3, 3, {"lr": 0.08}), (4, 5, {"lr": 0.08})]


def test_ensemble_selection_prefers_members_that_fix_each_others_mistakes():
    """Three candidates on 6 images: A alone is best (4/6); B is right where A is wrong; C copies A. Caruana's
    greedy selection with replacement takes A, then B (together right on 5/6), never C (it adds nothing)."""
    y = np.zeros(6, dtype=int)

    def probs(right):
        p = np.full((6, 2), 0.1)
        for i in range(6):
            p[i, 0 if i in right else 1] = 0.9
        return p

    a, b = probs({0, 1, 2, 3}), probs({3, 4, 5})
    b[3] = [0.55, 0.45]  # B is unsure where A is right
    counts, scores = greedy([a, b, a.copy()], y, steps=6, score=accuracy)
    assert counts[0] >= 1 and counts[1] >= 1 and counts[2] == 0
    assert max(scores) > accuracy(a, y)
