"""Ctrl-C, kill -9 and a full disk, one after another on ONE sweep: no finished trial is lost or re-run.

1. SIGINT (what Ctrl-C sends) once a trial has finished: exit 130, how to resume is printed, and no
   trials.csv / best.json presents the part as the whole.
2. The same command plus --resume, killed with SIGKILL (driver, Ray and every worker) the moment the console
   reports one more finished trial: the worst time, since Tune's own record of it may not be on disk yet.
3. --resume again: exit 0, every trial exactly once, and every trial that had finished before a kill is
   neither trained again nor continued: each epoch's own timing is the one saved before the kill, to the
   last digit (an epoch trained again would have taken its own time).
4. --resume once more with the disk "full" when trials.csv is rewritten (tests/inject/sitecustomize.py):
   exit 2, one line naming the file, every earlier result byte for byte as it was.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from sweep_util import ROOT, orchestrate, read_csv, write_space

N_TRIALS = 6
INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inject")


def saved_history(trial_dir: str) -> list[dict]:
    """Every epoch's metrics as the trial saved them: its newest readable checkpoint's history; for a trial ASHA
    stopped (its weights dropped as it ended), the epochs Tune logged in its result.json."""
    for ckpt in sorted(glob.glob(os.path.join(trial_dir, "checkpoint_*")), reverse=True):
        try:
            return torch.load(os.path.join(ckpt, "state.pt"), weights_only=True)["history"]
        except Exception:  # noqa: BLE001 - cut short by the kill
            continue
    path = os.path.join(trial_dir, "result.json")
    if not os.path.exists(path):
        return []
    import json

    return [json.loads(line) for line in open(path) if line.strip()]


def run_until_finished(cmd, n: int, sig) -> tuple[int, str, list[str]]:
    """Run cmd in its own session; send `sig` to it (SIGINT: the orchestrator alone, as `kill -INT PID`;
    SIGKILL: the whole session) the moment the console has reported n finished trials."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finished, lines = [], []
    try:
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"\[sweep\] trial (\w+) (?:completed|stopped early by ASHA) after", line)
            if found:
                finished.append(found.group(1))
                if len(finished) == n:
                    if sig == signal.SIGKILL:
                        os.killpg(proc.pid, sig)
                        proc.wait()
                        return proc.returncode, "".join(lines), finished
                    proc.send_signal(sig)
                    signalled = time.time()
                    break
        lines.append(proc.communicate(timeout=300)[0])
        if sig != signal.SIGKILL:
            lines.append(f"\n[test] exited {time.time() - signalled:.1f} s after the signal\n")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, "".join(lines), finished


@pytest.fixture(scope="module")
def chain(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("interrupt")
    space = write_space(tmp, name="ctrlc", n=N_TRIALS)
    results = tmp / "results"
    args = ["--space", space, "--data", synth_npz, "--results-dir", str(results), "--wandb", "offline", "--cpus", "2"]
    storage = results / "ctrlc" / "ray" / "ctrlc"
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), *args]
    saved = {}
    ctrl_c = run_until_finished(cmd, 1, signal.SIGINT)
    saved.update({t: saved_history(str(storage / f"trial_{t}")) for t in ctrl_c[2]})
    no_results_after_ctrl_c = not (results / "ctrlc" / "trials.csv").exists()
    kill = run_until_finished(cmd + ["--resume"], 1, signal.SIGKILL)
    saved.update({t: saved_history(str(storage / f"trial_{t}")) for t in kill[2]})
    resumed = orchestrate(*args, "--resume")
    return {"args": args, "results": results / "ctrlc", "storage": storage, "ctrl_c": ctrl_c, "kill": kill,
            "saved": saved, "no_results_after_ctrl_c": no_results_after_ctrl_c, "resumed": resumed}


def test_ctrl_c_says_how_to_resume(chain):
    rc, out, finished = chain["ctrl_c"]
    assert rc == 130, out[-3000:]
    said = out.split("\n[test]")[0].strip()
    assert "interrupted" in said and said.splitlines()[-1].strip().endswith("--resume"), out[-2000:]
    # wandb is on (offline, the default): a Ctrl-C still stops the sweep within seconds (it once took 30 min).
    took = float(re.search(r"exited ([\d.]+) s after the signal", out).group(1))
    assert took < 30, out[-2000:]
    assert "Traceback" not in out
    assert finished and chain["no_results_after_ctrl_c"]  # no trials.csv presenting part of a sweep as all of it


def test_resume_after_ctrl_c_and_kill_9_finishes_without_rerunning(chain):
    assert chain["kill"][0] == -signal.SIGKILL and chain["kill"][2], chain["kill"][1][-2000:]
    proc = chain["resumed"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming" in proc.stdout
    rows = read_csv(chain["results"] / "trials.csv")
    assert len(rows) == N_TRIALS == len({r["trial_id"] for r in rows})
    assert len(glob.glob(str(chain["storage"] / "*" / "result.json"))) == N_TRIALS
    history = read_csv(chain["results"] / "history.csv")
    assert len(chain["saved"]) >= 2
    for trial, saved in chain["saved"].items():
        after = [float(h["epoch_time_s"]) for h in history if h["trial_id"] == trial]
        assert after == [m["epoch_time_s"] for m in saved], f"{trial} was trained again after a resume"
    assert (chain["results"] / "final" / "metrics.json").is_file()


def _digests(folder) -> dict[str, str]:
    """sha256 of every result file the sweep writes itself (Ray's and wandb's own folders aside)."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
        rel = os.path.relpath(path, folder)
        if os.path.isfile(path) and not rel.startswith(("ray", "wandb", "logs")):
            out[rel] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def test_disk_full_on_resume_keeps_every_result(chain):
    assert chain["resumed"].returncode == 0
    before = _digests(chain["results"])
    assert {"trials.csv", "best.json", "report.md", "sweep.json", "final/metrics.json"} <= set(before)
    proc = orchestrate(*chain["args"], "--resume",
                       env={"PYTHONPATH": os.pathsep.join([INJECT, ROOT]), "FAULT_ENOSPC": "trials.csv"})
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "trials.csv" in last and "No space left on device" in last, proc.stderr
    assert "Traceback" not in proc.stderr
    after = _digests(chain["results"])
    after.pop("sweep.json"), before.pop("sweep.json")  # rewritten on every run (its command and time)
    assert after == before


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 75)], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("after, wait", [("[sweep] reading ", 0.3), ("[sweep] Ray started", 0.0)],
                         ids=["ray-starting", "ray-up"])
def test_a_signal_while_ray_starts_in_the_background(sig, status, after, wait, synth_npz, tmp_path):
    """Ray starts in a thread while the driver reads the data: a Ctrl-C or a scheduler's TERM then, or just after
    Ray is up (its core had put a C-level TERM handler of its own in place: it printed a stack), ends the run at
    once with its exit status, says nothing was started, and leaves no process of its session behind."""
    space = write_space(tmp_path, name="early")
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", synth_npz,
           "--results-dir", str(tmp_path / "results"), "--wandb", "off", "--cpus", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stdout:
            if line.startswith(after):  # "reading": Ray's thread has just been started
                break
        time.sleep(wait)
        proc.send_signal(sig)
        sent = time.time()
        out = proc.communicate(timeout=120)[0]
        took = time.time() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == status, out
    assert "Nothing was started" in out and "Traceback" not in out and "logging.cc" not in out, out
    assert took < 20, took
    deadline = time.time() + 10  # Ray's processes end with the thread that started them
    while time.time() < deadline:
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.5)
    assert not left, subprocess.run(["ps", "-o", "pid,args", "-p", ",".join(left)], capture_output=True,
                                    text=True).stdout
