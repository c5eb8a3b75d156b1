"""A sweep killed with SIGKILL mid-way resumes: no finished trial re-runs, the trial count is as asked."""
from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys

from sweep_util import ROOT, orchestrate, read_csv, write_space

N_TRIALS = 6


def finished_trials(storage: str) -> dict[str, int]:
    """Trial folder -> number of results, for trials whose last result says they are done."""
    done = {}
    for res in glob.glob(os.path.join(storage, "*", "result.json")):
        lines = [json.loads(line) for line in open(res) if line.strip()]
        if lines and lines[-1].get("done"):
            done[os.path.basename(os.path.dirname(res))] = len(lines)
    return done


def saved_history(trial_dir: str) -> list[dict]:
    """Every epoch's metrics as the trial saved them: its newest readable checkpoint's history."""
    import torch

    for ckpt in sorted(glob.glob(os.path.join(trial_dir, "checkpoint_*")), reverse=True):
        try:
            return torch.load(os.path.join(ckpt, "state.pt"), weights_only=True)["history"]
        except Exception:  # cut short by the kill
            continue
    return []


def test_killed_sweep_resumes_without_rerunning(tmp_path, synth_npz):
    """kill -9 the moment the console says a trial completed: the worst time, since Ray syncs its experiment
    state to the results folder only every few checkpoints. The resume must not train that trial again."""
    space = write_space(tmp_path, name="resume", n=N_TRIALS)
    results = tmp_path / "results"
    storage = results / "resume" / "ray" / "resume"
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", synth_npz,
           "--results-dir", str(results), "--wandb", "off", "--no-retrain", "--cpus", "2"]
    # Its own session, so the kill reaches the driver and every Ray process it started, and nothing else.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    completed = []
    try:
        for line in proc.stdout:
            found = re.search(r"Trial trial_(\w+) completed after", line)
            if found:
                completed.append(found.group(1))
                if len(completed) == 2:
                    break
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(completed) == 2, "the sweep ended before two trials completed"
    assert not (results / "resume" / "trials.csv").exists()  # it really died mid-sweep
    before = {t: saved_history(str(storage / f"trial_{t}")) for t in completed}

    proc = orchestrate(*cmd[2:], "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming" in proc.stdout
    rows = read_csv(results / "resume" / "trials.csv")
    assert len(rows) == N_TRIALS
    assert len(glob.glob(os.path.join(storage, "*", "result.json"))) == N_TRIALS
    history = read_csv(results / "resume" / "history.csv")
    for trial, saved in before.items():
        # Every epoch's own timing, to the last digit: an epoch trained again would have taken its own time.
        after = [float(h["epoch_time_s"]) for h in history if h["trial_id"] == trial]
        assert after == [m["epoch_time_s"] for m in saved], f"{trial} was re-run after the resume"
        assert saved_history(str(storage / f"trial_{trial}")) == saved


def test_resume_with_nothing_to_resume_is_refused(tmp_path, synth_npz):
    space = write_space(tmp_path, name="nothing")
    proc = orchestrate("--space", space, "--data", synth_npz, "--results-dir", str(tmp_path / "r"), "--resume")
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr
