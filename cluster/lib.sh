# Shared body of cluster/slurm.sh and cluster/sge.sh (sourced, never run). The scheduler scripts define:
#   sched_submit NEXT_LINK HOLD_JOB   submit this script again (held on HOLD_JOB when given); prints the job id
#   sched_cancel JOB                  remove a queued job
#   sched_time_left                   seconds this job has left, or nothing when the scheduler does not say
#   sched_hosts                       "host slots" per line, first = this host; one line for a one-node job
#   sched_remote HOST CMD...          run CMD on HOST inside this job (blocks while CMD runs)
#   sched_node_addr HOST              the scheduler's address for HOST when DNS has none (may print nothing)
#   sched_check                       inside a job: what the scheduler gave is usable (else die)
#   MODE (submit|job), SCHED_JOB_ID, SCRIPT (the file to submit again), SCHED_FORWARD (signals that reach
#   only the job shell, to pass on to the orchestrator)
#
# A chain: each job submits its successor first, held until this job ends whatever way it ends (a kill -9 of
# the whole job included), runs the sweep with --time-limit, then cancels the successor unless the orchestrator
# said "not finished" (exit 75). A successor whose predecessor finished or failed does nothing.

EXIT_USAGE=2
EXIT_RESUME=75
EXIT_NO_MODEL=3  # the orchestrator's: no trial produced a model, or the retrain diverged (1: it crashed)

die() { echo "error: $*" >&2; exit "$EXIT_USAGE"; }
say() { echo "[chain] $*"; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# 02:00:00, 1-02:00:00, 30:00, 90 (SLURM's minutes), 7200s, 1h50m → seconds; empty when unparsable.
to_seconds() {
  local t=$1 d=0 h=0 m=0 s=0
  if [[ $t =~ ^([0-9]+h)?([0-9]+m)?([0-9]+s)?$ && -n $t ]]; then
    [[ $t =~ ([0-9]+)h ]] && h=${BASH_REMATCH[1]}
    [[ $t =~ ([0-9]+)m ]] && m=${BASH_REMATCH[1]}
    [[ $t =~ ([0-9]+)s ]] && s=${BASH_REMATCH[1]}
  elif [[ $t =~ ^(([0-9]+)-)?([0-9]+):([0-9]+):([0-9]+)$ ]]; then
    d=${BASH_REMATCH[2]:-0} h=${BASH_REMATCH[3]} m=${BASH_REMATCH[4]} s=${BASH_REMATCH[5]}
  elif [[ $t =~ ^([0-9]+):([0-9]+)$ ]]; then
    m=${BASH_REMATCH[1]} s=${BASH_REMATCH[2]}
  elif [[ $t =~ ^[0-9]+$ ]]; then
    m=$t
  else
    return 0
  fi
  echo $(( ((10#$d * 24 + 10#$h) * 60 + 10#$m) * 60 + 10#$s ))
}

# 6600 → 1h50m, 45 → 45s: the orchestrator's --time-limit format.
to_duration() {
  local s=$1 out=""
  (( s >= 3600 )) && out+="$((s / 3600))h"
  (( s % 3600 >= 60 )) && out+="$((s % 3600 / 60))m"
  (( s % 60 || s == 0 )) && out+="$((s % 60))s"
  echo "$out"
}

abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

# Every setting checked before anything is queued or started: one line naming the variable, exit 2.
check_settings() {
  [[ -f $REPO/orchestrator.py ]] || die "REPO=$REPO: no orchestrator.py there; set REPO to the project folder"
  [[ -x $PYTHON ]] || die "PYTHON=$PYTHON: not an executable; set PYTHON to the project's .venv/bin/python"
  [[ -f $SPACE ]] || die "SPACE=$SPACE: no such file; set SPACE to a search space YAML"
  local v
  for v in MARGIN MAX_RESUBMITS MAX_STALLS RAY_PORT LINK RAY_WAIT; do
    is_uint "${!v}" || die "$v=${!v}: must be a whole number (seconds or a count)"
  done
  [[ $RESUME == 0 || $RESUME == 1 ]] || die "RESUME=$RESUME: allowed 0 (start the sweep) or 1 (continue it)"
  if [[ -n $TIME_LIMIT && ( $TIME_LIMIT =~ ^[0-9]+$ || -z $(to_seconds "$TIME_LIMIT") ) ]]; then
    die "TIME_LIMIT=$TIME_LIMIT: not a duration; allowed e.g. 1h50m, 01:50:00, or empty (the job's limit minus MARGIN)"
  fi
  split_words ORCH_CMD "$ORCH" || die "ORCH=$ORCH: unbalanced quotes"
  split_words EXTRA_ARGS "$ORCH_ARGS" || die "ORCH_ARGS=$ORCH_ARGS: unbalanced quotes"
  (( ${#ORCH_CMD[@]} )) || die "ORCH is empty; set it to the orchestrator command"
  local a
  for a in "${EXTRA_ARGS[@]}"; do  # the chain owns these: a second value would contradict it
    case $a in --resume|--time-limit|--time-limit=*|--results-dir|--results-dir=*|--space|--space=*|--storage|--storage=*)
      die "ORCH_ARGS: $a is set by the chain; use the variables RESUME, TIME_LIMIT, RESULTS_DIR, SPACE, STORAGE" ;;
    esac
  done
  SWEEP_NAME=${SWEEP_NAME:-$("$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' \
                             "$SPACE" 2>/dev/null)}
  [[ $SWEEP_NAME =~ ^[A-Za-z0-9._-]+$ ]] || die "SPACE=$SPACE: no 'name:' readable in it; set SWEEP_NAME"
  CHAIN_DIR=$RESULTS_DIR/$SWEEP_NAME/chain
  mkdir -p "$CHAIN_DIR" 2>/dev/null || die "RESULTS_DIR=$RESULTS_DIR: cannot create $CHAIN_DIR"
}

# Shell-style word splitting with quotes (no globbing, no expansion) into the array named $1.
split_words() {
  local -n _out=$1
  local py='import shlex, sys; w = shlex.split(sys.argv[1]); sys.stdout.write("".join(x + "\0" for x in w))'
  "$PYTHON" -c "$py" "$2" > /dev/null 2>&1 || return 1
  mapfile -d '' -t _out < <("$PYTHON" -c "$py" "$2")
}

# Paths as every later job sees them (a job may start in another folder), exported for the successor.
resolve_settings() {
  SPACE=$(abspath "$SPACE") RESULTS_DIR=$(abspath "$RESULTS_DIR")
  [[ -n $DATA ]] && DATA=$(abspath "$DATA")
  [[ -n $STORAGE && $STORAGE != *://* ]] && STORAGE=$(abspath "$STORAGE")
  export REPO PYTHON ORCH ORCH_ARGS SPACE DATA RESULTS_DIR STORAGE MARGIN MAX_RESUBMITS MAX_STALLS TIME_LIMIT RAY_PORT \
         RAY_WAIT SWEEP_NAME SUBMIT_ARGS
}

write_status() {  # state link job exit: one line, replaced atomically (a reader never sees half of it)
  echo "$*" > "$CHAIN_DIR/status.tmp.$$" && mv -f "$CHAIN_DIR/status.tmp.$$" "$CHAIN_DIR/status"
}

# Outside a job: check, then queue the first job of the chain.
submit_first() {
  check_settings
  resolve_settings
  local id
  id=$(sched_submit 0 "") || die "the scheduler refused the job (its message is above)"
  say "submitted job $id (chain of at most $((MAX_RESUBMITS + 1)) jobs); logs in $CHAIN_DIR"
}

run_job() {
  sched_check
  check_settings
  resolve_settings
  local state="" prev
  prev=$(cat "$CHAIN_DIR/status" 2>/dev/null) && read -r state _ <<< "$prev"
  if (( LINK > 0 )) && [[ $state == done || $state == stopped ]]; then
    say "job $SCHED_JOB_ID: nothing to do, the chain ended before it ($prev)"
    return 0
  fi
  local resume=$RESUME
  (( LINK == 0 )) && rm -f "$CHAIN_DIR/stalls"  # a new chain
  if (( LINK > 0 )); then  # continue what exists; a predecessor killed before the sweep began leaves nothing
    [[ -f $RESULTS_DIR/$SWEEP_NAME/sweep.json ]] && resume=1 || resume=0
  fi
  local limit left
  if [[ -n $TIME_LIMIT ]]; then
    limit=$(to_duration "$(to_seconds "$TIME_LIMIT")")
  else
    left=$(sched_time_left)
    [[ -n $left ]] || die "the scheduler did not say this job's time limit; set TIME_LIMIT (e.g. 1h50m)"
    (( left - MARGIN > 0 )) || die "the job has ${left}s left and MARGIN=$MARGIN: no time for the sweep; \
ask for more wall-clock time or lower MARGIN"
    limit=$(to_duration $((left - MARGIN)))
  fi
  # From here a successor may be queued: a failure must end the chain too (fail), not leave it looping.
  write_status running "$LINK" "$SCHED_JOB_ID" -
  NEXT=""
  if (( LINK < MAX_RESUBMITS )); then
    NEXT=$(sched_submit $((LINK + 1)) "$SCHED_JOB_ID") || { say "could not queue the successor job"; NEXT=""; }
    [[ -n $NEXT ]] && echo "$NEXT" > "$CHAIN_DIR/next"
  fi
  local args=(--space "$SPACE" --results-dir "$RESULTS_DIR" --time-limit "$limit")
  [[ -n $DATA ]] && args+=(--data "$DATA")
  (( resume )) && args+=(--resume)
  # Ray's sockets go under $RAY_TMPDIR, else $TMPDIR: <it>/ray/session_<date>_<pid>/sockets/plasma_store must
  # fit 107 bytes, so a scheduler's deep per-job TMPDIR would stop Ray from starting.
  if [[ -z ${RAY_TMPDIR:-} && ${#TMPDIR} -gt 30 ]]; then export RAY_TMPDIR=/tmp; fi
  start_ray_cluster  # sets RAY_ARGS (--cpus, or --address with several hosts) and the default STORAGE
  args+=("${RAY_ARGS[@]}")
  [[ -n $STORAGE ]] && args+=(--storage "$STORAGE")
  say "job $SCHED_JOB_ID, link $LINK (at most $MAX_RESUBMITS resubmissions): ${ORCH_CMD[*]} ${args[*]} ${EXTRA_ARGS[*]}"
  BEFORE=$(fingerprint)
  run_forwarding "${ORCH_CMD[@]}" "${args[@]}" "${EXTRA_ARGS[@]}"
  local rc=$RC stalled=""
  stop_ray_cluster
  if (( rc == EXIT_RESUME )) && ! made_progress; then
    stalled="no finished epoch and no retrain progress in $MAX_STALLS jobs in a row: each job is too short for \
the orchestrator's start plus one epoch; ask for more wall-clock time (or lower MARGIN)"
  fi
  if (( rc == EXIT_RESUME )) && [[ -n $NEXT && -z $stalled ]]; then
    write_status resume "$LINK" "$SCHED_JOB_ID" "$rc"
    say "not finished: job $NEXT continues it with --resume"
  else
    [[ -n $NEXT ]] && { sched_cancel "$NEXT" || say "could not cancel job $NEXT (it will find the chain ended)"; }
    if (( rc == 0 )); then
      write_status done "$LINK" "$SCHED_JOB_ID" "$rc"
      say "sweep finished (job $SCHED_JOB_ID)"
    else
      write_status stopped "$LINK" "$SCHED_JOB_ID" "$rc"
      local why="the orchestrator exited $rc"
      (( rc == EXIT_RESUME )) && why=${stalled:-"MAX_RESUBMITS=$MAX_RESUBMITS resubmissions used up"}
      (( rc == EXIT_NO_MODEL )) && why="the sweep produced no model (the orchestrator exited $rc: its last line \
above names the commonest error; every trial's is in $RESULTS_DIR/$SWEEP_NAME/trials.csv)"
      (( rc == EXIT_USAGE )) && why="bad input or a mistake every trial makes (the orchestrator exited $rc: its \
last line above says what to fix)"
      say "chain stopped: $why. Continue it, with the same settings otherwise: RESUME=1 SPACE=$SPACE \
RESULTS_DIR=$RESULTS_DIR bash $SCRIPT"
    fi
  fi
  return "$rc"
}

# What a job leaves when it did some work: epochs in history.csv, files written by the retrain and after.
fingerprint() {
  local dir=$RESULTS_DIR/$SWEEP_NAME
  { if [[ -f $dir/history.csv ]]; then wc -l < "$dir/history.csv"; else echo 0; fi
    find "$dir/final" "$dir/submission_ood.csv" "$dir/robustness" -type f -printf '%p %s %T@\n' 2>/dev/null | sort
  } | cksum
}

# False once MAX_STALLS jobs in a row (this one included) left the fingerprint as they found it: a chain whose
# jobs end before their first epoch would otherwise run to MAX_RESUBMITS doing nothing.
made_progress() {
  local stalls=0
  [[ -f $CHAIN_DIR/stalls ]] && read -r stalls < "$CHAIN_DIR/stalls"
  if [[ $(fingerprint) == "$BEFORE" ]]; then stalls=$((stalls + 1)); else stalls=0; fi
  echo "$stalls" > "$CHAIN_DIR/stalls"
  (( stalls < MAX_STALLS ))
}

# A failure after the successor was queued: stop Ray, end the chain, one line, exit 2.
fail() {
  stop_ray_cluster
  [[ -n ${NEXT:-} ]] && sched_cancel "$NEXT"
  write_status stopped "$LINK" "$SCHED_JOB_ID" "$EXIT_USAGE"
  die "$@"
}

# The orchestrator runs in the background so this shell can take the scheduler's warning signals (a trap does
# not run while a foreground child runs) and survive them. SCHED_FORWARD names the ones that reach only this
# shell (SLURM --signal=B:...), passed on; SGE -notify signals the job's whole process group, the orchestrator
# included (Ray's workers have their own groups), so passing them on would deliver each twice. A signal that
# came before the orchestrator started (the job scripts trap them from their first line) is passed on.
# RC = its exit status; any failure (not bad input) after the scheduler's signal counts as "not finished":
# the sweep's state is on disk as after a kill -9, which --resume continues.
run_forwarding() {
  "$@" &
  local pid=$! sig
  SIGNALLED=${EARLY_SIG:-}
  for sig in USR1 USR2 TERM INT; do
    if [[ " $SCHED_FORWARD " == *" $sig "* ]]; then
      trap "SIGNALLED=$sig; say 'SIG$sig: passed to the orchestrator'; kill -$sig $pid 2>/dev/null" "$sig"
    else
      trap "SIGNALLED=$sig; say 'SIG$sig: the scheduler sent it to the orchestrator too'" "$sig"
    fi
  done
  if [[ -n ${EARLY_SIG:-} ]]; then
    say "SIG$EARLY_SIG came before the orchestrator started: passed on"
    kill -"$EARLY_SIG" "$pid" 2>/dev/null
  fi
  while :; do
    wait "$pid"; RC=$?
    kill -0 "$pid" 2>/dev/null || break  # still alive: wait was cut short by a signal
  done
  wait "$pid" 2>/dev/null; RC=$?
  trap - USR1 USR2 TERM INT
  if [[ -n $SIGNALLED ]] && (( RC != 0 && RC != EXIT_RESUME && RC != EXIT_USAGE && RC != EXIT_NO_MODEL )); then
    # The scheduler was ending the job: whatever that cut short is resumable, as after a kill -9.
    say "the orchestrator exited $RC after SIG$SIGNALLED from the scheduler: counted as not finished"
    RC=$EXIT_RESUME
  fi
}

# IPv4 address of a host the scheduler named: the address Ray binds to there.
node_ip() {
  local ip
  if [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then echo "$1"; return; fi
  ip=$(getent ahostsv4 "$1" 2>/dev/null | awk '{print $1; exit}')
  # getaddrinfo skips IPv4 when a host's only IPv4 interface is loopback (a loopback-only test namespace)
  [[ -z $ip ]] && ip=$(getent hosts "$1" 2>/dev/null | awk '$1 ~ /^[0-9.]+$/ {print $1; exit}')
  [[ -z $ip ]] && ip=$(sched_node_addr "$1")
  [[ -n $ip ]] || return 1
  node_ip "$ip"
}

RAY_PIDS=()
RAY_ARGS=()

# One host: the orchestrator starts Ray itself, on the GPUs this job got and the CPUs it was given (--cpus:
# Ray would take the whole node). Several: a Ray head here, one `ray start --address` per other host, each
# holding only the CPUs the scheduler gave it there.
start_ray_cluster() {
  local lines=()
  mapfile -t lines < <(sched_hosts)
  (( ${#lines[@]} )) || fail "the scheduler named no host for this job"
  local ray=${RAY:-$(dirname "$PYTHON")/ray} head slots host ip i
  read -r head slots <<< "${lines[0]}"
  if (( ${#lines[@]} == 1 )); then
    [[ " ${EXTRA_ARGS[*]} " == *" --cpus"* ]] || RAY_ARGS=(--cpus "$slots")
    return 0
  fi
  RAY_HEAD_IP=${RAY_HEAD_IP:-$(node_ip "$head")} || fail "host $head (from the scheduler) has no IPv4 address here"
  RAY_TMP=$(mktemp -d "${RAY_TMPDIR:-/tmp}/ray-$SCHED_JOB_ID.XXXX")  # socket paths must stay under 108 bytes
  export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
  # Token mode needs a token every node and the orchestrator can read: Ray's own place is ~/.ray/auth_token
  # (the home folder a cluster's nodes share). A fresh account has none, and `ray start --head` would refuse.
  if [[ $RAY_AUTH_MODE == token && -z ${RAY_AUTH_TOKEN:-} && ! -s ${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token} ]]; then
    "$ray" get-auth-token --generate > /dev/null && chmod 600 "$HOME/.ray/auth_token" \
      || fail "could not make a Ray authentication token (ray get-auth-token --generate)"
    say "made a Ray authentication token in ~/.ray/auth_token (readable by you only; every node reads it there)"
  fi
  say "Ray head on $head ($RAY_HEAD_IP:$RAY_PORT, $slots CPUs); ${#lines[@]} hosts"
  "$ray" start --head --block --node-ip-address="$RAY_HEAD_IP" --port="$RAY_PORT" --num-cpus="$slots" \
      --include-dashboard=false --disable-usage-stats --temp-dir="$RAY_TMP" > "$CHAIN_DIR/ray-head.log" 2>&1 &
  RAY_PIDS+=($!)
  wait_ray 1 || fail "the Ray head did not start on $head (see $CHAIN_DIR/ray-head.log)"
  for i in "${!lines[@]}"; do
    (( i )) || continue
    read -r host slots <<< "${lines[$i]}"
    ip=$(node_ip "$host") || fail "host $host (from the scheduler) has no IPv4 address here"
    sched_remote "$host" "$ray" start --block --address="$RAY_HEAD_IP:$RAY_PORT" --node-ip-address="$ip" \
        --num-cpus="$slots" --disable-usage-stats > "$CHAIN_DIR/ray-node$i.log" 2>&1 &
    RAY_PIDS+=($!)
  done
  wait_ray ${#lines[@]} || fail "only part of the Ray cluster came up (logs: $CHAIN_DIR/ray-*.log)"
  RAY_ARGS=(--address "$RAY_HEAD_IP:$RAY_PORT")
  STORAGE=${STORAGE:-$RESULTS_DIR/$SWEEP_NAME/ray}  # the orchestrator's own default, on the shared folder
}

wait_ray() {  # until the cluster has $1 nodes, or RAY_WAIT seconds, or a node process died
  local n=$1 t pid
  for ((t = 0; t < RAY_WAIT; t++)); do
    for pid in "${RAY_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
    [[ $("$PYTHON" -c 'import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
print(len([x for x in ray.nodes() if x["Alive"]]))' "$RAY_HEAD_IP:$RAY_PORT" 2>/dev/null) == "$n" ]] && return 0
    sleep 2; ((t++))
  done
  return 1
}

stop_ray_cluster() {  # each `ray start --block` stops its node's daemons when it ends
  local pid
  (( ${#RAY_PIDS[@]} )) || return 0
  for pid in "${RAY_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${RAY_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  RAY_PIDS=()
  [[ -n ${RAY_TMP:-} ]] && rm -rf "$RAY_TMP"
}

main() {
  if [[ $MODE == job ]]; then run_job; else submit_first; fi
}
