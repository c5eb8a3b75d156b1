#!/bin/bash
# A sweep on SLURM, across as many jobs as it takes.
#   bash cluster/slurm.sh        (from the project folder) checks the settings below, then queues the first job.
# Each job runs the sweep until its wall clock is nearly spent (the orchestrator's --time-limit: the job's time
# left minus MARGIN), and has already queued its successor (--dependency=afterany), which continues with
# --resume; the last job cancels it. Settings: the variables below, or the same names in the environment
# (SPACE=search_spaces/part2.yaml bash cluster/slurm.sh). Resources: the #SBATCH lines, or SUBMIT_ARGS.
# Several nodes (SUBMIT_ARGS="--nodes=2"): a Ray head on the first, `ray start --address` on the others.
#
#SBATCH --job-name=cifar-sweep
#SBATCH --time=02:00:00
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:1
#SBATCH --signal=B:USR1@300
# USR1 to this shell 5 minutes before the kill, passed on to the orchestrator: it checkpoints and exits 75.
# (The orchestrator's own --time-limit, MARGIN before the end, normally stops it first.)

# A warning signal may come at once (a job shorter than the warning time): kept until the orchestrator runs.
for _s in USR1 USR2 TERM; do trap "EARLY_SIG=$_s" "$_s"; done

HERE=$(cd "$(dirname "$0")" && pwd)
if [[ -f $HERE/lib.sh ]]; then MODE=submit; else MODE=job; fi  # a job runs SLURM's copy in its spool folder
[[ $MODE == submit ]] && : "${REPO:=$(dirname "$HERE")}"

: "${REPO:=${SLURM_SUBMIT_DIR:-$PWD}}"         # the project folder (on storage every node sees)
: "${SPACE:=search_spaces/part3.yaml}"         # search space YAML
: "${DATA:=}"                                  # --data: CIFAR-100 .npz or folder (empty: the YAML's data.path)
: "${RESULTS_DIR:=results}"                    # results/<sweep name>/ on shared storage (relative: to REPO)
: "${STORAGE:=}"                               # --storage; empty: RESULTS_DIR/<name>/ray (several nodes too)
: "${ORCH_ARGS:=}"                             # more orchestrator flags, e.g. "--ood-dir data/ood-test"
: "${TIME_LIMIT:=}"                            # per job, e.g. 1h50m; empty: the job's time left minus MARGIN
: "${MARGIN:=600}"                             # seconds kept for checkpoints, results, report, Ray's shutdown
: "${MAX_RESUBMITS:=20}"                       # jobs after the first, at most (the chain's cap)
: "${MAX_STALLS:=2}"                           # jobs in a row without a finished epoch before the chain stops
: "${RESUME:=0}"                               # 1: the first job continues an existing sweep (--resume)
: "${JOB_NAME:=cifar-sweep}"                   # scancel --name=$JOB_NAME stops the chain
: "${SUBMIT_ARGS:=}"                           # more sbatch flags for every job, e.g. "--partition=gpu --account=x"
: "${PYTHON:=$REPO/.venv/bin/python}"          # the project's Python
: "${ORCH:=$PYTHON $REPO/orchestrator.py}"     # the command each job runs (tests put a stand-in here)
: "${RAY_PORT:=6379}"                          # Ray head port, several nodes only
: "${RAY_WAIT:=120}"                           # seconds for every node to join Ray
: "${SWEEP_NAME:=}"                            # empty: the YAML's name
: "${LINK:=0}"                                 # this job's place in the chain (set by the chain)
SCRIPT=$REPO/cluster/slurm.sh
SCHED_JOB_ID=${SLURM_JOB_ID:-}
SCHED_FORWARD="USR1 USR2 TERM"  # --signal=B: reaches only this shell; scancel's and the limit's TERM reach all

cd "$REPO" 2>/dev/null || { echo "error: REPO=$REPO: no such folder; set REPO to the project folder" >&2; exit 2; }
# shellcheck source=lib.sh
source "$REPO/cluster/lib.sh" || { echo "error: REPO=$REPO: no cluster/lib.sh there; set REPO" >&2; exit 2; }

sched_submit() {  # next_link hold_job
  local sub=() dep=() out
  split_words sub "$SUBMIT_ARGS" || die "SUBMIT_ARGS=$SUBMIT_ARGS: unbalanced quotes"
  [[ -n $2 ]] && dep=(--dependency="afterany:$2")
  out=$(LINK=$1 sbatch --parsable --export=ALL --job-name="$JOB_NAME" --output="$CHAIN_DIR/%x-%j.out" \
        "${dep[@]}" "${sub[@]}" "$SCRIPT") || return 1
  echo "${out%%;*}"  # --parsable: "id" or "id;cluster"
}

sched_cancel() { scancel "$1"; }

sched_time_left() {  # %L: days-hours:minutes:seconds left, shorter forms when small; UNLIMITED prints nothing
  to_seconds "$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null)"
}

sched_check() {
  [[ -n $SLURM_JOB_NODELIST ]] || die "SLURM_JOB_NODELIST is not set: not inside a SLURM job"
}

sched_hosts() {  # this node first, with the CPUs SLURM gave each node
  local hosts=() cpus=() item n k i
  mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
  for item in ${SLURM_JOB_CPUS_PER_NODE//,/ }; do  # "4(x2),2" → 4 4 2
    n=${item%%(*}; k=1
    [[ $item =~ \(x([0-9]+)\) ]] && k=${BASH_REMATCH[1]}
    for ((i = 0; i < k; i++)); do cpus+=("$n"); done
  done
  for i in "${!hosts[@]}"; do [[ ${hosts[$i]} == "${SLURMD_NODENAME:-}" ]] && echo "${hosts[$i]} ${cpus[$i]:-1}"; done
  for i in "${!hosts[@]}"; do [[ ${hosts[$i]} != "${SLURMD_NODENAME:-}" ]] && echo "${hosts[$i]} ${cpus[$i]:-1}"; done
}

sched_remote() {  # one task on that node, sharing the job's resources with the batch step
  local host=$1; shift
  srun --nodes=1 --ntasks=1 --overlap --nodelist="$host" "$@"
}

sched_node_addr() { scontrol show node "$1" -o 2>/dev/null | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2; }

main
