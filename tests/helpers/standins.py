"""Fixture: the stand-in scheduler (tests/helpers/fake_sched.py) running, its commands first on PATH."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
COMMANDS = ("sbatch", "squeue", "scancel", "srun", "scontrol", "qsub", "qstat", "qdel", "qrsh")


class FakeScheduler:
    """netns=True: jobs run in a fresh network namespace whose only interface is loopback (several Ray nodes on
    127.0.0.1, as in test_cluster.py: nothing they start can listen beyond it). Needs root and unshare."""

    def __init__(self, root, netns: bool = False):
        self.dir = str(root / "sched")
        os.makedirs(os.path.join(self.dir, "jobs"))
        bindir = root / "sched-bin"
        bindir.mkdir()
        for name in COMMANDS:
            path = bindir / name
            path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE}/fake_sched.py" {name} "$@"\n')
            path.chmod(0o755)
        # A Ray token of the test's own: a multi-node job would otherwise make one in ~/.ray (cluster/lib.sh).
        self.env = {**os.environ, "FAKE_SCHED": self.dir, "PATH": f"{bindir}:{os.environ['PATH']}",
                    "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        self.log = open(root / "sched.log", "w")
        cmd = [sys.executable, os.path.join(HERE, "fake_sched.py"), "daemon", self.dir]
        if netns:  # unshare and sh exec: the pid is the daemon's
            cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *cmd]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def jobs(self) -> list[dict]:
        out = []
        for name in os.listdir(os.path.join(self.dir, "jobs")):
            if name.endswith(".json"):
                with open(os.path.join(self.dir, "jobs", name)) as f:
                    out.append(json.load(f))
        return sorted(out, key=lambda j: int(j["id"]))

    def wait_idle(self, timeout: float) -> list[dict]:
        """Until no job is pending or running (every chain ended); the jobs, oldest first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.jobs()
            if jobs and all(j["state"] not in ("PENDING", "RUNNING") for j in jobs):
                return jobs
            assert self.proc.poll() is None, "the stand-in scheduler died (see sched.log)"
            time.sleep(0.5)
        raise AssertionError(f"jobs still queued or running after {timeout}s: {self.jobs()}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def fake_scheduler(tmp_path):
    sched = FakeScheduler(tmp_path)
    yield sched
    sched.stop()


@pytest.fixture
def fake_scheduler_netns(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a loopback-only network namespace")
    sched = FakeScheduler(tmp_path, netns=True)
    yield sched
    sched.stop()
