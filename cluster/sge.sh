#!/bin/bash
# A sweep on (Son of) Grid Engine, across as many jobs as it takes; defaults as the course's job script
# (one P100, 2 hours).
#   bash cluster/sge.sh          (from the project folder) checks the settings below, then queues the first job.
# Each job runs the sweep until its wall clock is nearly spent (the orchestrator's --time-limit: h_rt minus
# MARGIN), and has already queued its successor (-hold_jid), which continues with --resume; the last job
# deletes it. Settings: the variables below, or the same names in the environment
# (SPACE=search_spaces/part2.yaml bash cluster/sge.sh). Resources: the #$ lines, or SUBMIT_ARGS.
# Several hosts (SUBMIT_ARGS="-pe <your site's multi-host PE> 8"): a Ray head on the first host of
# $PE_HOSTFILE, `ray start --address` on the others through `qrsh -inherit` (the PE needs control_slaves).
#
#$ -N cifar-sweep
#$ -l h_rt=02:00:00
#$ -l gpus=1
#$ -l gpu_type=P100
#$ -j y
#$ -cwd
#$ -V
#$ -notify
# -notify: SIGUSR2 (SIGUSR1 before a suspend) the queue's notify time before the kill, passed on to the
# orchestrator: it checkpoints and exits 75. Its own --time-limit, MARGIN before h_rt, normally comes first.

# A warning signal may come at once (a job shorter than the warning time): kept until the orchestrator runs.
for _s in USR1 USR2 TERM; do trap "EARLY_SIG=$_s" "$_s"; done

HERE=$(cd "$(dirname "$0")" && pwd)
if [[ -f $HERE/lib.sh ]]; then MODE=submit; else MODE=job; fi  # a job runs SGE's copy in its spool folder
[[ $MODE == submit ]] && : "${REPO:=$(dirname "$HERE")}"

: "${REPO:=${SGE_O_WORKDIR:-$PWD}}"            # the project folder (on storage every host sees)
: "${SPACE:=search_spaces/part3.yaml}"         # search space YAML
: "${DATA:=}"                                  # --data: CIFAR-100 .npz or folder (empty: the YAML's data.path)
: "${RESULTS_DIR:=results}"                    # results/<sweep name>/ on shared storage (relative: to REPO)
: "${STORAGE:=}"                               # --storage; empty: RESULTS_DIR/<name>/ray (several hosts too)
: "${ORCH_ARGS:=}"                             # more orchestrator flags, e.g. "--ood-dir data/ood-test"
: "${TIME_LIMIT:=}"                            # per job, e.g. 1h50m; empty: the job's h_rt minus MARGIN
: "${MARGIN:=600}"                             # seconds kept for checkpoints, results, report, Ray's shutdown
: "${MAX_RESUBMITS:=20}"                       # jobs after the first, at most (the chain's cap)
: "${MAX_STALLS:=2}"                           # jobs in a row without a finished epoch before the chain stops
: "${RESUME:=0}"                               # 1: the first job continues an existing sweep (--resume)
: "${JOB_NAME:=cifar-sweep}"                   # qdel $JOB_NAME stops the chain
: "${SUBMIT_ARGS:=}"                           # more qsub flags for every job, e.g. "-P ds598 -pe omp 4"
: "${PYTHON:=$REPO/.venv/bin/python}"          # the project's Python
: "${ORCH:=$PYTHON $REPO/orchestrator.py}"     # the command each job runs (tests put a stand-in here)
: "${RAY_PORT:=6379}"                          # Ray head port, several hosts only
: "${RAY_WAIT:=120}"                           # seconds for every host to join Ray
: "${SWEEP_NAME:=}"                            # empty: the YAML's name
: "${LINK:=0}"                                 # this job's place in the chain (set by the chain)
SCRIPT=$REPO/cluster/sge.sh
SCHED_JOB_ID=${JOB_ID:-}
SCHED_FORWARD=""  # -notify's SIGUSR1/SIGUSR2 go to the job's whole process group, the orchestrator included

cd "$REPO" 2>/dev/null || { echo "error: REPO=$REPO: no such folder; set REPO to the project folder" >&2; exit 2; }
# shellcheck source=lib.sh
source "$REPO/cluster/lib.sh" || { echo "error: REPO=$REPO: no cluster/lib.sh there; set REPO" >&2; exit 2; }

sched_submit() {  # next_link hold_job
  local sub=() hold=()
  split_words sub "$SUBMIT_ARGS" || die "SUBMIT_ARGS=$SUBMIT_ARGS: unbalanced quotes"
  [[ -n $2 ]] && hold=(-hold_jid "$2")
  LINK=$1 qsub -terse -V -N "$JOB_NAME" -o "$CHAIN_DIR" -j y "${hold[@]}" "${sub[@]}" "$SCRIPT"
}

sched_cancel() { qdel "$1" > /dev/null; }

sched_time_left() {  # h_rt as qstat shows it (seconds or h:m:s) less the seconds this job script has run
  local rt
  rt=$(qstat -j "$JOB_ID" 2>/dev/null | grep -o 'h_rt=[0-9:]*' | head -1 | cut -d= -f2)
  [[ $rt =~ ^[0-9]+$ ]] || rt=$(to_seconds "$rt")
  [[ -n $rt ]] && echo $((rt - SECONDS))
}

sched_check() {
  [[ -z ${PE_HOSTFILE:-} || -r $PE_HOSTFILE ]] || die "PE_HOSTFILE=$PE_HOSTFILE: no such file (the job's host list)"
}

sched_hosts() {  # this host first, slots summed per host (a host may appear once per queue)
  if [[ -z ${PE_HOSTFILE:-} ]]; then
    echo "$(hostname) ${NSLOTS:-1}"
    return
  fi
  awk -v me="$(hostname)" '{ if (!($1 in n)) order[k++] = $1; n[$1] += $2 }
    END { for (i = 0; i < k; i++) if (order[i] == me || order[i] ~ "^" me "\\.") print order[i], n[order[i]]
          for (i = 0; i < k; i++) if (!(order[i] == me || order[i] ~ "^" me "\\.")) print order[i], n[order[i]] }' \
      "$PE_HOSTFILE"
}

sched_remote() {  # under the job's control: SGE accounts for it and kills it with the job
  local host=$1; shift
  qrsh -inherit -nostdin "$host" "$@"
}

sched_node_addr() { :; }

main
