"""Stand-ins for SLURM's and Grid Engine's commands, to run cluster/slurm.sh and cluster/sge.sh on this machine.

    fake_sched.py daemon STATE_DIR       the "scheduler": starts queued jobs whose dependency has ended,
                                         signals them before their wall-clock limit and kills them at it
    fake_sched.py sbatch|squeue|scancel|srun|scontrol|qsub|qstat|qdel|qrsh ARGS...   (STATE_DIR: $FAKE_SCHED)

Only what the project's job scripts use, with the real commands' output formats and job environment
(SLURM_JOB_ID, SLURM_JOB_NODELIST, SLURM_CPUS_ON_NODE, SLURM_JOB_CPUS_PER_NODE, SLURMD_NODENAME; JOB_ID,
NSLOTS, PE_HOSTFILE, TMPDIR). Each job runs in its own session, from a copy of its script in a spool folder,
and is ended as the real ones end jobs: SLURM --signal=B:SIG@T to the batch shell only, SIGTERM to every
process at the limit, SIGKILL KILL_WAIT seconds later; SGE -notify SIGUSR2 to the job's processes at h_rt,
SIGKILL NOTIFY seconds later. Several nodes are several names on this host: SLURM nodes node1..nodeN
(NodeAddr 127.0.0.1, not in DNS), SGE hosts from $FAKE_SGE_HOSTS (default: this host, localhost).
Standard library only.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

KILL_WAIT = float(os.environ.get("FAKE_KILL_WAIT", "5"))  # SLURM's KillWait (30 s by default there)
NOTIFY = float(os.environ.get("FAKE_SGE_NOTIFY", "5"))    # SGE queue's notify time (60 s by default there)
SGE_HOSTS = os.environ.get("FAKE_SGE_HOSTS", f"{socket.gethostname()},localhost").split(",")


# ---- the queue: one JSON file per job, replaced atomically -------------------------------------------------

def state_dir() -> str:
    d = os.environ.get("FAKE_SCHED")
    if not d or not os.path.isdir(d):
        sys.exit(f"fake_sched: FAKE_SCHED={d!r} is not a folder")
    return d


def _write(path: str, obj) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def load(d: str, jid: str) -> dict | None:
    try:
        with open(os.path.join(d, "jobs", f"{jid}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def jobs(d: str) -> list[dict]:
    out = [load(d, name[:-5]) for name in os.listdir(os.path.join(d, "jobs")) if name.endswith(".json")]
    return sorted((j for j in out if j), key=lambda j: int(j["id"]))


def new_id(d: str) -> str:
    with open(os.path.join(d, "counter"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
    return str(n)


def seconds(text: str, bare: str) -> int:
    """SLURM --time (bare number = minutes; [D-]H:M:S, M:S) or SGE h_rt (bare number = seconds; H:M:S)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d+):(\d+)", text)
    if m:
        return ((int(m[1] or 0) * 24 + int(m[2])) * 60 + int(m[3])) * 60 + int(m[4])
    m = re.fullmatch(r"(\d+):(\d+)", text)
    if m:
        return int(m[1]) * 60 + int(m[2])
    return int(text) * (60 if bare == "minutes" else 1)


def directives(script: str, prefix: str) -> list[str]:
    """The script's embedded options (#SBATCH / #$) up to its first command, as the real submitters read them."""
    out = []
    with open(script) as f:
        for line in f:
            if line.startswith(prefix):
                out += line[len(prefix):].split("#")[0].split()
            elif line.strip() and not line.startswith("#"):
                break
    return out


def submit(d: str, job: dict, script: str) -> str:
    jid = new_id(d)
    spool = os.path.join(d, "spool", jid)
    os.makedirs(spool)
    shutil.copy(script, os.path.join(spool, "job_script"))  # a job runs this copy, as under a real scheduler
    job.update(id=jid, state="PENDING", script=os.path.join(spool, "job_script"), cwd=os.getcwd(),
               env=dict(os.environ), submitted=time.time())
    _write(os.path.join(d, "jobs", f"{jid}.json"), job)
    return jid


def cancel(d: str, jid: str) -> bool:
    if load(d, jid) is None:
        return False
    open(os.path.join(d, "jobs", f"{jid}.cancel"), "w").close()
    return True


# ---- SLURM ---------------------------------------------------------------------------------------------------

def sbatch(args: list[str]) -> int:
    d = state_dir()
    opts = {"time": "01:00:00", "job-name": None, "output": "slurm-%j.out", "nodes": "1", "cpus-per-task": "1",
            "signal": None, "dependency": None}
    flags = set()
    script = args[-1]
    for a in directives(script, "#SBATCH") + args[:-1]:
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            opts[k] = v
        else:
            flags.add(a)
    after = []
    if opts["dependency"]:
        m = re.fullmatch(r"afterany:([\d:]+)", opts["dependency"])
        if not m:
            print(f"sbatch: error: stand-in knows only --dependency=afterany:ID, not {opts['dependency']}",
                  file=sys.stderr)
            return 1
        after = m[1].split(":")
    sig = None
    if opts["signal"]:
        m = re.fullmatch(r"(B:)?(\w+)@(\d+)", opts["signal"])
        sig = {"batch_only": bool(m[1]), "name": m[2], "lead": int(m[3])}
    nodes = int(opts["nodes"])
    job = {"kind": "slurm", "name": opts["job-name"] or os.path.basename(script), "limit": seconds(opts["time"],
           "minutes"), "after": after, "signal": sig, "nodes": [f"node{i + 1}" for i in range(nodes)],
           "cpus": int(opts["cpus-per-task"]), "output": opts["output"]}
    jid = submit(d, job, script)
    print(jid if "--parsable" in flags else f"Submitted batch job {jid}")
    return 0


def squeue(args: list[str]) -> int:
    jid = args[args.index("-j") + 1]
    job = load(state_dir(), jid)
    if job is None or job["state"] not in ("PENDING", "RUNNING"):
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    if "%L" in args:
        left = int(job["limit"] - (time.time() - job.get("started", time.time())))
        h, rest = divmod(max(left, 0), 3600)
        print(f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}")
    return 0


def scancel(args: list[str]) -> int:
    d = state_dir()
    if args and args[0].startswith("--name="):
        for j in jobs(d):
            if j["name"] == args[0].split("=", 1)[1]:
                cancel(d, j["id"])
        return 0
    return 0 if all(cancel(d, a) for a in args) else 1


def expand(nodelist: str) -> list[str]:
    out = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", nodelist):
        m = re.fullmatch(r"(.*)\[(.*)\]", part)
        if not m:
            out.append(part)
            continue
        for rng in m[2].split(","):
            lo, _, hi = rng.partition("-")
            out += [f"{m[1]}{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def scontrol(args: list[str]) -> int:
    if args[:2] == ["show", "hostnames"]:
        print("\n".join(expand(args[2] if len(args) > 2 else os.environ["SLURM_JOB_NODELIST"])))
        return 0
    if args[:2] == ["show", "node"]:
        print(f"NodeName={args[2]} Arch=x86_64 NodeAddr=127.0.0.1 NodeHostName={socket.gethostname()} State=ALLOCATED")
        return 0
    print(f"scontrol: stand-in does not know {' '.join(args)}", file=sys.stderr)
    return 1


def srun(args: list[str]) -> int:
    node = None
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a.startswith(("--nodelist=", "-w=")):
            node = a.split("=", 1)[1]
        elif a == "-w":
            node = args.pop(0)
    env = {**os.environ, "SLURMD_NODENAME": node or os.environ.get("SLURMD_NODENAME", ""), "SLURM_STEP_ID": "0"}
    return subprocess.call(args, env=env)


# ---- Grid Engine ---------------------------------------------------------------------------------------------

def qsub(args: list[str]) -> int:
    d = state_dir()
    script = args[-1]
    opts: dict = {"N": os.path.basename(script), "o": None, "hold_jid": None, "pe": None, "l": []}
    flags = set()
    items = directives(script, "#$") + args[:-1]
    while items:
        a = items.pop(0)
        if a in ("-N", "-o", "-hold_jid", "-j", "-v", "-P", "-q"):
            opts[a[1:]] = items.pop(0)
        elif a == "-l":
            opts["l"] += items.pop(0).split(",")
        elif a == "-pe":
            opts["pe"] = (items.pop(0), int(items.pop(0)))
        else:
            flags.add(a)
    limits = dict(x.split("=", 1) for x in opts["l"])
    rt = seconds(limits["h_rt"], "seconds") if "h_rt" in limits else 3600
    slots = opts["pe"][1] if opts["pe"] else 1
    hosts = SGE_HOSTS[:slots] if opts["pe"] else SGE_HOSTS[:1]
    job = {"kind": "sge", "name": opts["N"], "limit": rt, "after": [opts["hold_jid"]] if opts["hold_jid"] else [],
           "notify": "-notify" in flags, "hosts": hosts, "pe": opts["pe"], "output": opts["o"], "slots": slots,
           "resources": opts["l"]}
    jid = submit(d, job, script)
    print(jid if "-terse" in flags else f'Your job {jid} ("{opts["N"]}") has been submitted')
    return 0


def qstat(args: list[str]) -> int:
    job = load(state_dir(), args[args.index("-j") + 1])
    if job is None or job["state"] not in ("PENDING", "RUNNING"):
        print("Following jobs do not exist:", file=sys.stderr)
        return 1
    print(f"job_number:                 {job['id']}\njob_name:                   {job['name']}\n"
          f"hard resource_list:         h_rt={job['limit']}")
    return 0


def qdel(args: list[str]) -> int:
    d = state_dir()
    ok = True
    for a in args:
        found = [j["id"] for j in jobs(d) if a in (j["id"], j["name"])]
        ok &= bool(found) and all(cancel(d, jid) for jid in found)
    return 0 if ok else 1


def qrsh(args: list[str]) -> int:
    while args and args[0].startswith("-"):
        args.pop(0)
    host = args.pop(0)
    return subprocess.call(args, env={**os.environ, "HOSTNAME": host})


# ---- the scheduler daemon --------------------------------------------------------------------------------------

def job_env(d: str, job: dict) -> dict:
    env = dict(job["env"])
    jid = job["id"]
    if job["kind"] == "slurm":
        n = len(job["nodes"])
        nodelist = job["nodes"][0] if n == 1 else f"node[1-{n}]"
        env.update(SLURM_JOB_ID=jid, SLURM_JOBID=jid, SLURM_JOB_NAME=job["name"], SLURM_JOB_NODELIST=nodelist,
                   SLURM_NODELIST=nodelist, SLURM_JOB_NUM_NODES=str(n), SLURM_NNODES=str(n),
                   SLURM_CPUS_ON_NODE=str(job["cpus"]), SLURM_JOB_CPUS_PER_NODE=f"{job['cpus']}(x{n})",
                   SLURMD_NODENAME=job["nodes"][0], SLURM_SUBMIT_DIR=job["cwd"])
    else:
        tmp = tempfile.mkdtemp(prefix=f"sge{jid}.", dir="/tmp")  # short, as SGE's /tmp/<job>.<task>.<queue>
        job["tmp"] = tmp
        env.update(JOB_ID=jid, JOB_NAME=job["name"], NSLOTS=str(job["slots"]), SGE_O_WORKDIR=job["cwd"],
                   TMPDIR=tmp, NHOSTS=str(len(job["hosts"])))
        env.pop("PE_HOSTFILE", None)
        if job["pe"]:
            path = os.path.join(tmp, "pe_hostfile")
            per = [job["slots"] // len(job["hosts"])] * len(job["hosts"])
            with open(path, "w") as f:
                f.writelines(f"{h} {s} all.q@{h} UNDEFINED\n" for h, s in zip(job["hosts"], per))
            env.update(PE_HOSTFILE=path, PE=job["pe"][0])
    return env


def output_path(job: dict) -> str:
    out = job["output"]
    if job["kind"] == "slurm":
        out = out.replace("%j", job["id"]).replace("%x", job["name"])
    elif out is None or os.path.isdir(os.path.join(job["cwd"], out)):
        out = os.path.join(out or "", f"{job['name']}.o{job['id']}")
    return os.path.join(job["cwd"], out)


def session_pids(sid: int) -> list[int]:
    """Every process of the job's session (what proctrack/linuxproc and SGE's process group reach)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getsid(int(p)) == sid:
                    out.append(int(p))
            except OSError:
                pass
    return out


def signal_all(sid: int, sig: int) -> None:
    for pid in session_pids(sid):
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class Running:
    def __init__(self, d: str, job: dict):
        self.d, self.job = d, job
        self.out = open(output_path(job), "ab")
        self.proc = subprocess.Popen(["bash", job["script"]], cwd=job["cwd"], env=job_env(d, job),
                                     stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        self.t0 = time.time()
        self.warned = self.termed = False
        self.kill_at = None
        job.update(state="RUNNING", started=self.t0, pid=self.proc.pid)
        self.save()

    def save(self):
        _write(os.path.join(self.d, "jobs", f"{self.job['id']}.json"), self.job)

    def log(self, msg: str):
        self.out.write(f"fake_sched: {msg}\n".encode())
        self.out.flush()

    def tick(self) -> bool:
        """Enforce the limit; True once the job has ended."""
        job, sid, now = self.job, self.proc.pid, time.time()
        limit_at = self.t0 + job["limit"]
        if os.path.exists(os.path.join(self.d, "jobs", f"{job['id']}.cancel")) and not self.termed:
            self.log(f"*** JOB {job['id']} CANCELLED ***")  # scancel: SIGTERM, KillWait, SIGKILL
            self.termed, self.kill_at, job["reason"] = True, now + KILL_WAIT, "cancelled"
            if job["kind"] == "slurm":
                signal_all(sid, signal.SIGTERM)
            elif job["notify"]:  # qdel: SIGUSR2 first with -notify, then SIGKILL
                signal_all(sid, signal.SIGUSR2)
                self.kill_at = now + NOTIFY
            else:
                self.kill_at = now
        if job["kind"] == "slurm":
            sig = job["signal"]
            if sig and not self.warned and now >= limit_at - sig["lead"]:
                self.warned = True
                signum = getattr(signal, "SIG" + sig["name"])
                self.log(f"--signal: SIG{sig['name']} to {'the batch shell' if sig['batch_only'] else 'the job'}")
                if sig["batch_only"]:
                    os.kill(sid, signum)
                else:
                    signal_all(sid, signum)
            if now >= limit_at and not self.termed:
                self.log(f"*** JOB {job['id']} CANCELLED DUE TO TIME LIMIT ***")
                signal_all(sid, signal.SIGTERM)
                self.termed, self.kill_at, job["reason"] = True, now + KILL_WAIT, "timeout"
        elif now >= limit_at and not self.termed:
            self.termed, job["reason"] = True, "h_rt"
            if job["notify"]:
                self.log("h_rt reached: SIGUSR2 (-notify)")
                signal_all(sid, signal.SIGUSR2)
                self.kill_at = now + NOTIFY
            else:
                self.kill_at = now
        if self.kill_at is not None and now >= self.kill_at:
            signal_all(sid, signal.SIGKILL)
        rc = self.proc.poll()
        if rc is None:
            return False
        signal_all(sid, signal.SIGKILL)  # nothing of a job outlives it
        if job.get("tmp"):
            shutil.rmtree(job["tmp"], ignore_errors=True)
        job.update(state="COMPLETED" if rc == 0 else "FAILED", exit=rc, ended=time.time())
        self.log(f"job {job['id']} ended: exit {rc}")
        self.out.close()
        self.save()
        return True


def daemon(d: str) -> int:
    os.makedirs(os.path.join(d, "jobs"), exist_ok=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    running: dict[str, Running] = {}
    while not stop:
        for job in jobs(d):
            if job["state"] != "PENDING" or job["id"] in running:
                continue
            if os.path.exists(os.path.join(d, "jobs", f"{job['id']}.cancel")):
                job.update(state="CANCELLED", ended=time.time())
                _write(os.path.join(d, "jobs", f"{job['id']}.json"), job)
                continue
            deps = [load(d, a) for a in job["after"]]
            if all(x is None or x["state"] not in ("PENDING", "RUNNING") for x in deps):
                running[job["id"]] = Running(d, job)
        for jid in [j for j, r in running.items() if r.tick()]:
            del running[jid]
        time.sleep(0.2)
    for r in running.values():
        signal_all(r.proc.pid, signal.SIGKILL)
    return 0


COMMANDS = {"sbatch": sbatch, "squeue": squeue, "scancel": scancel, "srun": srun, "scontrol": scontrol,
            "qsub": qsub, "qstat": qstat, "qdel": qdel, "qrsh": qrsh}

if __name__ == "__main__":
    if sys.argv[1] == "daemon":
        sys.exit(daemon(sys.argv[2]))
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
