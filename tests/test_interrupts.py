"""Ctrl-C, then --resume; then a resume that hits a full disk: no finished trial is lost or re-run.

One sweep, three runs of the orchestrator:
1. SIGINT (what Ctrl-C sends) once two trials are done: exit 130, how to resume is printed, and no
   trials.csv / best.json presents the part as the whole.
2. The same command plus --resume: exit 0, every trial once, the finished ones not trained again.
3. --resume again with the disk "full" when trials.csv is rewritten (sitecustomize in tests/inject): exit
   2, one line naming the file, every earlier result byte for byte as it was.
"""
from __future__ import annotations

import glob
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from sweep_util import ROOT, orchestrate, read_csv, write_space
from test_resume import finished_trials

N_TRIALS = 6
INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inject")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("interrupt")
    space = write_space(tmp, name="ctrlc", n=N_TRIALS)
    results = tmp / "results"
    args = ["--space", space, "--data", synth_npz, "--results-dir", str(results), "--wandb", "off", "--cpus", "2"]
    storage = str(results / "ctrlc" / "ray" / "ctrlc")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "orchestrator.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(finished_trials(storage)) < 2 and proc.poll() is None:
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # to the orchestrator alone, as `kill -INT PID` does
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"args": args, "results": results / "ctrlc", "storage": storage, "rc": proc.returncode,
            "out": out, "err": err, "before": finished_trials(storage)}


def test_ctrl_c_says_how_to_resume(interrupted):
    r = interrupted
    assert r["rc"] == 130, r["out"][-3000:] + r["err"][-3000:]
    assert "interrupted" in r["err"] and "--resume" in r["err"].splitlines()[-1], r["err"][-2000:]
    assert "Traceback" not in r["err"]
    assert 2 <= len(r["before"]) < N_TRIALS, "the interrupt came too late to test anything"
    assert not (r["results"] / "trials.csv").exists() and not (r["results"] / "best.json").exists()


@pytest.fixture(scope="module")
def resumed(interrupted):
    proc = orchestrate(*interrupted["args"], "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_resume_after_ctrl_c_finishes_without_rerunning(interrupted, resumed):
    after = finished_trials(interrupted["storage"])
    for trial, n in interrupted["before"].items():
        assert after[trial] == n, f"{trial} was re-run after the resume"
    rows = read_csv(interrupted["results"] / "trials.csv")
    assert len(rows) == N_TRIALS == len({r["trial_id"] for r in rows})
    assert len(glob.glob(os.path.join(interrupted["storage"], "*", "result.json"))) == N_TRIALS
    assert (interrupted["results"] / "final" / "metrics.json").is_file()


def _digests(folder) -> dict[str, str]:
    """sha256 of every result file the sweep writes itself (Ray's and wandb's own folders aside)."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
        rel = os.path.relpath(path, folder)
        if os.path.isfile(path) and not rel.startswith(("ray", "wandb")):
            out[rel] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def test_disk_full_on_resume_keeps_every_result(interrupted, resumed):
    before = _digests(interrupted["results"])
    assert {"trials.csv", "best.json", "report.md", "sweep.json", "final/metrics.json"} <= set(before)
    proc = orchestrate(*interrupted["args"], "--resume",
                       env={"PYTHONPATH": os.pathsep.join([INJECT, ROOT]), "FAULT_ENOSPC": "trials.csv"})
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "trials.csv" in last and "No space left on device" in last, proc.stderr
    assert "Traceback" not in proc.stderr
    after = _digests(interrupted["results"])
    after.pop("sweep.json"), before.pop("sweep.json")  # rewritten on every run (its command and time)
    assert after == before
