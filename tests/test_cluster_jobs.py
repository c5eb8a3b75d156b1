"""cluster/slurm.sh and cluster/sge.sh run by stand-ins for the schedulers' commands (tests/helpers/fake_sched.py).

The stand-in queues jobs, starts one when the job it is held on has ended, gives it the scheduler's environment
and ends it as the real one does (warning signal, then SIGTERM / SIGKILL at the wall-clock limit). Most tests
put tests/helpers/fake_orchestrator.py in place of orchestrator.py (the scripts take the command from ORCH):
its "sweep" is a few one-second units and it keeps the orchestrator's exit contract (75 = not finished), so a
unit recorded twice would be finished work done twice. One test runs the real orchestrator on a tiny sweep.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from sweep_util import ROOT, read_csv, write_space

pytest_plugins = ["helpers.standins"]  # fixtures: fake_scheduler, fake_scheduler_netns

SCRIPTS = ("slurm.sh", "sge.sh")
FAKE_ORCH = f"{sys.executable} {os.path.join(ROOT, 'tests', 'helpers', 'fake_orchestrator.py')}"
# A job's wall-clock limit in each scheduler's own option (SUBMIT_ARGS overrides the script's #SBATCH / #$ lines).
LIMIT = {"slurm.sh": "--time=0:{s}", "sge.sh": "-l h_rt=0:0:{s}"}
WARN = {"slurm.sh": "--signal=B:USR1@{s}", "sge.sh": ""}  # SGE's -notify signal comes at h_rt itself


def submit(sched, tmp_path, script: str, timeout: float = 300, **variables) -> list[dict]:
    """bash cluster/<script> with these settings; waits until the chain has ended; its jobs, oldest first."""
    env = {**sched.env, "SPACE": str(tmp_path / "chain.yaml"), "RESULTS_DIR": str(tmp_path / "results"),
           "ORCH": FAKE_ORCH, "MARGIN": "3", "FAKE_UNIT_S": "1", **variables}
    if not (tmp_path / "chain.yaml").exists():
        write_space(tmp_path, name="chain", n=4)
    proc = subprocess.run(["bash", os.path.join(ROOT, "cluster", script)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "submitted job" in proc.stdout, proc.stdout + proc.stderr
    return sched.wait_idle(timeout)


def chain_dir(tmp_path):
    return tmp_path / "results" / "chain" / "chain"


def logs(tmp_path) -> str:
    d = chain_dir(tmp_path)
    return "".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(d.iterdir()) if p.is_file()) if d.exists() else ""


def runs(tmp_path) -> list[dict]:
    path = tmp_path / "results" / "chain" / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def units(tmp_path) -> list[str]:
    return (tmp_path / "results" / "chain" / "units").read_text().split()


def flag(run: dict, name: str):
    argv = run["argv"]
    return argv[argv.index(name) + 1] if name in argv else None


def seconds(duration: str) -> int:
    import re

    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    return int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + int(m[3] or 0)


@pytest.mark.parametrize("script", SCRIPTS)
def test_time_limit_exit_resubmits_with_resume_until_done(fake_scheduler, tmp_path, script):
    """A 12 s job, 10 one-second units: the orchestrator stops at its --time-limit (the job's time left minus
    MARGIN) with 75, the successor queued behind it continues with --resume, the last one cancels its own."""
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="10",
                  SUBMIT_ARGS=f"{LIMIT[script].format(s=12)} {WARN[script].format(s=1)}")
    out = logs(tmp_path)
    rs = runs(tmp_path)
    assert units(tmp_path) == [str(i) for i in range(10)], out  # every unit once, in order
    assert len(rs) >= 2 and [r["exit"] for r in rs] == [75] * (len(rs) - 1) + [0], out
    assert "--resume" not in rs[0]["argv"] and all("--resume" in r["argv"] for r in rs[1:]), out
    for r in rs:  # the job's 12 s minus MARGIN 3 (less the seconds the job took to get there)
        assert 0 < seconds(flag(r, "--time-limit")) <= 12 - 3, r
        assert r["signals"] == [], r  # stopped by its own limit, before the scheduler's warning
    ran = [j for j in jobs if j["state"] != "CANCELLED"]
    assert [j["exit"] for j in ran] == [r["exit"] for r in rs]
    assert [j["state"] for j in jobs][-1] == "CANCELLED" and len(jobs) == len(rs) + 1  # the unneeded successor
    assert all(j["after"] == [prev["id"]] for prev, j in zip(jobs, jobs[1:]))  # each held on the one before
    assert (chain_dir(tmp_path) / "status").read_text().split()[0] == "done"


@pytest.mark.parametrize("script", SCRIPTS)
def test_scheduler_warning_signal_stops_and_chain_resumes(fake_scheduler, tmp_path, script):
    """The orchestrator's own limit set far away: the scheduler's warning (SLURM --signal=B:USR1 to the batch
    shell, passed on; SGE -notify SIGUSR2 at h_rt to every process) is what stops it, with 75."""
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="10", TIME_LIMIT="1h",
                  SUBMIT_ARGS=f"{LIMIT[script].format(s=8)} {WARN[script].format(s=4)}")
    out = logs(tmp_path)
    rs = runs(tmp_path)
    assert units(tmp_path) == [str(i) for i in range(10)], out
    assert len(rs) >= 2 and rs[-1]["exit"] == 0, out
    want = "SIGUSR1" if script == "slurm.sh" else "SIGUSR2"
    assert all(r["exit"] == 75 and want in r["signals"] for r in rs[:-1]), out
    assert all(flag(r, "--time-limit") == "1h" for r in rs)
    assert all(j["exit"] in (0, 75) for j in jobs if j["state"] != "CANCELLED"), \
        "a job stopped by the warning must end by itself, before the scheduler's SIGKILL"


@pytest.mark.parametrize("script", SCRIPTS)
def test_hard_kill_leaves_the_successor_to_resume(fake_scheduler, tmp_path, script):
    """The first run ignores every signal and is killed (SIGKILL) at the limit, job shell included: nothing is
    written about how it ended, and the successor, queued before the sweep began, continues it."""
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="16", FAKE_IGNORE_SIGNALS="1", TIME_LIMIT="1h",
                  SUBMIT_ARGS=LIMIT[script].format(s=6) + " " + WARN[script].format(s=1))
    out = logs(tmp_path)
    rs = runs(tmp_path)
    assert jobs[0]["exit"] == -9, out  # killed
    assert units(tmp_path) == [str(i) for i in range(16)], out
    assert rs[-1]["exit"] == 0 and all("--resume" in r["argv"] for r in rs), out  # run 1 left no record


@pytest.mark.parametrize("script", SCRIPTS)
def test_resubmissions_are_capped(fake_scheduler, tmp_path, script):
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="30", MAX_RESUBMITS="1",
                  SUBMIT_ARGS=f"{LIMIT[script].format(s=8)} {WARN[script].format(s=1)}")
    out = logs(tmp_path)
    assert len(jobs) == 2 and [j["exit"] for j in jobs] == [75, 75], out
    assert "MAX_RESUBMITS=1 resubmissions used up" in out and "RESUME=1" in out
    assert (chain_dir(tmp_path) / "status").read_text().split()[0] == "stopped"
    done = units(tmp_path)
    assert done == [str(i) for i in range(len(done))] and 0 < len(done) < 30


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_sweep_without_a_model_ends_the_chain(fake_scheduler, tmp_path, script):
    """The orchestrator exits 3 (every trial errored): an error, not "finished": the queued successor is cancelled,
    the chain's status says stopped with that exit, and the job log says why."""
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="2", FAKE_NO_MODEL="1", TIME_LIMIT="1h",
                  SUBMIT_ARGS=LIMIT[script].format(s=900))  # the scheduler's warning (300 s before) never comes
    out = logs(tmp_path)
    assert [j["state"] for j in jobs] == ["FAILED", "CANCELLED"] and jobs[0]["exit"] == 3, out
    assert (chain_dir(tmp_path) / "status").read_text().split() == ["stopped", "0", jobs[0]["id"], "3"], out
    assert "no trial produced a model" in out and "the sweep produced no model" in out, out
    assert len(runs(tmp_path)) == 1


@pytest.mark.parametrize("script", SCRIPTS)
def test_chain_of_jobs_that_finish_nothing_stops(fake_scheduler, tmp_path, script):
    """Units longer than a job (a job too short for the orchestrator's start plus one epoch): the chain stops after
    MAX_STALLS jobs in a row without progress, saying so, instead of running to MAX_RESUBMITS."""
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="2", FAKE_UNIT_S="30", MAX_STALLS="2",
                  SUBMIT_ARGS=f"{LIMIT[script].format(s=8)} {WARN[script].format(s=1)}")
    out = logs(tmp_path)
    assert [j["state"] for j in jobs] == ["FAILED", "FAILED", "CANCELLED"], out
    assert "no finished epoch and no retrain progress in 2 jobs in a row" in out
    assert (chain_dir(tmp_path) / "status").read_text().split()[0] == "stopped"


@pytest.mark.parametrize("script", SCRIPTS)
def test_cancelled_chain_is_finished_by_a_resume(fake_scheduler, tmp_path, script):
    """scancel --name / qdel NAME of a running chain (its queued successor too): the sweep stops resumable, and
    RESUME=1 bash cluster/<script> finishes it."""
    import threading
    import time

    cancel = ["scancel", "--name=cifar-sweep"] if script == "slurm.sh" else ["qdel", "cifar-sweep"]

    def cancel_when_running():
        deadline = time.time() + 60
        while time.time() < deadline and not (tmp_path / "results" / "chain" / "units").exists():
            time.sleep(0.2)
        subprocess.run(cancel, env=fake_scheduler.env, check=True)

    t = threading.Thread(target=cancel_when_running)
    t.start()
    jobs = submit(fake_scheduler, tmp_path, script, FAKE_UNITS="8", TIME_LIMIT="1h",
                  SUBMIT_ARGS=LIMIT[script].format(s=60) + " " + WARN[script].format(s=1))
    t.join()
    assert [j["state"] for j in jobs] == ["FAILED", "CANCELLED"], logs(tmp_path)
    before = units(tmp_path)
    assert 0 < len(before) < 8
    submit(fake_scheduler, tmp_path, script, FAKE_UNITS="8", RESUME="1",
           SUBMIT_ARGS=LIMIT[script].format(s=60) + " " + WARN[script].format(s=1))
    assert units(tmp_path) == [str(i) for i in range(8)], logs(tmp_path)
    assert runs(tmp_path)[-1]["exit"] == 0 and "--resume" in runs(tmp_path)[-1]["argv"]


@pytest.mark.cluster
@pytest.mark.parametrize("script", SCRIPTS)
def test_several_nodes_join_one_ray_cluster(fake_scheduler_netns, tmp_path, script):
    """Two nodes (SLURM: node1, node2 from scontrol, addresses from NodeAddr; SGE: two hosts in $PE_HOSTFILE):
    a Ray head on the first, `ray start --address` on the other through srun / qrsh -inherit; the orchestrator
    is given --address and the shared --storage, and sees both nodes."""
    two = "--nodes=2" if script == "slurm.sh" else "-pe mpi 2"
    submit(fake_scheduler_netns, tmp_path, script, timeout=400, FAKE_UNITS="2", TIME_LIMIT="1h",
           SUBMIT_ARGS=f"{LIMIT[script].format(s=900)} {WARN[script].format(s=5)} {two}", RAY_PORT="6391")
    out = logs(tmp_path)
    rs = runs(tmp_path)
    assert len(rs) == 1 and rs[0]["exit"] == 0, out
    assert rs[0]["nodes"] == 2, out
    assert flag(rs[0], "--address") == "127.0.0.1:6391", out
    assert flag(rs[0], "--storage") == str(tmp_path / "results" / "chain" / "ray")
    assert "--cpus" not in rs[0]["argv"]


BAD = [  # variable, value, what the one line must name
    ("MARGIN", "ten", "MARGIN=ten"),
    ("MAX_RESUBMITS", "-1", "MAX_RESUBMITS=-1"),
    ("TIME_LIMIT", "soon", "TIME_LIMIT=soon"),
    ("SPACE", "/nonexistent.yaml", "SPACE=/nonexistent.yaml"),
    ("RESUME", "yes", "RESUME=yes"),
    ("ORCH_ARGS", "--resume", "--resume is set by the chain"),
    ("ORCH_ARGS", "--set 'name=x", "ORCH_ARGS="),
    ("PYTHON", "/nonexistent/python", "PYTHON=/nonexistent/python"),
    ("REPO", "/nonexistent", "REPO=/nonexistent"),
]


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("name,value,named", BAD)
def test_bad_setting_is_one_line_exit_2_and_nothing_queued(fake_scheduler, tmp_path, script, name, value, named):
    write_space(tmp_path, name="chain", n=4)
    env = {**fake_scheduler.env, "SPACE": str(tmp_path / "chain.yaml"), "RESULTS_DIR": str(tmp_path / "results"),
           name: value}
    proc = subprocess.run(["bash", os.path.join(ROOT, "cluster", script)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and named in proc.stderr, proc.stderr
    assert fake_scheduler.jobs() == []


@pytest.mark.parametrize("script,env,named", [
    ("sge.sh", {"JOB_ID": "7", "PE_HOSTFILE": "/nonexistent/pe_hostfile"}, "PE_HOSTFILE=/nonexistent/pe_hostfile"),
    ("slurm.sh", {"SLURM_JOB_ID": "7"}, "SLURM_JOB_NODELIST"),
])
def test_job_without_what_the_scheduler_gives_is_one_line_exit_2(tmp_path, script, env, named):
    """Run as a job (a copy outside cluster/, as the scheduler runs it) with its host list missing."""
    write_space(tmp_path, name="chain", n=4)
    copy = tmp_path / script
    shutil.copy(os.path.join(ROOT, "cluster", script), copy)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PE_HOSTFILE", "JOB_ID"))}
    base.update(REPO=ROOT, SPACE=str(tmp_path / "chain.yaml"), RESULTS_DIR=str(tmp_path / "results"), **env)
    proc = subprocess.run(["bash", str(copy)], env=base, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and named in proc.stderr, proc.stderr


def has_time_limit() -> bool:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "orchestrator.py"), "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    return "--time-limit" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_real_sweep_is_stopped_resubmitted_and_finished(fake_scheduler, tmp_path, synth_npz, script):
    """orchestrator.py itself, a tiny sweep on synthetic data, jobs of a few tens of seconds: stopped at the
    time limit, continued by the chain with --resume, finished; every trial once, no epoch trained twice."""
    if not has_time_limit():
        pytest.skip("orchestrator.py has no --time-limit yet (the chain's contract with it)")
    write_space(tmp_path, name="chain", n=16)
    # About 700 trial-epochs of 0.1-0.5 s (this machine idle or loaded): longer than one 60 s job either way. A
    # job must leave room for Ray's start (10-30 s) and an epoch, or the chain stops itself after MAX_STALLS jobs.
    jobs = submit(fake_scheduler, tmp_path, script, timeout=1500, ORCH="", DATA=synth_npz, MARGIN="15",
                  ORCH_ARGS="--wandb off --no-retrain --set fixed.epochs=60 --set asha.grace_period=30",
                  SUBMIT_ARGS=f"{LIMIT[script].format(s=60)} {WARN[script].format(s=5)}")
    out = logs(tmp_path)
    ran = [j for j in jobs if j["state"] != "CANCELLED"]
    assert len(ran) >= 2 and [j["exit"] for j in ran] == [75] * (len(ran) - 1) + [0], out[-6000:]
    folder = tmp_path / "results" / "chain"
    trials = read_csv(folder / "trials.csv")
    assert len(trials) == 16 and len({t["trial_id"] for t in trials}) == 16
    epochs = [(r["trial_id"], r["epoch"]) for r in read_csv(folder / "history.csv")]
    assert len(epochs) == len(set(epochs)), "an epoch was recorded twice"
