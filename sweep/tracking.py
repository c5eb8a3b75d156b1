"""wandb, imported here only and only when enabled. Offline by default: no key and no network never hang a sweep.

One wandb run per trial, fed by `TrialRuns`, a backend-neutral `Listener` the adapter calls for every result.
Its calls only queue: one thread in the driver talks to wandb, so a slow wandb never slows Tune's loop, and
at the end (or at Ctrl-C) it is given a few seconds to finish and then left. (Ray's own WandbLoggerCallback
ran an actor per trial that Ctrl-C waited on for up to 30 minutes.)
"""
from __future__ import annotations

import netrc
import os
import queue
import socket
import sys
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

from .outcome import Listener


@dataclass(frozen=True)
class Tracking:
    mode: str  # what will actually happen: off | offline | online
    note: str  # said to the user when it differs from what was asked
    project: str
    group: str
    dir: str


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def resolve(requested: str, project: str, group: str, folder: str) -> Tracking:
    """Decide the real mode. Online without a key falls back to offline and says so (the sweep still runs)."""
    note = ""
    mode = requested
    if mode != "off":
        try:
            import wandb  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - a broken wandb install must not stop a sweep
            mode, note = "off", f"wandb could not be imported ({exc}); tracking is off, results/ still has everything"
    if mode == "online" and not has_api_key():
        mode = "offline"
        note = ("--wandb online asked, but no wandb API key was found (WANDB_API_KEY or `wandb login`); "
                f"logging offline to {folder} instead — upload later with `wandb sync {folder}/wandb/offline-run-*`")
    elif mode == "online" and (unreachable := _unreachable()):
        # Without this, wandb.init waits 90 s for its server and then raises: in every trial and in the retrain.
        mode = "offline"
        note = (f"--wandb online asked, but the wandb server {unreachable}; logging offline to {folder} "
                f"instead — upload later with `wandb sync {folder}/wandb/offline-run-*`")
    if mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DIR", folder)
    return Tracking(mode, note, project, group, folder)


def _unreachable(timeout_s: float = 5.0) -> str:
    """'' when wandb's server accepts a connection (or a proxy is set, which only wandb can use); else why not."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return ""
    url = os.environ.get("WANDB_BASE_URL")
    if not url:
        import wandb

        url = wandb.Settings().base_url
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or exc})"
    return ""


class TrialRuns(Listener):
    """One wandb run per trial, grouped by sweep; config and metric names as in trials.csv."""

    def __init__(self, t: Tracking, close_timeout_s: float = 10.0):
        self.t, self.close_timeout_s = t, close_timeout_s
        self.q: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="wandb-trials", daemon=True)
        self.thread.start()

    def on_start(self, trial_id, config):
        self.q.put(("start", trial_id, config))

    def on_result(self, trial_id, metrics):
        self.q.put(("log", trial_id, metrics))

    def on_end(self, trial_id, status, metrics, error):
        self.q.put(("end", trial_id, {"status": str(status), **({"error": str(error)} if error else {})}))

    def close(self, interrupted: bool) -> None:
        self.q.put(("close", None, None))
        # Interrupted: the user is waiting; the results folder has every number wandb would have had.
        self.thread.join(timeout=2.0 if interrupted else self.close_timeout_s)
        if self.thread.is_alive():
            print("[sweep] wandb did not finish writing in time; results/ has every trial's numbers",
                  file=sys.stderr, flush=True)

    def _work(self) -> None:
        import wandb

        runs: dict = {}
        while True:
            kind, tid, payload = self.q.get()
            try:
                if kind == "close":
                    for run in runs.values():
                        run.finish()
                    return
                if kind == "start" and tid not in runs:
                    # id = the trial's: its run is found by trial id, and a resumed trial continues its run.
                    runs[tid] = wandb.init(project=self.t.project, group=self.t.group, name=f"trial_{tid}", id=tid,
                                           resume="allow", job_type="trial", config=payload, dir=self.t.dir,
                                           mode=self.t.mode, reinit="create_new")
                elif kind == "log" and tid in runs:
                    runs[tid].log({k: v for k, v in payload.items() if isinstance(v, (int, float))},
                                  step=int(payload.get("epoch", 0) or 0))
                elif kind == "end" and tid in runs:
                    runs[tid].summary.update(payload)
                    runs.pop(tid).finish()
            except Exception as exc:  # noqa: BLE001 - tracking is a view; the sweep goes on without it
                print(f"[sweep] wandb: {kind} for trial {tid} failed ({type(exc).__name__}: {exc})",
                      file=sys.stderr, flush=True)


def trial_listener(t: Tracking) -> Listener:
    return Listener() if t.mode == "off" else TrialRuns(t)


def log_run(t: Tracking, name: str, config: dict, history: list[dict], summary: dict) -> None:
    """The retrain run, logged after the fact from its history (no live process to hang)."""
    if t.mode == "off":
        return
    import wandb

    os.makedirs(t.dir, exist_ok=True)
    try:
        run = wandb.init(project=t.project, group=t.group, name=name, job_type="retrain", config=config,
                         dir=t.dir, mode=t.mode, reinit="create_new")
        try:
            for h in history:
                run.log({k: v for k, v in h.items() if isinstance(v, (int, float))}, step=int(h.get("epoch", 0)))
            run.summary.update(summary)
        finally:
            run.finish()
    except Exception as exc:  # noqa: BLE001 - the server went away mid-sweep: the model and results/ are what count
        print(f"[sweep] wandb could not log {name} ({type(exc).__name__}: {exc}); results/ has everything",
              file=sys.stderr, flush=True)
