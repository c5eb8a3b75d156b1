"""Fixture: a real single-host Son of Grid Engine 8.1.9 (Debian's gridengine-* packages) on 127.0.0.1.

Like helpers/slurm.py: a fresh loopback-only network namespace (with a documentation-range address on lo,
which getaddrinfo(AI_ADDRCONFIG) needs), a cell of its own under a temporary SGE_ROOT (the package's binaries
linked in; berkeleydb spooling, as Debian's init_cluster makes it), qmaster and execd in the foreground
(SGE_ND=1) and stopped by their own pids after every job has ended. The one host has the course's resources
as complexes (gpus=1, gpu_type=P100: cluster/sge.sh's #$ lines unchanged), a queue that runs a script with its
#! line (unix_behavior), notify 10 s, and a parallel environment "mpi". SGE reads 127.0.0.1 back as
"localhost", so the cell's host_aliases makes this host's name its alias.
"""
from __future__ import annotations

import os
import secrets
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
from helpers import netns

PKG = "/var/lib/gridengine"
BIN = "/usr/lib/gridengine"
CELL = "test"

EXEC_HOST = """hostname localhost
load_scaling NONE
complex_values gpus=1,gpu_type=P100
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
"""
PE = """pe_name mpi
slots 8
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule $round_robin
control_slaves TRUE
job_is_first_task FALSE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
"""


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (execd runs jobs as their user)"
    need = [f"{BIN}/sge_qmaster", f"{BIN}/sge_execd", f"{BIN}/qconf", f"{BIN}/spoolinit", "/usr/bin/qsub"]
    absent = [p for p in need if not os.path.exists(p)] + [c for c in ("unshare", "nsenter") if not shutil.which(c)]
    if absent:
        return f"Grid Engine not installed ({', '.join(absent)} missing): run cluster/install_schedulers.sh"
    return None


class GridEngine:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="sge-", dir="/tmp")
        self.procs: list[tuple[str, subprocess.Popen]] = []
        r = self.root
        for d in ("bin", "lib", "utilbin", "util"):
            os.symlink(f"{PKG}/{d}", f"{r}/{d}")
        for d in (f"{CELL}/common", "spool/qmaster", "spool/execd", "spool/db", "log"):
            os.makedirs(f"{r}/{d}")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SGE_", "JOB_", "PE_"))}
        self.env["RAY_AUTH_TOKEN"] = secrets.token_hex(16)  # a multi-node job would otherwise make one in ~/.ray
        self.env.update(SGE_ROOT=r, SGE_CELL=CELL, SGE_QMASTER_PORT="16444", SGE_EXECD_PORT="16445")
        with open(f"{r}/{CELL}/common/bootstrap", "w") as f:
            f.write(f"admin_user root\ndefault_domain none\nignore_fqdn true\nspooling_method berkeleydb\n"
                    f"spooling_lib libspoolb\nspooling_params {r}/spool/db\nbinary_path /usr/sbin\n"
                    f"qmaster_spool_dir {r}/spool/qmaster\nsecurity_mode none\nlistener_threads 2\n"
                    f"worker_threads 2\nscheduler_threads 1\n")
        with open(f"{r}/{CELL}/common/act_qmaster", "w") as f:
            f.write("localhost\n")
        with open(f"{r}/{CELL}/common/host_aliases", "w") as f:
            f.write(f"localhost {socket.gethostname()}\n")
        conf = open("/usr/share/gridengine/default-configuration").read()
        conf = re.sub(r"(?m)^execd_spool_dir .*$", f"execd_spool_dir {r}/spool/execd", conf)
        conf = re.sub(r"(?m)^min_uid .*$", "min_uid 0", conf)  # the tests run as root
        conf = re.sub(r"(?m)^min_gid .*$", "min_gid 0", conf)
        conf = re.sub(r"(?m)^load_report_time .*$", "load_report_time 00:00:05", conf)
        conf = re.sub(r"(?m)^reporting_params .*$", "reporting_params accounting=true reporting=false "
                      "flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00", conf)
        with open(f"{r}/global.conf", "w") as f:
            f.write(conf)
        for args in (["spoolinit", "berkeleydb", "libspoolb", f"{r}/spool/db", "init"],
                     ["spooldefaults", "configuration", f"{r}/global.conf"],
                     ["spooldefaults", "complexes", "/usr/share/gridengine/util/resources/centry"],
                     ["spooldefaults", "usersets", "/usr/share/gridengine/util/resources/usersets"],
                     ["spooldefaults", "managers", "root"]):
            subprocess.run([f"{BIN}/{args[0]}", *args[1:]], env=self.env, check=True, capture_output=True)
        self.holder = netns.hold()
        try:
            self._start_daemons()
        except BaseException:
            self.stop()
            raise

    def _start_daemons(self) -> None:
        r = self.root
        self._start("qmaster", f"{BIN}/sge_qmaster")
        self._wait(lambda: self.run("qconf", "-sh").returncode == 0, 60, "qmaster never answered")
        q = lambda *a: self._ok("qconf", *a)  # noqa: E731
        q("-as", "localhost")
        complexes = self.run("qconf", "-sc").stdout
        self._file("complexes", complexes + "gpus gpus INT <= YES YES 0 0\n"
                                            "gpu_type gpu_type RESTRING == YES NO NONE 0\n")
        q("-Mc", f"{r}/complexes")
        self._file("exechost", EXEC_HOST)
        q("-Ae", f"{r}/exechost")
        self._file("pe", PE)
        q("-Ap", f"{r}/pe")
        queue = self.run("qconf", "-sq").stdout  # the template
        for key, value in (("qname", "all.q"), ("hostlist", "localhost"), ("slots", "2"), ("pe_list", "mpi"),
                           ("shell_start_mode", "unix_behavior"), ("shell", "/bin/bash"), ("notify", "00:00:10"),
                           ("load_thresholds", "NONE")):
            queue = re.sub(rf"(?m)^{key} .*$", f"{key} {value}", queue)
        self._file("queue", queue)
        q("-Aq", f"{r}/queue")
        sched = self.run("qconf", "-ssconf").stdout
        for key, value in (("schedule_interval", "0:0:1"), ("flush_submit_sec", "1"), ("flush_finish_sec", "1")):
            sched = re.sub(rf"(?m)^{key} .*$", f"{key} {value}", sched)
        self._file("sched", sched)
        q("-Msconf", f"{r}/sched")
        self._start("execd", f"{BIN}/sge_execd")
        self._wait(self._queue_ready, 90, "the queue never came up")

    def _file(self, name: str, text: str) -> None:
        with open(os.path.join(self.root, name), "w") as f:
            f.write(text)

    def _ok(self, *args: str) -> None:
        proc = self.run(*args)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {proc.stdout}{proc.stderr}")

    def cmd(self, *args: str) -> list[str]:
        exe = args[0] if "/" in args[0] else (f"{BIN}/{args[0]}" if os.path.exists(f"{BIN}/{args[0]}") else args[0])
        return netns.enter(self.holder, exe, *args[1:])

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), env=kw.pop("env", self.env), capture_output=True, text=True,
                              timeout=kw.pop("timeout", 60), **kw)

    def _start(self, name: str, exe: str) -> None:
        log = open(os.path.join(self.root, "log", f"{name}.out"), "w")
        self.procs.append((name, subprocess.Popen(self.cmd(exe), env={**self.env, "SGE_ND": "1"}, stdout=log,
                                                  stderr=subprocess.STDOUT)))

    def _queue_ready(self) -> bool:
        for name, p in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"sge_{name} exited {p.returncode} at start: {self.daemon_log()}")
        lines = [x.split() for x in self.run("qstat", "-f").stdout.splitlines() if x.startswith("all.q@")]
        return bool(lines) and len(lines[0]) == 5  # queue, type, slots, load, arch: no state letters

    def _wait(self, ready, timeout: float, why: str) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"{why} after {timeout}s: {self.daemon_log()}")

    def daemon_log(self) -> str:
        out = []
        for path in (f"{self.root}/log/qmaster.out", f"{self.root}/log/execd.out",
                     f"{self.root}/spool/qmaster/messages", f"{self.root}/spool/execd/localhost/messages"):
            if os.path.exists(path):
                out.append(f"--- {path}\n{open(path, errors='replace').read()[-2000:]}")
        return "\n".join(out)

    def active(self) -> list[str]:
        """Ids of jobs queued or running."""
        return [x.split()[0] for x in self.run("qstat", "-u", "*").stdout.splitlines()[2:] if x.strip()]

    def finished(self, jid: str) -> dict:
        """From the accounting file (written shortly after the job ends): exit_status, failed (0, or why SGE
        ended it), ..."""
        deadline = time.time() + 30
        while True:
            out = self.run("qacct", "-j", jid).stdout
            rec = {m[0]: m[1].strip() for m in re.findall(r"(?m)^(\w+)\s+(.*)$", out)}
            if "exit_status" in rec or time.time() > deadline:
                return rec
            time.sleep(1)

    def wait_idle(self, timeout: float) -> None:
        deadline = time.time() + timeout
        time.sleep(2)
        while time.time() < deadline:
            if not self.active():
                return
            time.sleep(2)
        raise AssertionError(f"jobs still queued or running after {timeout}s: {self.active()}")

    def stop(self) -> None:
        if self.procs and self.active():
            self.run("qdel", "-u", "root")
            deadline = time.time() + 60
            while time.time() < deadline and self.active():
                time.sleep(1)
        netns.stop(self.procs, self.holder)  # execd, then qmaster
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def sge():
    why = missing()
    if why:
        pytest.skip(why)
    g = GridEngine()
    try:
        yield g
    finally:
        g.stop()
