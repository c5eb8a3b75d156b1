"""cluster/slurm.sh under a real SLURM (slurmctld + slurmd + munge from Debian's packages, on 127.0.0.1).

The scheduler itself sets the job's environment, resolves --dependency=afterany, sends --signal=B:USR1 and
ends the job at its --time limit (TIMEOUT); nothing here imitates it. Slow (each job runs a minute or more:
SLURM's limits are whole minutes). Run them with:

    sudo cluster/install_schedulers.sh && .venv/bin/pytest -m scheduler tests/test_cluster_schedulers.py

They skip, saying why, where SLURM is not installed or this is not root.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from sweep_util import ROOT, read_csv, write_space

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]
pytest_plugins = ["helpers.slurm", "helpers.sge"]  # fixtures: slurm, slurm_two_nodes, sge

FAKE_ORCH = f"{sys.executable} {os.path.join(ROOT, 'tests', 'helpers', 'fake_orchestrator.py')}"
# This host has no GPU and 2 CPUs per node: the script's --gres=gpu:1 and --cpus-per-task=4 overridden.
RESOURCES = "--gres=none --cpus-per-task=1 --time=1"


def submit(slurm, tmp_path, **variables) -> subprocess.CompletedProcess:
    if not (tmp_path / "chain.yaml").exists():
        write_space(tmp_path, name="chain", n=4)
    env = {**slurm.env, "SPACE": str(tmp_path / "chain.yaml"), "RESULTS_DIR": str(tmp_path / "results"),
           "ORCH": FAKE_ORCH, "FAKE_UNIT_S": "1", **variables}
    proc = slurm.run("bash", os.path.join(ROOT, "cluster", "slurm.sh"), env=env)
    assert proc.returncode == 0 and "submitted job" in proc.stdout, proc.stdout + proc.stderr
    return proc


def folder(tmp_path):
    return tmp_path / "results" / "chain"


def logs(tmp_path) -> str:
    d = folder(tmp_path) / "chain"
    return "".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(d.iterdir()) if p.is_file()) if d.exists() else ""


def runs(tmp_path) -> list[dict]:
    path = folder(tmp_path) / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def units(tmp_path) -> list[str]:
    return (folder(tmp_path) / "units").read_text().split()


def test_time_limit_chain_under_slurm(slurm, tmp_path):
    """--time=1: the orchestrator's --time-limit is SLURM's own time left (squeue %L) minus MARGIN; it exits 75,
    the successor SLURM held with afterany continues with --resume; the last job cancels its successor."""
    submit(slurm, tmp_path, FAKE_UNITS="50", MARGIN="25", SUBMIT_ARGS=f"{RESOURCES} --signal=B:USR1@1")
    jobs = slurm.wait_idle(600)
    out = logs(tmp_path) + str(jobs)
    rs = runs(tmp_path)
    assert units(tmp_path) == [str(i) for i in range(50)], out
    assert len(rs) >= 2 and [r["exit"] for r in rs] == [75] * (len(rs) - 1) + [0], out
    assert [j["state"] for j in jobs] == ["FAILED"] * (len(rs) - 1) + ["COMPLETED", "CANCELLED"], out
    assert jobs[-1]["dependency"].startswith(f"afterany:{jobs[-2]['id']}"), out  # held on the last one
    limits = [r["argv"][r["argv"].index("--time-limit") + 1] for r in rs]
    assert all(0 < int(lim[:-1]) <= 60 - 25 for lim in limits), limits  # seconds: squeue's %L minus MARGIN


def test_killed_at_the_limit_then_warned_by_signal(slurm, tmp_path):
    """The first run ignores signals: SLURM ends the job at its limit (TIMEOUT, SIGTERM then SIGKILL) and the
    successor resumes; later runs, their own limit an hour away, are stopped by --signal=B:USR1 (passed on by the
    job shell) and exit 75 before the kill."""
    submit(slurm, tmp_path, FAKE_UNITS="130", FAKE_IGNORE_SIGNALS="1", TIME_LIMIT="1h",
           SUBMIT_ARGS=f"{RESOURCES} --signal=B:USR1@40")
    jobs = slurm.wait_idle(900)
    out = logs(tmp_path) + str(jobs)
    rs = runs(tmp_path)
    assert jobs[0]["state"] == "TIMEOUT", out
    assert units(tmp_path) == [str(i) for i in range(130)], out
    assert rs[-1]["exit"] == 0 and all("--resume" in r["argv"] for r in rs), out
    warned = [r for r in rs if r["exit"] == 75]
    assert warned and all(r["signals"] == ["SIGUSR1"] for r in warned), out
    assert all(j["state"] != "TIMEOUT" for j in jobs[1:]), out


def test_scancel_leaves_a_sweep_that_resume_finishes(slurm, tmp_path):
    def cancel_when_running():
        deadline = time.time() + 120
        while time.time() < deadline and not (folder(tmp_path) / "units").exists():
            time.sleep(0.5)
        slurm.run("scancel", "--name=cifar-sweep")

    t = threading.Thread(target=cancel_when_running)
    t.start()
    submit(slurm, tmp_path, FAKE_UNITS="20", TIME_LIMIT="1h", SUBMIT_ARGS=f"{RESOURCES} --signal=B:USR1@5")
    t.join()
    jobs = slurm.wait_idle(300)
    assert [j["state"] for j in jobs] == ["CANCELLED", "CANCELLED"], logs(tmp_path) + str(jobs)
    assert 0 < len(units(tmp_path)) < 20
    submit(slurm, tmp_path, FAKE_UNITS="20", TIME_LIMIT="1h", RESUME="1", SUBMIT_ARGS=f"{RESOURCES} "
                                                                                    f"--signal=B:USR1@5")
    slurm.wait_idle(300)
    assert units(tmp_path) == [str(i) for i in range(20)], logs(tmp_path)
    assert runs(tmp_path)[-1]["exit"] == 0 and "--resume" in runs(tmp_path)[-1]["argv"]


def test_two_nodes_one_ray_cluster_under_slurm(slurm_two_nodes, tmp_path):
    """Two slurmd (n1, n2) on this host: the job's head starts Ray on n1, srun starts `ray start --address` on n2,
    addresses from SLURM's NodeAddr; the orchestrator sees two Ray nodes."""
    submit(slurm_two_nodes, tmp_path, FAKE_UNITS="2", TIME_LIMIT="1h", RAY_PORT="6392",
           SUBMIT_ARGS="--gres=none --cpus-per-task=1 --time=5 --nodes=2")
    jobs = slurm_two_nodes.wait_idle(600)
    out = logs(tmp_path) + str(jobs)
    rs = runs(tmp_path)
    assert len(rs) == 1 and rs[0]["exit"] == 0 and rs[0]["nodes"] == 2, out
    assert rs[0]["argv"][rs[0]["argv"].index("--address") + 1] == "127.0.0.1:6392", out


def test_real_sweep_chain_under_slurm(slurm, tmp_path, synth_npz):
    """orchestrator.py itself on a tiny sweep, 1-minute jobs: stopped by its time limit, continued with --resume
    by the job SLURM held, finished; every trial once, no epoch recorded twice."""
    help_text = subprocess.run([sys.executable, os.path.join(ROOT, "orchestrator.py"), "--help"],
                               capture_output=True, text=True).stdout
    if "--time-limit" not in help_text:
        pytest.skip("orchestrator.py has no --time-limit yet (the chain's contract with it)")
    write_space(tmp_path, name="chain", n=16)  # about 700 trial-epochs of 0.1-0.5 s: longer than one job
    submit(slurm, tmp_path, ORCH="", DATA=synth_npz, MARGIN="15",
           ORCH_ARGS="--wandb off --no-retrain --set fixed.epochs=60 --set asha.grace_period=30",
           SUBMIT_ARGS="--gres=none --cpus-per-task=2 --time=1 --signal=B:USR1@5")
    jobs = slurm.wait_idle(1800)
    out = logs(tmp_path)[-8000:] + str(jobs)
    assert jobs[-1]["state"] == "CANCELLED" and jobs[-2]["state"] == "COMPLETED" and len(jobs) >= 3, out
    trials = read_csv(folder(tmp_path) / "trials.csv")
    assert len(trials) == 16 and len({t["trial_id"] for t in trials}) == 16
    epochs = [(r["trial_id"], r["epoch"]) for r in read_csv(folder(tmp_path) / "history.csv")]
    assert len(epochs) == len(set(epochs)), "an epoch was recorded twice"


# ---- Grid Engine ---------------------------------------------------------------------------------------------

def submit_sge(sge, tmp_path, **variables) -> str:
    if not (tmp_path / "chain.yaml").exists():
        write_space(tmp_path, name="chain", n=4)
    env = {**sge.env, "SPACE": str(tmp_path / "chain.yaml"), "RESULTS_DIR": str(tmp_path / "results"),
           "ORCH": FAKE_ORCH, "FAKE_UNIT_S": "1", **variables}
    proc = sge.run("bash", os.path.join(ROOT, "cluster", "sge.sh"), env=env)
    assert proc.returncode == 0 and "submitted job" in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout.split("submitted job ")[1].split()[0]


def sge_jobs(sge, tmp_path) -> list[dict]:
    """Every job of the chain that ran, from SGE's accounting, oldest first."""
    ids = sorted(int(p.name.rsplit(".o", 1)[1]) for p in (folder(tmp_path) / "chain").glob("cifar-sweep.o*"))
    return [{"id": str(i), **sge.finished(str(i))} for i in ids]


def test_time_limit_chain_under_sge(sge, tmp_path):
    """h_rt=40 s: the orchestrator's --time-limit is the job's h_rt as `qstat -j` shows it, minus MARGIN; it exits
    75, the job held with -hold_jid continues with --resume; the last job deletes its successor."""
    submit_sge(sge, tmp_path, FAKE_UNITS="45", MARGIN="10", SUBMIT_ARGS="-l h_rt=0:0:40")
    sge.wait_idle(600)
    out = logs(tmp_path)
    rs = runs(tmp_path)
    assert units(tmp_path) == [str(i) for i in range(45)], out
    assert len(rs) >= 2 and [r["exit"] for r in rs] == [75] * (len(rs) - 1) + [0], out
    limits = [int(r["argv"][r["argv"].index("--time-limit") + 1][:-1]) for r in rs]
    assert all(20 <= lim <= 30 for lim in limits), limits  # 40 s less MARGIN 10 less the seconds already run
    jobs = sge_jobs(sge, tmp_path)
    assert [j["exit_status"] for j in jobs] == [str(r["exit"]) for r in rs], out + str(jobs)
    assert all(j["failed"] == "0" for j in jobs), jobs  # each ended by itself
    assert "resource_list" not in out


def test_notify_and_hard_kill_under_sge(sge, tmp_path):
    """The first run ignores signals: SGE's SIGUSR2 (-notify) at h_rt, then SIGKILL 10 s later (the queue's
    notify time); the successor resumes; later runs, their own limit an hour away, stop at -notify's SIGUSR2,
    which SGE sends to the whole job (the orchestrator included)."""
    submit_sge(sge, tmp_path, FAKE_UNITS="60", FAKE_IGNORE_SIGNALS="1", TIME_LIMIT="1h",
               SUBMIT_ARGS="-l h_rt=0:0:20")
    sge.wait_idle(900)
    out = logs(tmp_path)
    rs = runs(tmp_path)
    jobs = sge_jobs(sge, tmp_path)
    assert "h_rt" in jobs[0]["failed"] or jobs[0]["exit_status"] == "137", jobs  # killed by SGE
    assert units(tmp_path) == [str(i) for i in range(60)], out
    assert rs[-1]["exit"] == 0 and all("--resume" in r["argv"] for r in rs), out
    warned = [r for r in rs if r["exit"] == 75]
    assert warned and all(r["signals"] == ["SIGUSR2"] for r in warned), out  # once: not passed on a second time


def test_qdel_leaves_a_sweep_that_resume_finishes(sge, tmp_path):
    def delete_when_running():
        deadline = time.time() + 120
        while time.time() < deadline and not (folder(tmp_path) / "units").exists():
            time.sleep(0.5)
        sge.run("qdel", "cifar-sweep")

    t = threading.Thread(target=delete_when_running)
    t.start()
    submit_sge(sge, tmp_path, FAKE_UNITS="20", TIME_LIMIT="1h", SUBMIT_ARGS="-l h_rt=0:5:0")
    t.join()
    sge.wait_idle(300)
    assert 0 < len(units(tmp_path)) < 20, logs(tmp_path)
    submit_sge(sge, tmp_path, FAKE_UNITS="20", TIME_LIMIT="1h", RESUME="1", SUBMIT_ARGS="-l h_rt=0:5:0")
    sge.wait_idle(300)
    assert units(tmp_path) == [str(i) for i in range(20)], logs(tmp_path)
    assert runs(tmp_path)[-1]["exit"] == 0 and "--resume" in runs(tmp_path)[-1]["argv"]
