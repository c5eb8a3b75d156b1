#!/bin/bash
# Installs the real schedulers the `scheduler` tests start on this machine (tests/test_cluster_schedulers.py):
# SLURM (slurmctld, slurmd, client commands) with munge, and Son of Grid Engine. Debian/Ubuntu, as root.
# The packages' own services are not started (the tests start their daemons themselves, on 127.0.0.1).
# Measured on this machine: about 15 s each after `apt-get update` (Debian 12, slurm-wlm 22.05.8, SGE 8.1.9).
set -eu
if [[ $(id -u) != 0 ]]; then
  echo "error: run as root (apt-get install)" >&2
  exit 2
fi
command -v apt-get > /dev/null || { echo "error: apt-get not found: install slurm-wlm and munge by hand" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends slurm-wlm munge
# Grid Engine is optional for the tests: a failure here leaves SLURM's tests to run.
apt-get install -y -q --no-install-recommends gridengine-master gridengine-exec gridengine-client \
  || echo "warning: Grid Engine packages did not install; its tests will skip" >&2
