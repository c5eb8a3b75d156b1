"""The loopback-only network namespace the real schedulers' daemons run in (tests/helpers/slurm.py, sge.py)."""
from __future__ import annotations

import signal
import subprocess
import time


def hold() -> subprocess.Popen:
    """A process holding a new network namespace with lo up and one documentation-range address (RFC 5737):
    slurmd resolves its host with getaddrinfo(AI_ADDRCONFIG), which finds nothing where the only IPv4 address is
    loopback ("slurmd: error: Unable to bind listen port (16818): Address family not supported by protocol").
    Still reachable from nowhere; the daemons bind 127.0.0.1. `enter(holder, ...)` runs a command inside."""
    holder = subprocess.Popen(["unshare", "-n", "sh", "-c",
                               "ip link set lo up && ip addr add 192.0.2.1/32 dev lo && exec sleep infinity"])
    time.sleep(0.5)
    return holder


def enter(holder: subprocess.Popen, *args: str) -> list[str]:
    return ["nsenter", "-t", str(holder.pid), "-n", "--", *args]


def stop(procs: list, holder: subprocess.Popen) -> None:
    """Each daemon (newest first) by the pid we started, SIGTERM then SIGKILL after 30 s; then the namespace."""
    for _name, p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    holder.kill()
    holder.wait()
