"""The plan (ASHA's expected cut, wall time), the time limit's decisions and the console's ETA, on a fake clock."""
from __future__ import annotations

import pytest

from sweep.console import Console
from sweep.deadline import Deadline, reserve_s
from sweep.outcome import Status, StopReason
from sweep.plan import Plan, duration, expected_epochs, parse_duration, rungs


@pytest.mark.parametrize("text, seconds", [("1h50m", 6600), ("90m", 5400), ("45s", 45), ("2h", 7200),
                                           ("5400", 5400), ("01:50:00", 6600), ("1d2h", 93600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "h", "1h-5m", "1:2", "soon"])
def test_bad_durations_say_what_is_allowed(text):
    with pytest.raises(ValueError, match="1h50m"):
        parse_duration(text)


@pytest.mark.parametrize("max_t, grace, eta", [(15, 2, 3), (50, 1, 2), (4, 1, 2), (9, 1, 3), (10, 10, 2)])
def test_asha_expected_epochs_match_a_simulated_cut(max_t, grace, eta):
    """Promote exactly the top 1/eta at each rung of a large population: the mean epochs per trial."""
    import numpy as np

    marks = rungs(max_t, grace, eta) + [max_t]
    n = 3 ** 8 * 2 ** 8
    alive, spent, prev = n, 0.0, 0
    for mark in marks:
        spent += alive * (mark - prev)
        prev, alive = mark, int(np.ceil(alive / eta))
    assert expected_epochs(max_t, grace, eta) == pytest.approx(spent / n, rel=0.01)
    assert expected_epochs(max_t, max_t, eta) == max_t  # no rung below the budget: nothing cut


def test_plan_lines_give_epochs_wall_time_and_jobs():
    plan = Plan(trials=24, concurrent=2, max_epochs=15, rungs=rungs(15, 2, 3),
                epochs_per_trial=expected_epochs(15, 2, 3), eta=3)
    text = "\n".join(plan.lines(epoch_s=60.0, job_s=7200))
    assert "24 trials" in text and "rungs at epochs [2, 6]" in text and "1/3" in text
    wall = plan.epochs * 60 / 2
    assert duration(wall) in text and f"= {int(-(-wall // 7200))} job(s) of 2h00m" in text
    assert "follows once" in "\n".join(plan.lines())


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def deadline(limit=600.0):
    clock, stops = Clock(), []
    return Deadline(limit, stops.append, t0=clock.t, clock=clock), clock, stops


def test_no_stop_while_epochs_still_fit():
    d, clock, stops = deadline()
    d.on_start("a", {})
    clock.t += 60
    d.on_result("a", {"epoch": 1, "epoch_time_s": 60})
    d.on_tick()
    assert not stops


def test_stop_when_no_running_trial_can_finish_its_epoch():
    d, clock, stops = deadline(600)
    end = 1000 + 600 - reserve_s(600)
    d.on_start("a", {}), d.on_start("b", {})
    clock.t = end - 100
    d.on_result("a", {"epoch": 3, "epoch_time_s": 60})  # a's next epoch ends at end - 40: it fits
    d.on_result("b", {"epoch": 3, "epoch_time_s": 150})  # b's does not
    d.on_tick()
    assert not stops
    clock.t = end - 30
    d.on_result("a", {"epoch": 4, "epoch_time_s": 60})  # now neither fits: stop at once, nothing to wait for
    d.on_tick()
    assert stops == [StopReason.TIME_LIMIT]
    d.on_tick()
    assert stops == [StopReason.TIME_LIMIT]  # once


def test_no_new_trial_starts_that_cannot_finish_an_epoch():
    d, clock, stops = deadline(600)
    d.on_start("a", {})
    d.on_result("a", {"epoch": 1, "epoch_time_s": 200})
    d.on_end("a", Status.COMPLETED, {}, "")
    clock.t += 450
    d.on_start("b", {})
    assert stops == [StopReason.TIME_LIMIT]


def test_the_limit_itself_stops_even_before_any_epoch_is_timed():
    d, clock, stops = deadline(100)
    d.on_start("a", {})
    clock.t += 100
    d.on_tick()
    assert stops == [StopReason.TIME_LIMIT]


def test_console_eta_from_measured_epochs(capsys):
    clock = Clock()
    plan = Plan(trials=4, concurrent=2, max_epochs=4, rungs=[], epochs_per_trial=4.0)
    c = Console("val_acc", "max", plan, ["lr"], every_s=30, clock=clock)
    c.on_start("a", {"lr": 0.1}), c.on_start("b", {"lr": 0.01})
    assert c.eta_s() is None
    c.on_result("a", {"epoch": 1, "val_acc": 0.25, "epoch_time_s": 10.0})
    c.on_result("b", {"epoch": 1, "val_acc": 0.5, "epoch_time_s": 10.0})
    # running: 3 + 3 epochs left; 2 trials not started: 8 more; 14 epochs x 10 s / 2 at a time
    assert c.eta_s() == pytest.approx(70.0)
    clock.t += 31
    c.on_tick()
    out = capsys.readouterr().out
    assert "best 50.0% (trial b)" in out and "about 1m10s left" in out and "trial a started (1/4): lr=0.1" in out
    c.on_end("b", Status.STOPPED_EARLY, {"val_acc": 0.5, "epoch": 1}, "")
    assert "trial b stopped early by ASHA after 1 epoch: val_acc 50.0% [1/4 ended]" in capsys.readouterr().out


def test_console_speaks_inside_a_long_epoch(capsys):
    """A part-3 epoch on a CPU runs for many minutes: the trial's step count is shown, with what is left."""
    clock = Clock()
    plan = Plan(trials=1, concurrent=1, max_epochs=3, rungs=[], epochs_per_trial=3.0)
    c = Console("val_acc", "max", plan, [], every_s=30, clock=clock)
    c.on_start("a", {})
    clock.t += 10
    c.on_progress("a", {"epoch": 1, "step": 10, "steps": 100, "t": clock.t})
    assert "step" not in capsys.readouterr().out  # too soon after the start to speak again
    clock.t += 30
    c.on_progress("a", {"epoch": 1, "step": 40, "steps": 100, "t": clock.t})
    out = capsys.readouterr().out
    assert "trial a epoch 1/3: step 40/100 (40%), about 1m00s left in this epoch" in out
    clock.t += 5
    c.on_progress("a", {"epoch": 1, "step": 45, "steps": 100, "t": clock.t})
    assert capsys.readouterr().out == ""  # once per 30 s at most


def test_a_limit_shorter_than_one_measured_epoch_is_refused(tmp_path, synth_npz, capsys):
    """A resumed sweep knows its epoch time: a --time-limit no epoch fits in is bad input (one line, exit 2)."""
    from sweep import cli
    from sweep_util import write_space

    space = write_space(tmp_path, name="slow")
    folder = tmp_path / "results" / "slow"
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text("trial_id,epoch,epoch_time_s\na,1,120.0\na,2,100.0\n")
    rc = cli.main(["--space", space, "--data", synth_npz, "--results-dir", str(tmp_path / "results"),
                   "--resume", "--time-limit", "90s", "--wandb", "off"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--time-limit 90 s" in err[0] and "110 s on average" in err[0], err
