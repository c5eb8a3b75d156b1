"""A sweep stopped by a scheduler's signal and by --time-limit, resumed until it finishes (issue: 2-hour jobs).

1. SIGUSR1 (SGE's -notify warning; SLURM's --signal) once the first epoch is reported: exit 75 (EXIT_RESUME),
   the command to continue printed, results so far written (trials in flight marked `interrupted`), no best.json.
2. The same command plus --resume and a time limit of a few tens of seconds, again and again until exit 0:
   every stop is exit 75, and in the end every trial is counted once and no epoch saved before a stop was
   trained again (each epoch's own timing is the one saved before the stop).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from sweep_util import ROOT, read_csv, write_space

from sweep.cli import EXIT_RESUME

N_TRIALS = 5


def run(cmd, signal_after_first_epoch=False, timeout=420):
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines, t0 = [], time.time()
    try:
        for line in proc.stdout:
            lines.append(line)
            if signal_after_first_epoch and re.search(r"\[sweep\] trial \w+ epoch 1/", line):
                proc.send_signal(signal.SIGUSR1)
                signal_after_first_epoch = False
            if time.time() - t0 > timeout:
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, "".join(lines)


def statuses(results) -> list[str]:
    path = results / "trials.csv"
    return [r["status"] for r in read_csv(path)] if path.exists() else []


def saved_epochs(results) -> dict[tuple[str, int], float]:
    path = results / "history.csv"
    if not path.exists():
        return {}
    return {(h["trial_id"], int(h["epoch"])): float(h["epoch_time_s"]) for h in read_csv(path)}


@pytest.fixture(scope="module")
def stops(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("limit")
    space = write_space(tmp, name="limit", n=N_TRIALS)
    results = tmp / "results"
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", space, "--data", synth_npz,
           "--results-dir", str(results), "--wandb", "offline", "--cpus", "2", "--no-robustness"]
    first = run(cmd, signal_after_first_epoch=True)
    after_signal = {"statuses": statuses(results / "limit"), "best": (results / "limit" / "best.json").exists(),
                    "report": (results / "limit" / "report.md").exists()}
    runs = [first + (saved_epochs(results / "limit"),)]
    for _ in range(8):
        rc, out = run(cmd + ["--resume", "--time-limit", "45s"])
        runs.append((rc, out, saved_epochs(results / "limit")))
        if rc != EXIT_RESUME:
            break
    return results / "limit", runs, after_signal


def test_a_scheduler_signal_stops_resumably(stops):
    folder, runs, after = stops
    rc, out, saved = runs[0]
    assert rc == EXIT_RESUME, out[-3000:]
    assert "not finished (signal)" in out and out.strip().splitlines()[-1].strip().endswith("--resume"), out[-2000:]
    assert "Traceback" not in out
    # What exists is written and readable, the trials in flight marked as such; no best.json for a part.
    assert set(after["statuses"]) <= {"completed", "stopped_early", "interrupted"}
    assert "interrupted" in after["statuses"] and not after["best"] and after["report"]


def test_time_limited_jobs_resume_until_the_sweep_is_done(stops):
    folder, runs, _ = stops
    assert runs[-1][0] == 0, runs[-1][1][-3000:]
    for rc, out, _ in runs[1:-1]:
        assert rc == EXIT_RESUME and "not finished (time-limit)" in out, out[-3000:]
        assert "time limit" in out  # said by the sweep, or by the retrain when it stops between epochs
    rows = read_csv(folder / "trials.csv")
    assert len(rows) == N_TRIALS == len({r["trial_id"] for r in rows})
    assert all(r["status"] in ("completed", "stopped_early") for r in rows)
    final = saved_epochs(folder)
    for _rc, _out, saved in runs[:-1]:
        for key, took in saved.items():
            assert final.get(key) == took, f"trial {key[0]} epoch {key[1]} was trained again after a stop"
    assert (folder / "best.json").is_file() and (folder / "final" / "metrics.json").is_file()
