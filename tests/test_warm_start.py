"""Warm start (--warm-start): which earlier trials fit a new space, what they are worth, what runs first; bad
folders; and a real warm-started sweep on synthetic data."""
from __future__ import annotations

import csv
import json
import math

import optuna
import pytest
from sweep_util import orchestrate, read_csv

from sweep import warm_start
from sweep.space import load_space
from trainables.errors import UserError

BASE = """
name: {name}
metric: {metric}
fixed: {{model: small_cnn, epochs: 2, optimizer: sgd{fixed}}}
params:
{params}
data: {{path: unused.npz}}
"""
# The earlier sweep: lr, batch size, scheduler with a step-only parameter; label_smoothing left at its default.
EARLIER = """  lr: {type: loguniform, low: 1.0e-4, high: 0.1}
  batch_size: {type: choice, values: [32, 64]}
  scheduler: {type: choice, values: [cosine, step]}
  step_size: {type: int, low: 1, high: 3, when: {scheduler: step}}"""


def space(tmp_path, params, name="new", metric="val_loss", fixed=""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(name=name, metric=metric, params=params, fixed=fixed))
    return load_space(path)


def earlier(tmp_path, rows, history=(), name="old", params=EARLIER, metric="val_loss", fixed=""):
    """A results folder as a sweep writes it: sweep.json's spec, trials.csv, history.csv."""
    spec = space(tmp_path, params, name, metric, fixed)
    folder = tmp_path / "results" / name
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"spec": spec.to_dict()}))
    cols = ["trial_id", "status", "epochs", *spec.param_names, f"final_{metric}", "time_s", "error"]
    _write(folder / "trials.csv", cols, [{"epochs": 2, "time_s": 1.0, "error": "", **r} for r in rows])
    if history:
        _write(folder / "history.csv", ["trial_id", "epoch", "val_loss", "val_acc"], history)
    return str(folder)


def _write(path, cols, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(rows)


def row(tid, lr, batch_size=64, scheduler="cosine", step_size="", loss=1.0, status="completed"):
    return {"trial_id": tid, "status": status, "lr": repr(lr), "batch_size": str(batch_size),
            "scheduler": scheduler, "step_size": str(step_size), "final_val_loss": "" if loss is None else repr(loss)}


NEW = EARLIER.replace("low: 1.0e-4", "low: 1.0e-3")  # the neighbouring space: a narrower lr range


def test_fitting_trials_are_told_with_their_values_and_the_best_run_first(tmp_path):
    folder = earlier(tmp_path, [row("a", 0.01, loss=2.0), row("b", 0.02, 32, "step", 2, loss=1.5),
                                row("c", 0.05, loss=1.7), row("d", 0.03, loss=0.9, status="stopped_early")])
    warm = warm_start.load([folder], space(tmp_path, NEW), top=2)
    told = {p["lr"]: (p, v) for p, v, _ in warm.evaluated}
    assert set(told) == {0.01, 0.02, 0.05, 0.03} and not warm.dropped
    assert told[0.02] == ({"lr": 0.02, "batch_size": 32, "scheduler": "step", "step_size": 2}, (1.5,))
    assert told[0.01][0] == {"lr": 0.01, "batch_size": 64, "scheduler": "cosine"}  # step_size inactive: absent
    assert type(told[0.02][0]["batch_size"]) is int and type(told[0.02][0]["step_size"]) is int
    # best first by val_loss (min); trials that ran every epoch before the ASHA-stopped one, however good
    assert [p["lr"] for p in warm.enqueue] == [0.02, 0.05]
    assert warm_start.points(warm, space(tmp_path, NEW)) == [dict(p) for p in warm.enqueue]


@pytest.mark.parametrize("new_params, bad, kept, reason", [
    (NEW, row("x", 5e-4), 1, "lr outside params.lr"),  # out of range
    (NEW.replace("values: [32, 64]", "values: [64, 128]"), row("x", 0.01, 32), 1,
     "batch_size outside params.batch_size"),
    # searched here, never set by the earlier sweep: its TrainConfig default (0.0) is what both trials ran with,
    # and 0.0 is below this range
    (NEW + "\n  label_smoothing: {type: uniform, low: 0.05, high: 0.2}", row("x", 0.01), 0,
     "label_smoothing outside params.label_smoothing"),
    # conditional: step_size is searched only for step, and this step trial's 3 is outside the new range
    (NEW.replace("low: 1, high: 3", "low: 1, high: 2"), row("x", 0.01, 32, "step", 3), 1,
     "step_size outside params.step_size"),
    (NEW, row("x", 0.01, status="errored", loss=None), 1, "errored"),
    (NEW, row("x", 0.01, loss=None), 1, "no val_loss recorded"),
], ids=["range", "choice", "missing-param", "conditional", "errored", "no-value"])
def test_a_trial_that_does_not_fit_is_dropped_with_its_reason(tmp_path, new_params, bad, kept, reason):
    folder = earlier(tmp_path, [row("ok", 0.01, 64, "step", 2), bad])
    warm = warm_start.load([folder], space(tmp_path, new_params))
    assert [p["lr"] for p, _, _ in warm.evaluated] == [0.01] * kept
    assert warm.dropped == {reason: 2 - kept}
    assert (f"{kept} earlier trials told to the sampler, the best {kept} run first; {2 - kept} dropped "
            f"({2 - kept} {reason})") in warm.summary()


def test_values_are_filled_from_the_config_the_earlier_trial_ran(tmp_path):
    """A parameter searched now but fixed before (scheduler) or never set (label_smoothing: TrainConfig's
    default ran) takes that value, and the conditions on it follow (step_size, searched only for step)."""
    r = row("a", 0.01, step_size=2)
    del r["scheduler"]
    folder = earlier(tmp_path, [r], params=EARLIER.replace("  scheduler: {type: choice, values: [cosine, step]}\n",
                                                            ""), fixed=", scheduler: step")
    new = space(tmp_path, NEW + "\n  label_smoothing: {type: uniform, low: 0.0, high: 0.2}")
    (params, _, _), = warm_start.load([folder], new).evaluated
    assert params == {"lr": 0.01, "batch_size": 64, "scheduler": "step", "step_size": 2, "label_smoothing": 0.0}


def test_a_key_searched_before_and_fixed_now_keeps_only_trials_at_that_value(tmp_path):
    folder = earlier(tmp_path, [row("a", 0.01, 32), row("b", 0.01, 64)])
    new = space(tmp_path, NEW.replace("  batch_size: {type: choice, values: [32, 64]}\n", ""), fixed=", batch_size: 64")
    warm = warm_start.load([folder], new)
    assert [p for p, _, _ in warm.evaluated] == [{"lr": 0.01, "scheduler": "cosine"}]
    assert warm.dropped == {"searched batch_size, fixed at 64 here": 1}


def test_context_both_sweeps_fix_differently_is_said_not_dropped(tmp_path):
    folder = earlier(tmp_path, [row("a", 0.01)], fixed=", momentum: 0.5")
    warm = warm_start.load([folder], space(tmp_path, NEW, fixed=", momentum: 0.9"))
    assert len(warm.evaluated) == 1
    assert warm.notes == (f"{folder} ran with momentum 0.5 (here 0.9): its trials are told as measured there",)


def test_another_metric_comes_from_the_last_history_epoch(tmp_path):
    hist = [{"trial_id": "a", "epoch": 1, "val_loss": 3.0, "val_acc": 0.1},
            {"trial_id": "a", "epoch": 2, "val_loss": 2.0, "val_acc": 0.25}]
    folder = earlier(tmp_path, [row("a", 0.01), row("b", 0.02)], history=hist)
    warm = warm_start.load([folder], space(tmp_path, NEW, metric="val_acc"))
    assert [(p["lr"], v) for p, v, _ in warm.evaluated] == [(0.01, (0.25,))]
    assert warm.dropped == {"no val_acc recorded": 1}


def test_the_study_reads_told_trials_as_its_own(tmp_path):
    folder = earlier(tmp_path, [row(str(i), 10 ** (-3 + i / 4), 32 if i % 2 else 64, "step" if i % 3 else "cosine",
                                    1 + i % 3 if i % 3 else "", loss=1 + abs(i - 5) / 10) for i in range(8)])
    new = space(tmp_path, NEW)
    warm = warm_start.load([folder], new)
    study = optuna.create_study(direction="minimize", sampler=new.make_sampler())
    warm_start.add_to_study(study, warm, new)
    assert len(study.trials) == 8 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert math.isclose(study.best_value, 1.0) and study.best_params["lr"] == pytest.approx(10 ** (-3 + 5 / 4))
    # the next trial is the sampler's (TPE past its 4 startup trials), inside the new space, with no warning
    # about distributions it does not know
    new_trial = study.ask()
    new.define_by_run(new_trial)
    assert 1e-3 <= new_trial.params["lr"] <= 0.1
    assert study.trials[0].distributions["lr"] == new_trial.distributions["lr"]


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "nowhere", "no such folder"),
    (lambda d: d, "not a sweep's results folder (no sweep.json)"),
    (lambda d: (d / "sweep.json").write_text("[1, 2") and d, "is not a sweep.json this program wrote"),
    (lambda d: (d / "sweep.json").write_text(json.dumps({"spec": {"fixed": {}, "params": {}}})) and d,
     "no trials.csv yet"),
], ids=["missing", "not-a-sweep", "bad-json", "no-trials"])
def test_a_bad_folder_is_one_line(tmp_path, make, says):
    folder = make(tmp_path)
    with pytest.raises(UserError) as err:
        warm_start.load([str(folder)], space(tmp_path, NEW))
    assert says in str(err.value) and "\n" not in str(err.value) and "--warm-start" in str(err.value)


def test_unreadable_trials_csv_is_one_line(tmp_path):
    folder = earlier(tmp_path, [row("a", 0.01)])
    with open(f"{folder}/trials.csv", "wb") as f:
        f.write(b"trial_id,status\n\xff\xfe\x00bad\n")
    with pytest.raises(UserError, match="cannot read its trials"):
        warm_start.load([folder], space(tmp_path, NEW))


@pytest.mark.parametrize("flags, says", [
    (["--warm-start", "nowhere"], "no such folder"),
    (["--warm-start", "nowhere", "--warm-start-top", "-1"], "--warm-start-top -1: must be 0 or more"),
], ids=["missing-folder", "negative-top"])
def test_cli_exits_2_with_one_line(tmp_path, flags, says):
    path = tmp_path / "new.yaml"
    path.write_text(BASE.format(name="new", metric="val_loss", params=NEW, fixed=""))
    proc = orchestrate("--space", str(path), "--results-dir", str(tmp_path / "r"), "--wandb", "off",
                       *[str(tmp_path / f) if f == "nowhere" else f for f in flags], timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and says in err[0] and "Traceback" not in proc.stderr


# A real warm-started sweep: the earlier one searched lr from 1e-4 (its enqueued 1e-4 trial ran); the new one
# searches from 3e-4, so that trial is dropped and the earlier best (if it fits) runs first.
E2E = """
name: {name}
metric: val_loss
mode: min
fixed: {{model: small_cnn, epochs: 2, subset: 240, val_fraction: 0.25, crop_padding: 0, device: cpu,
        precision: fp32, eval_batch_size: 256, threads: 1}}
params:
  lr: {{type: loguniform, low: {low}, high: 0.1}}
  batch_size: {{type: choice, values: [32, 64]}}
  scheduler: {{type: choice, values: [cosine, step]}}
  step_size: {{type: int, low: 1, high: 2, when: {{scheduler: step}}}}
sampler: {{type: tpe, seed: {seed}, n_startup_trials: 2}}
asha: {{grace_period: 1, reduction_factor: 2}}
trials: {{num_samples: {n}, max_concurrent: {conc}}}
resources: {{cpu: 1, gpu: 0}}
retrain: {{enabled: false}}
enqueue: {enqueue}
"""


def test_a_real_sweep_runs_the_earlier_best_first(tmp_path, synth_npz):
    def sweep(name, low, n, conc, seed, enqueue, *extra):
        path = tmp_path / f"{name}.yaml"
        path.write_text(E2E.format(name=name, low=low, n=n, conc=conc, seed=seed, enqueue=enqueue))
        proc = orchestrate("--space", str(path), "--data", synth_npz, "--results-dir", str(tmp_path / "results"),
                           "--wandb", "off", "--cpus", "2", "--no-retrain", *extra, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return tmp_path / "results" / name, proc.stdout + proc.stderr

    old, _ = sweep("old", "1.0e-4", 4, 2, 0, "[{lr: 1.0e-4, batch_size: 64, scheduler: cosine}]")
    new, out = sweep("new", "3.0e-4", 3, 1, 1, "[]", "--warm-start", str(old), "--warm-start-top", "1")

    rows = read_csv(old / "trials.csv")
    fits = [r for r in rows if r["status"] in ("completed", "stopped_early") and float(r["lr"]) >= 3e-4]
    dropped = len(rows) - len(fits)
    assert dropped >= 1  # the enqueued lr=1e-4 trial at least
    assert f"{len(fits)} earlier trials told to the sampler, the best 1 run first; {dropped} dropped" in out
    best = min(fits, key=lambda r: (r["status"] != "completed", float(r["final_val_loss"])))

    hist = read_csv(new / "history.csv")
    start = {h["trial_id"]: float(h["ended_at"]) - float(h["epoch_time_s"]) for h in hist if h["epoch"] == "1"}
    first = min(start, key=start.get)
    (ran,) = [r for r in read_csv(new / "trials.csv") if r["trial_id"] == first]
    for key in ("lr", "batch_size", "scheduler", "step_size"):
        assert ran[key] == best[key], key
    manifest = json.loads((new / "sweep.json").read_text())
    assert manifest["warm_start"]["folders"] == [str(old)]
    assert manifest["warm_start"]["evaluated"] == len(fits)
    assert len(read_csv(new / "trials.csv")) == 3


def test_resume_does_not_warm_twice(tmp_path, capsys):
    """A restored sweep's searcher state (Tune pickles OptunaSearch with its study) already holds the told
    trials: --resume keeps sweep.json's record and tells the sampler nothing again."""
    from sweep.api import SweepRequest
    from sweep.pipeline.inputs import warm_start_for

    folder = earlier(tmp_path, [row("a", 0.01)])
    new = space(tmp_path, NEW)
    mine = tmp_path / "results" / "new"
    mine.mkdir()
    record = warm_start.load([folder], new).to_dict()
    (mine / "sweep.json").write_text(json.dumps({"warm_start": record}))
    req = SweepRequest(space="unused.yaml", resume=True, warm_start=(folder,))
    assert warm_start_for(req, new, str(mine), restore=True) == (None, record)
    assert "--warm-start: ignored on --resume" in capsys.readouterr().out
    # stopped before Tune saved any state: nothing was told yet, so the recorded folders warm it now
    warm, again = warm_start_for(SweepRequest(space="unused.yaml", resume=True), new, str(mine), restore=False)
    assert again == record and len(warm.evaluated) == 1


def test_several_objectives_are_told_one_value_each(tmp_path):
    hist = [{"trial_id": t, "epoch": 2, "val_loss": 2.0, "val_acc": acc} for t, acc in (("a", 0.3), ("b", 0.4))]
    folder = earlier(tmp_path, [row("a", 0.01, loss=2.0), row("b", 0.02, loss=2.5)], history=hist)
    path = tmp_path / "multi.yaml"
    path.write_text(BASE.format(name="multi", metric="val_loss", params=NEW, fixed="").replace(
        "metric: val_loss", "objectives: [{metric: val_acc, mode: max}, {metric: val_loss, mode: min}]\n"
                            "pick: val_loss\nsampler: {type: nsga2, seed: 0}"))
    new = load_space(path)
    warm = warm_start.load([folder], new, top=1)
    assert sorted(v for _, v, _ in warm.evaluated) == [(0.3, 2.0), (0.4, 2.5)]
    assert warm.enqueue == ({"lr": 0.01, "batch_size": 64, "scheduler": "cosine"},)  # by pick: val_loss, min
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=new.make_sampler())
    warm_start.add_to_study(study, warm, new)
    assert len(study.best_trials) == 2  # neither dominates: both on the front
