"""A real two-node Ray cluster on loopback runs a tiny sweep through --address with shared storage.

Ray 2.60 resolves 127.0.0.1 to the machine's routable address as soon as nodes may join, so the whole
cluster runs inside a fresh network namespace whose only interface is loopback: nothing it starts can
listen beyond 127.0.0.1 or reach past this machine. Each node is a `ray start --block` process whose
PID the script holds and kills at the end; that process stops the node's Ray daemons.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest

from sweep_util import ROOT, read_csv, write_space

pytestmark = pytest.mark.cluster

SCRIPT = r"""
set -u
exec 2>&1  # one stream, so each run's messages stay between its markers
ip link set lo up
# A token of the test's own: Ray's token mode otherwise reads ~/.ray/auth_token, which a fresh machine lacks.
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN={token} PYTHONPATH={root}
RAY={ray}
RT=$(mktemp -d /tmp/rayc.XXXXXX)  # Ray's socket paths must stay under 108 bytes: pytest's tmp is too deep
"$RAY" start --head --block --port={port} --num-cpus=1 --include-dashboard=false --disable-usage-stats \
    --temp-dir=$RT > {tmp}/head.log 2>&1 &
HEAD=$!
WORKER=
trap 'kill $HEAD $WORKER 2>/dev/null; wait 2>/dev/null; rm -rf $RT' EXIT
for i in $(seq 60); do
  kill -0 $HEAD 2>/dev/null || {{ echo "head node died"; cat {tmp}/head.log; exit 1; }}
  "$RAY" status --address=127.0.0.1:{port} >/dev/null 2>&1 && break; sleep 1
done
"$RAY" start --address=127.0.0.1:{port} --block --num-cpus=1 --disable-usage-stats > {tmp}/worker.log 2>&1 &
WORKER=$!
for i in $(seq 60); do
  kill -0 $WORKER 2>/dev/null || {{ echo "worker node died"; cat {tmp}/worker.log; exit 1; }}
  NODES=$("{py}" -c 'import ray; ray.init(address="127.0.0.1:{port}", log_to_driver=False); print(len(ray.nodes()))' \
    2>/dev/null)
  [ "$NODES" = 2 ] && break
  sleep 1
done
echo "--- without --storage"
"{py}" {root}/orchestrator.py --space {space} --data {data} --results-dir {tmp}/results --address 127.0.0.1:{port} \
    --wandb off --no-retrain
echo "exit=$?"
echo "--- with --storage"
"{py}" {root}/orchestrator.py --space {space} --data {data} --results-dir {tmp}/results --address 127.0.0.1:{port} \
    --storage {tmp}/shared --wandb off --no-retrain
echo "exit=$?"
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare for a loopback-only network namespace")
def test_two_node_cluster_sweep(tmp_path, synth_npz):
    space = write_space(tmp_path, name="cluster", n=4)
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    script = SCRIPT.format(root=ROOT, ray=ray_bin, py=sys.executable, port=6399, tmp=tmp_path, space=space,
                           data=synth_npz, token=secrets.token_hex(16))
    proc = subprocess.run(["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    first, second = out.split("--- with --storage")
    assert "exit=2" in first and "pass --storage" in first and "Traceback" not in first
    assert "2 node(s)" in second and "exit=0" in second, out[-4000:]
    rows = read_csv(tmp_path / "results" / "cluster" / "trials.csv")
    assert len(rows) == 4 and all(r["status"] != "errored" for r in rows)
    # Trial state went to the shared storage, not the driver's results folder.
    assert list((tmp_path / "shared" / "cluster").glob("*/checkpoint_*"))
    assert not (tmp_path / "results" / "cluster" / "ray").exists()
