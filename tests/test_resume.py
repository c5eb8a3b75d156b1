"""A sweep killed with SIGKILL mid-way resumes: no finished trial re-runs, the trial count is as asked."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

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


def test_killed_sweep_resumes_without_rerunning(tmp_path, synth_npz):
    space = write_space(tmp_path, name="resume", n=N_TRIALS)
    results = tmp_path / "results"
    storage = results / "resume" / "ray" / "resume"
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", synth_npz,
           "--results-dir", str(results), "--wandb", "off", "--no-retrain", "--cpus", "2"]
    # Its own session, so the kill reaches the driver and every Ray process it started, and nothing else.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(finished_trials(str(storage))) < 2:
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = finished_trials(str(storage))
    assert len(before) >= 2, "the sweep never got two trials done before the deadline"
    assert not (results / "resume" / "trials.csv").exists()  # it really died mid-sweep

    proc = orchestrate(*cmd[2:], "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming" in proc.stdout
    after = finished_trials(str(storage))
    for trial, n in before.items():
        assert after[trial] == n, f"{trial} was re-run after the resume"
    rows = read_csv(results / "resume" / "trials.csv")
    assert len(rows) == N_TRIALS
    assert len(glob.glob(os.path.join(storage, "*", "result.json"))) == N_TRIALS


def test_resume_with_nothing_to_resume_is_refused(tmp_path, synth_npz):
    space = write_space(tmp_path, name="nothing")
    proc = orchestrate("--space", space, "--data", synth_npz, "--results-dir", str(tmp_path / "r"), "--resume")
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr
