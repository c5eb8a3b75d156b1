"""SWEEP_PROFILE=FILE: one JSON line per phase of the start-up and of each trial (bench/bench_overhead.py)."""
from __future__ import annotations

import json
import os
import time


def profile(event: str, **kw) -> None:
    path = os.environ.get("SWEEP_PROFILE")
    if path:
        kw.setdefault("process_started", process_started())
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **kw}) + "\n")


def process_started() -> float | None:
    """When this process was created (Linux: /proc), as a time.time() value, to 0.01 s."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time, clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
