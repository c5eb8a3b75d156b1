"""Fixture: a real single-host SLURM (Debian's slurm-wlm 22.05 + munge), one or several slurmd "nodes" on 127.0.0.1.

Everything runs inside a fresh network namespace whose only interface is loopback (held by a `sleep` the fixture
starts): slurmctld, slurmd and munged cannot listen beyond 127.0.0.1, ports cannot collide with anything else
on this machine, and the Ray nodes a job starts live there too. The config is written here: munge with a key
made here, SlurmUser root, proctrack/linuxproc + task/none (no cgroups in this sandbox), select/cons_tres,
KillWait 5 s. Every daemon is started in the foreground (-D / -F) and stopped by its own pid, after every job
has been cancelled and has ended. Needs root, unshare and nsenter; install with cluster/install_schedulers.sh.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
from helpers import netns

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel")


def missing() -> str | None:
    """Why a real SLURM cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (slurmd runs jobs as their user; munge keys)"
    absent = [d for d in DAEMONS + ("unshare", "nsenter") if shutil.which(d) is None and
              not os.path.exists(f"/usr/sbin/{d}")]
    if absent:
        return f"SLURM not installed ({', '.join(absent)} missing): run cluster/install_schedulers.sh"
    return None


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


CONF = """\
ClusterName=cifartest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.sock
StateSaveLocation={dir}/ctld
SlurmdSpoolDir={dir}/d/%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd-%n.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
CommunicationParameters=NoInAddrAny
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=600
SlurmctldDebug=info
SlurmdDebug=info
{nodes}
PartitionName=test Nodes={names} Default=YES MaxTime=INFINITE State=UP
"""


class Slurm:
    def __init__(self, nodes: int = 1, cpus: int = 2):
        # Short: munge's and slurmd's socket paths must fit 108 bytes (pytest's tmp_path may not)
        self.dir = tempfile.mkdtemp(prefix="slurm-", dir="/tmp")
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.names = [f"n{i + 1}" for i in range(nodes)]
        for sub in ("ctld", "log", *(f"d/{n}" for n in self.names)):
            os.makedirs(os.path.join(self.dir, sub))
        self.conf = os.path.join(self.dir, "slurm.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(host=socket.gethostname(), dir=self.dir, names=",".join(self.names), nodes="\n".join(
                f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} Port={16818 + i} CPUs={cpus} "
                f"State=UNKNOWN" for i, n in enumerate(self.names))))
        # A Ray token of the test's own: a multi-node job would otherwise make one in ~/.ray (cluster/lib.sh).
        self.env = {**os.environ, "SLURM_CONF": self.conf, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        for k in [k for k in self.env if k.startswith(("SLURM_JOB", "SLURM_STEP", "SBATCH_"))]:
            del self.env[k]
        self.holder = netns.hold()  # (why its lo has a second address: netns.hold; NoInAddrAny binds 127.0.0.1)
        try:
            self._start_daemons()
        except BaseException:
            self.stop()
            raise

    def _start_daemons(self) -> None:
        key = os.path.join(self.dir, "munge.key")
        subprocess.run([_bin("mungekey"), "--create", f"--keyfile={key}"], check=True)
        self._start("munged", _bin("munged"), "-F", "--force", f"--key-file={key}", f"--socket={self.dir}/munge.sock",
                    f"--pid-file={self.dir}/munged.pid", f"--log-file={self.dir}/log/munged.log",
                    f"--seed-file={self.dir}/munge.seed")
        self._wait(lambda: os.path.exists(f"{self.dir}/munge.sock"), 30, "munged made no socket")
        self._start("slurmctld", _bin("slurmctld"), "-D", "-f", self.conf)
        for n in self.names:
            self._start(f"slurmd {n}", _bin("slurmd"), "-D", "-N", n, "-f", self.conf)
        self._wait(self._idle, 90, "the nodes never became idle in sinfo")

    def cmd(self, *args: str) -> list[str]:
        """A command run inside the namespace, where the daemons listen."""
        return netns.enter(self.holder, *args)

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), env=kw.pop("env", self.env), capture_output=True, text=True,
                              timeout=kw.pop("timeout", 60), **kw)

    def _start(self, name: str, *args: str) -> None:
        log = open(os.path.join(self.dir, "log", f"{name.replace(' ', '-')}.out"), "w")
        # nsenter execs the daemon in place: the pid held is the daemon's own
        self.procs.append((name, subprocess.Popen(self.cmd(*args), env=self.env, stdout=log,
                                                  stderr=subprocess.STDOUT)))

    def _idle(self) -> bool:
        for name, p in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"{name} exited {p.returncode} at start: {self.daemon_log(name)}")
        out = self.run("sinfo", "-h", "-o", "%t %D").stdout.split()
        return out[:1] == ["idle"] and int(out[1]) == len(self.names)

    def _wait(self, ready, timeout: float, why: str) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"{why} after {timeout}s: {self.daemon_log('slurmctld')[-3000:]}")

    def daemon_log(self, name: str) -> str:
        out = []
        for f in sorted(os.listdir(os.path.join(self.dir, "log"))):
            if name.split()[0] in f:
                with open(os.path.join(self.dir, "log", f), errors="replace") as fh:
                    out.append(f"--- {f}\n{fh.read()}")
        return "\n".join(out)

    def jobs(self) -> list[dict]:
        """Every job the controller remembers (MinJobAge 600 s): id, name, state, exit code."""
        out = self.run("scontrol", "show", "job", "-o").stdout
        jobs = []
        for line in out.splitlines():
            f = dict(x.split("=", 1) for x in line.split() if "=" in x)
            if "JobId" in f:
                jobs.append({"id": f["JobId"], "name": f.get("JobName"), "state": f.get("JobState"),
                             "exit": f.get("ExitCode"), "reason": f.get("Reason"),
                             "dependency": f.get("Dependency")})
        return sorted(jobs, key=lambda j: int(j["id"]))

    def wait_idle(self, timeout: float) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = self.jobs()
            if jobs and all(j["state"] not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for j in jobs):
                return jobs
            time.sleep(2)
        raise AssertionError(f"jobs still queued or running after {timeout}s: {self.jobs()}")

    def stop(self) -> None:
        """Cancel every job and wait for it to end (its processes belong to no daemon we hold), then each daemon."""
        if self.procs and self.run("scancel", "--user=root").returncode == 0:
            deadline = time.time() + 60
            while time.time() < deadline and any(j["state"] in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")
                                                 for j in self.jobs()):
                time.sleep(1)
        netns.stop(self.procs, self.holder)  # slurmd, slurmctld, then munged
        shutil.rmtree(self.dir, ignore_errors=True)


def _fixture(nodes: int):
    why = missing()
    if why:
        pytest.skip(why)
    s = Slurm(nodes=nodes)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def slurm():
    yield from _fixture(1)


@pytest.fixture
def slurm_two_nodes():
    yield from _fixture(2)
