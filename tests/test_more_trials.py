"""One real sweep, grown and finished as a user would (issue 24, items 2 and 3):

1. 4 trials, then `--resume --num-samples 6`: two trials added, killed with SIGKILL the moment the first added one
   finishes, then the same command again: exit 0, six trials once each, the first four neither trained again nor
   repeated (the enqueued configs they ran are not enqueued again), the sampler told every earlier trial.
2. The final model is an ensemble chosen among the best 3 trials (`retrain.ensemble_top`) on the validation images,
   shown in the report; a member's model lost is made again alone on --resume, the others reused.
3. Fewer trials than the sweep has: one line, exit 2.
"""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from sweep_util import ROOT, orchestrate, read_csv, run_until, write_space

ENSEMBLE = "retrain: {enabled: true, epochs: 1, train_on_val: true, seeds: [0], ensemble_top: 3}"


@pytest.fixture(scope="module")
def grown(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("grow")
    space = write_space(tmp, name="grow", n=4, retrain=ENSEMBLE)
    args = ["--space", space, "--data", synth_npz, "--results-dir", str(tmp / "results"), "--wandb", "off", "--cpus",
            "2", "--no-robustness"]
    first = orchestrate(*args)
    folder = tmp / "results" / "grow"
    before = read_csv(folder / "history.csv") if first.returncode == 0 else []
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), *args, "--resume", "--num-samples", "6"]
    killed = run_until(cmd, 1, signal.SIGKILL)
    resumed = orchestrate(*args, "--resume", "--num-samples", "6")
    return {"args": args, "folder": folder, "first": first, "before": before, "killed": killed, "resumed": resumed}


def test_trials_added_to_a_finished_sweep_survive_a_kill(grown):
    assert grown["first"].returncode == 0, grown["first"].stdout[-3000:] + grown["first"].stderr[-3000:]
    assert grown["killed"][0] == -signal.SIGKILL, grown["killed"][1][-3000:]
    proc = grown["resumed"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = grown["folder"]
    rows = read_csv(folder / "trials.csv")
    assert len(rows) == 6 == len({r["trial_id"] for r in rows})
    parts = json.loads((folder / "sweep.json").read_text())["segments"]
    assert parts == [{"name": "grow", "num_samples": 4}, {"name": "grow-more1", "num_samples": 2}]
    after = {(h["trial_id"], h["epoch"]): h["epoch_time_s"] for h in read_csv(folder / "history.csv")}
    for h in grown["before"]:  # the first four: the same epochs, to the digit
        assert after[(h["trial_id"], h["epoch"])] == h["epoch_time_s"]
    configs = [(r["lr"], r["batch_size"], r["scheduler"]) for r in rows]
    assert len(set(configs)) == 6  # the YAML's enqueued config ran once, in the first part
    assert "more trials (6 in all)" in grown["killed"][1]


def test_the_final_model_is_an_ensemble_chosen_on_validation_images(grown):
    folder = grown["folder"]
    chosen = json.loads((folder / "final" / "ensemble.json").read_text())
    best = json.loads((folder / "best.json").read_text())
    candidates = [c["trial_id"] for c in best["candidates"]]
    assert len(candidates) == 3 and candidates[0] == best["trial_id"]
    members = chosen["members"]
    assert {m["trial_id"] for m in members} <= set(candidates)
    assert sum(m["weight"] for m in members) == pytest.approx(1.0)
    assert chosen["ensemble_score"] >= chosen["best_single"]["score"]  # greedy: never worse than its first pick
    metrics = json.loads((folder / "final" / "metrics.json").read_text())
    assert [m["trial_id"] for m in metrics["members"]] == [m["trial_id"] for m in members]
    report = (folder / "report.md").read_text()
    assert "## The final model: an ensemble" in report and all(m["trial_id"] in report for m in members)
    # Weights kept: the candidates' (the ensemble's) and no other trial's.
    kept = {p.parent.parent.name.removeprefix("trial_") for p in folder.glob("ray/*/trial_*/checkpoint_*/state.pt")
            if p.stat().st_size > 10_000}
    assert kept <= set(candidates)


def test_a_lost_member_is_made_again_alone(grown):
    folder = grown["folder"]
    models = sorted((folder / "final").glob("model*.pt"))
    assert models
    models[-1].unlink()
    proc = orchestrate(*grown["args"], "--resume", "--num-samples", "6")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("already made") == len(models) - 1 and models[-1].is_file()


def test_fewer_trials_than_the_sweep_has_is_one_line(grown):
    proc = orchestrate(*grown["args"], "--resume", "--num-samples", "3")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "--num-samples 3: this sweep has 6 trials already" in lines[0]
