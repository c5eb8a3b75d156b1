"""Faults inside trials, all in ONE real sweep: every trial but one hits a different fault.

tests/inject/sitecustomize.py (on PYTHONPATH of the orchestrator, so the driver and every Ray worker
import it) registers fault models; the YAML enqueues one trial of each. The sweep must go on, retry
what a retry can fix from the trial's last checkpoint, record the rest as `errored` with the reason in
trials.csv and the report, and never tell the sampler a value for a failed trial.
It also asks `--wandb online` with no key: the sweep logs offline and says so.
"""
from __future__ import annotations

import glob
import json
import os
import pickle
import subprocess
import sys

import pytest

from sweep_util import ROOT, read_csv

INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inject")

# model -> (status, what the error says, attempts at the trial); max_failures 1 = one retry
EXPECTED = {
    "small_cnn": ("completed", "", 1),
    "fault_kill": ("completed", "", 2),  # its worker SIGKILLed once: retried from the epoch-1 checkpoint, finished
    "fault_raise": ("errored", "RuntimeError: injected fault", 2),  # retried from the checkpoint, raised again
    "fault_oom_gpu": ("errored", "OutOfMemoryError: CUDA out of memory", 2),
    "fault_oom_host": ("errored", "MemoryError: injected", 2),
    "fault_nan": ("errored", "DivergedError: loss became nan at epoch 2", 1),  # the retry fails at once: no training
    "fault_inf": ("errored", "DivergedError: loss became", 1),  # +inf loss (the engine's mixing turns it into nan)
}

SPACE = f"""
name: faults
metric: val_loss
mode: min
fixed: {{epochs: 2, subset: 160, val_fraction: 0.25, batch_size: 32, lr: 0.01, crop_padding: 0, device: cpu,
         precision: fp32, threads: 1, eval_batch_size: 256}}
params:
  model: {{type: choice, values: {list(EXPECTED)}}}
sampler: {{type: tpe, seed: 0}}
asha: {{grace_period: 2}}  # = epochs: ASHA stops nothing before the faults strike
trials: {{num_samples: {len(EXPECTED)}, max_concurrent: 2, max_failures: 1}}
resources: {{cpu: 1, gpu: 0}}
retrain: {{enabled: false}}  # the retrain's own faults: tests/test_pipeline_faults.py
enqueue: {[{"model": m} for m in EXPECTED]}
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("faults")
    (tmp / "faults.yaml").write_text(SPACE)
    (tmp / "home").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([INJECT, ROOT]), "FAULT_DIR": str(tmp),
           "HOME": str(tmp / "home"), "WANDB_API_KEY": ""}  # no key anywhere: not in the env, no ~/.netrc
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", str(tmp / "faults.yaml"),
           "--data", synth_npz, "--results-dir", str(tmp / "results"), "--wandb", "online", "--cpus", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    folder = tmp / "results" / "faults"
    rows = {r["model"]: r for r in read_csv(folder / "trials.csv")}
    return {"proc": proc, "folder": folder, "rows": rows, "tmp": tmp, "exp": folder / "ray" / "faults"}


def test_every_fault_is_recorded_with_its_reason(sweep):
    rows = sweep["rows"]
    assert sorted(rows) == sorted(EXPECTED)
    for model, (status, reason, _) in EXPECTED.items():
        assert rows[model]["status"] == status, rows[model]
        assert reason in rows[model]["error"], rows[model]
        if status == "errored":
            assert rows[model]["final_val_loss"] == ""  # no made-up final value
    report = (sweep["folder"] / "report.md").read_text()
    failed = report.split("## Failed trials", 1)[1].split("##", 1)[0]
    for model, (status, reason, _) in EXPECTED.items():
        if status == "errored":
            assert f"`{rows[model]['trial_id']}`: " in failed and reason in failed


def test_retries_resume_from_the_last_checkpoint(sweep):
    built = (sweep["tmp"] / "built.log").read_text().split()
    for model, (_, _, attempts) in EXPECTED.items():
        if model.startswith("fault_"):
            assert built.count(model.removeprefix("fault_")) == attempts, (model, built)
    assert (sweep["tmp"] / "killed-once").exists()  # the worker really died
    history = read_csv(sweep["folder"] / "history.csv")
    for model, row in sweep["rows"].items():
        epochs = [int(h["epoch"]) for h in history if h["trial_id"] == row["trial_id"]]
        # Restored from epoch 1's checkpoint: epoch 1 is never trained (or reported) twice.
        assert epochs == list(range(1, int(row["epochs"]) + 1)), (model, epochs)
    assert sweep["rows"]["fault_kill"]["epochs"] == "2" and sweep["rows"]["fault_raise"]["epochs"] == "1"


def test_sweep_goes_on_to_the_best_model(sweep):
    best = json.loads((sweep["folder"] / "best.json").read_text())
    assert best["config"]["model"] in ("small_cnn", "fault_kill")
    assert (sweep["folder"] / "report.md").is_file()


def test_the_sampler_is_never_told_a_value_for_a_failed_trial(sweep):
    """Optuna's own record (the searcher state Ray saves): FAIL with no value for every errored trial."""
    import optuna

    [path] = glob.glob(str(sweep["exp"] / "searcher-state-*.pkl"))
    with open(path, "rb") as f:
        state = pickle.load(f)  # our own test's file, written by Ray's OptunaSearch.save
    frozen = {t.number: t for t in state["_ot_study"].trials}
    for model, row in sweep["rows"].items():
        t = frozen[state["_ot_trials"][row["trial_id"]].number]
        assert t.params["model"] == model
        if row["status"] == "errored":
            assert t.state == optuna.trial.TrialState.FAIL and t.value is None, (model, t.state, t.value)
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.value == pytest.approx(float(row["final_val_loss"]))


def test_no_two_trials_share_a_folder_or_file(sweep):
    """Each trial folder (results, checkpoints, diverged mark) and wandb run belongs to exactly one trial."""
    ids = [r["trial_id"] for r in sweep["rows"].values()]
    folders = sorted(glob.glob(str(sweep["exp"] / "trial_*")))
    assert sorted(os.path.basename(f) for f in folders) == sorted(f"trial_{t}" for t in ids)
    for folder in folders:
        with open(os.path.join(folder, "result.json")) as f:
            owners = {json.loads(line)["trial_id"] for line in f if line.strip()}
        assert owners == {os.path.basename(folder).removeprefix("trial_")}
    runs = [os.path.basename(p).rsplit("-", 1)[1] for p in glob.glob(str(sweep["folder"] / "wandb" / "offline-run-*"))]
    assert sorted(t for t in runs if t in ids) == sorted(ids)  # one run per trial (no retrain here)


def test_wandb_online_without_a_key_logs_offline_and_says_so(sweep):
    out = sweep["proc"].stdout
    assert "--wandb online asked, but no wandb API key was found" in out and "logging offline" in out
