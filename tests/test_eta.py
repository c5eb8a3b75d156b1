"""The time left (sweep/eta.py) on a fake clock: each config's cost from measured epochs of similar trials, scaled by
what makes an epoch dearer (AugMix + JSD: three views of every image) until its own are measured; the running and
queued trials laid on the slots; the plan line after the first epoch and the status line from the same estimate."""
from __future__ import annotations

import pytest

from sweep.console import Console
from sweep.eta import CostModel, Eta, key
from sweep.outcome import Status
from sweep.plan import Plan, duration
from sweep.trial_schedulers.settings import Asha
from sweep.trial_schedulers.simulate import Expected, expected

PLAIN = {"model": "small_cnn", "batch_size": 128}
JSD = {**PLAIN, "augmix": True, "augmix_jsd": True}
JSD_PRIOR = 3.5  # what sweep/eta.py assumes of JSD before a JSD trial is measured
N = 50_000


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def every_epoch(trials=4, epochs=3) -> Plan:
    """No early stopping: every trial trains every epoch, so the expected numbers are exact."""
    return Plan(trials, 2, epochs, Expected(trials * epochs, trials * epochs, trials * epochs, epochs))


def test_a_config_costs_what_similar_ones_measured():
    costs = CostModel()
    costs.observe("a", key(PLAIN, N), [10.0, 10.0])
    assert costs.seconds(key(PLAIN, N)) == pytest.approx(10.0, rel=1e-3)
    # Unmeasured: scaled by what is known to change an epoch's cost
    assert costs.seconds(key(JSD, N)) == pytest.approx(10.0 * JSD_PRIOR, rel=1e-3)
    assert costs.seconds(key({**PLAIN, "subset": 5000}, N)) == pytest.approx(10.0 * 5000 / N, rel=1e-3)
    assert costs.seconds(key({**PLAIN, "batch_size": 32}, N)) == pytest.approx(10.0, rel=1e-3)  # per image: same
    assert costs.seconds(key({**PLAIN, "model": "bn_cnn"}, N)) == pytest.approx(10.0, rel=1e-3)  # the sweep's mean
    # Measured: a JSD trial 3x a plain one. The measurement wins over the prior, and it carries to another model.
    costs.observe("b", key(JSD, N), [30.0])
    assert costs.seconds(key(JSD, N)) == pytest.approx(30.0, rel=0.02)
    assert costs.seconds(key(PLAIN, N)) == pytest.approx(10.0, rel=0.02)
    costs.observe("c", key({**PLAIN, "model": "bn_cnn"}, N), [40.0])
    assert costs.seconds(key({**JSD, "model": "bn_cnn"}, N)) == pytest.approx(120.0, rel=0.05)


def test_the_time_left_follows_the_running_and_queued_trials_each_at_its_cost():
    """Four trials, two at a time, 3 epochs each: plain, JSD, plain, JSD (enqueued, so known); a JSD epoch costs 3x a
    plain one. Before a JSD epoch is measured its cost is the prior's; after, the measurement's. A single cost per
    sweep (what the console had: the mean epoch) said 1m00s where 2m00s are left."""
    plan = every_epoch()
    eta = Eta(plan, slots=2, enqueued=[PLAIN, JSD, PLAIN, JSD], train_images=N)
    eta.start("a", PLAIN, 0.0)
    eta.start("b", JSD, 0.0)
    assert eta.left(5.0) is None  # nothing measured yet
    eta.result("a", {"epoch": 1, "epoch_time_s": 10.0}, 10.0)
    jsd = 10.0 * JSD_PRIOR
    # a: 2 epochs left (20 s); b: 10 s into its first of 3 (3 x 35 - 10); then c (plain, 30 s) after a; d (JSD,
    # 3 x 35) after c: slot 1 ends at 20 + 30 + 105, slot 2 at 95.
    left = eta.left(10.0)
    assert left.about == pytest.approx(20 + 3 * 10 + 3 * jsd, rel=1e-3) == left.low == left.high
    eta.result("a", {"epoch": 2, "epoch_time_s": 10.0}, 20.0)
    eta.result("a", {"epoch": 3, "epoch_time_s": 10.0}, 30.0)
    eta.end("a")
    eta.result("b", {"epoch": 1, "epoch_time_s": 30.0}, 30.0)
    eta.start("c", PLAIN, 30.0)
    # b: 2 x 30 = 60; c: 3 x 10 = 30, then d: 3 x 30 = 90 after it -> 120
    assert eta.left(30.0).about == pytest.approx(120.0, rel=0.02)
    # 5 s later, 5 s into their epochs: 5 s less
    assert eta.left(35.0).about == pytest.approx(120.0 - 5.0, rel=0.02)
    mean_epoch = (3 * 10 + 30) / 4
    assert (2 + 3 + 3) * mean_epoch / 2 == 60.0  # the per-sweep estimate's answer


def test_seconds_between_epochs_and_before_the_first_are_counted():
    """A trial's start (its process, the data, the model) and each epoch's save are not in epoch_time_s. The first
    trials start cold (processes importing torch while Ray settles): a later trial's start is measured apart."""
    eta = Eta(every_epoch(trials=3, epochs=3), slots=1, train_images=N)
    eta.start("a", PLAIN, 0.0)
    eta.result("a", {"epoch": 1, "epoch_time_s": 10.0}, 14.0)  # 4 s to start, cold
    eta.result("a", {"epoch": 2, "epoch_time_s": 10.0}, 25.0)  # 1 s between epochs
    # a: 1 more epoch (11 s); then b and c: 3 x 11 each (no later start measured yet)
    assert eta.left(25.0).about == pytest.approx(11 + 33 + 33, rel=1e-3)
    eta.result("a", {"epoch": 3, "epoch_time_s": 10.0}, 36.0)
    eta.end("a")
    eta.start("b", PLAIN, 36.0)
    eta.result("b", {"epoch": 1, "epoch_time_s": 10.0}, 47.5)  # 1.5 s to start
    # b: 2 more epochs (22 s); c: 1.5 + 3 x 11
    assert eta.left(47.5).about == pytest.approx(22 + 1.5 + 33, rel=1e-3)


def test_a_running_trial_goes_on_as_the_scheduler_lets_it():
    """ASHA, 15 epochs, rungs at 2 and 6: a trial past epoch 6 trains to 15; one at epoch 2 may stop there."""
    e = expected("asha", Asha(2, 3), 12, 2, 15)
    assert set(e.after(7)) == {8}
    assert set(e.after(2)) == {4, 13}  # promoted at epoch 2: stopped at 6, or promoted again
    assert e.after(15) == (0,)
    plan = Plan(12, 2, 15, e)
    eta = Eta(plan, slots=2, train_images=N)
    eta.start("a", PLAIN, 0.0)
    for epoch in range(1, 8):
        eta.result("a", {"epoch": epoch, "epoch_time_s": 10.0}, 10.0 * epoch)
    alone = Eta(Plan(1, 2, 15, e), slots=2, train_images=N)  # the same trial, nothing queued
    alone.start("a", PLAIN, 0.0)
    for epoch in range(1, 8):
        alone.result("a", {"epoch": epoch, "epoch_time_s": 10.0}, 10.0 * epoch)
    assert alone.left(70.0).about == pytest.approx(80.0)
    left = eta.left(70.0)
    assert left.low < left.about < left.high  # what the 11 queued trials train varies between replays


def test_queued_trials_cost_what_the_space_proposes():
    """Before the sampler has proposed anything, a queued trial's config is drawn from the space: part1's AugMix
    choice makes a quarter of them JSD ones, so the next trial's epoch is expected dearer than the plain one
    measured."""
    from sweep.space import load_space

    spec = load_space("search_spaces/part1.yaml", {"params.model": {"type": "choice", "values": ["small_cnn"]},
                                                   "enqueue": [], "fixed.epochs": 15, "fixed.subset": 6000})
    plan = Plan(12, 2, 15, expected("asha", Asha(2, 3), 12, 2, 15))
    eta = Eta.for_spec(spec, plan, 2, N)
    assert {dict(k)["images"] for k in eta.space} == {5400}  # the fixed: values under every drawn config
    views = [dict(k)["views"] for k in eta.space]
    assert 0.15 < views.count("augmix+jsd") / len(views) < 0.35
    eta.start("a", spec.active({"augmix": False}), 0.0)
    eta.result("a", {"epoch": 1, "epoch_time_s": 10.0}, 10.0)
    space = 10.0 * sum(JSD_PRIOR if v == "augmix+jsd" else 1.5 if v == "augmix" else 1.0 for v in views) / len(views)
    proposed = 1 / (1 + 4)  # the one plain config the sampler proposed so far, against the space's 4
    assert eta.queued_epoch_s() == pytest.approx(proposed * 10.0 + (1 - proposed) * space, rel=0.1)
    assert eta.queued_epoch_s() > 13.0


def test_the_plan_line_and_the_status_line_use_the_same_estimate(capsys):
    clock = Clock()
    plan = every_epoch()
    eta = Eta(plan, slots=2, enqueued=[PLAIN, JSD, PLAIN, JSD], train_images=N)
    c = Console("val_acc", "max", plan, [], every_s=30, clock=clock, eta=eta, job_s=120)
    c.on_start("a", PLAIN), c.on_start("b", JSD)
    clock.t = 10.0
    c.on_result("a", {"epoch": 1, "val_acc": 0.1, "epoch_time_s": 10.0})
    out = capsys.readouterr().out.splitlines()
    total = 10 + eta.left(10.0).about  # elapsed + left
    queued = (10 + 10 * JSD_PRIOR) / 2  # what the two queued trials (plain and JSD) cost on average
    assert out[-1].startswith(f"[sweep] plan: at 10.0 s per epoch (measured; {queued:.1f} s expected")
    assert f"about {duration(total)} on this machine" in out[-1]
    assert "at the longer, 2 job(s) of 2m00s" in out[-1]  # 165 s: two jobs of 2 minutes
    clock.t = 31.0
    c.on_tick()
    assert f"about {duration(eta.left(31.0).about)} left" in capsys.readouterr().out
    c.on_end("a", Status.COMPLETED, {"val_acc": 0.1, "epoch": 3}, "")
    assert eta.ended == 1 and eta.running == {"b"}
