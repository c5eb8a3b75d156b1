"""The retrain and the OOD prediction run where a GPU is: on a cluster whose driver has none, as a Ray task that
holds one (here a logical GPU on a local Ray bound to 127.0.0.1, in a child process), with exceptions coming
back as the function raised them; without a GPU anywhere, in the driver itself."""
from __future__ import annotations

import os
import subprocess
import sys

from sweep_util import ROOT

SCRIPT = r"""
import os, sys
sys.path.insert(0, {root!r})
from sweep import ray_adapter
from sweep.outcome import StopReason, StopRequested
import ray

def where(x):
    return os.getpid(), ray.get_gpu_ids() if ray.is_initialized() else None, x * 2

def stopped():
    raise StopRequested(StopReason.TIME_LIMIT)

print("HERE", where(1)[0] == os.getpid())  # no Ray yet: runs in this process
ray.init(num_cpus=1, num_gpus={gpus}, include_dashboard=False, _node_ip_address="127.0.0.1")
pid, gpus, doubled = ray_adapter.call_where_gpu(where, 21)
print("REMOTE", pid != os.getpid(), len(gpus or []), doubled)
try:
    ray_adapter.call_where_gpu(stopped)
except StopRequested as exc:
    print("RAISED", exc.reason)
ray.shutdown()
"""


def run(gpus: int) -> str:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(root=ROOT, gpus=gpus)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_a_cluster_gpu_takes_the_work_off_the_driver():
    import torch

    if torch.cuda.is_available():  # a driver with its own GPU keeps the work: the other test's case
        assert "REMOTE False" in run(gpus=1)
        return
    out = run(gpus=1)
    assert "HERE True" in out
    assert "REMOTE True 1 42" in out  # another process, holding the GPU
    assert "RAISED time-limit" in out  # our exception, not Ray's wrapper


def test_no_gpu_anywhere_keeps_the_work_in_the_driver():
    out = run(gpus=0)
    assert "REMOTE False 0 42" in out and "RAISED time-limit" in out


def test_starting_ray_keeps_the_sigterm_handler():
    """ray.init sets SIGTERM to sys.exit(15): the sweep's own handler (stop resumably, exit 75) must survive it."""
    script = (f"import os, signal, sys\nsys.path.insert(0, {ROOT!r})\nfrom sweep import ray_adapter\n"
              "mine = lambda s, f: None\nsignal.signal(signal.SIGTERM, mine)\n"
              "ray_adapter.start(None, num_cpus=1)\nprint('KEPT', signal.getsignal(signal.SIGTERM) is mine)\n"
              "import ray; ray.shutdown()\n")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=env)
    assert "KEPT True" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
