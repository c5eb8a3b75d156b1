"""wandb, imported here only and only when enabled. Offline by default: no key and no network never hang a sweep."""
from __future__ import annotations

import netrc
import os
import socket
import sys
from urllib.parse import urlparse
from dataclasses import dataclass

MODES = ("off", "offline", "online")


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
        except Exception as exc:  # a broken wandb install must not stop a sweep
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


def trial_callbacks(t: Tracking) -> list:
    """One wandb run per trial, grouped by sweep; config and metric names as in trials.csv."""
    if t.mode == "off":
        return []
    from ray.air.integrations.wandb import WandbLoggerCallback

    os.makedirs(t.dir, exist_ok=True)
    return [WandbLoggerCallback(project=t.project, group=t.group, mode=t.mode, dir=t.dir, log_config=False,
                                excludes=["time_this_iter_s", "timestamp", "pid", "hostname", "node_ip"])]


def log_run(t: Tracking, name: str, config: dict, history: list[dict], summary: dict) -> None:
    """The retrain run, logged after the fact from its history (no live process to hang)."""
    if t.mode == "off":
        return
    import wandb

    os.makedirs(t.dir, exist_ok=True)
    try:
        run = wandb.init(project=t.project, group=t.group, name=name, job_type="retrain", config=config,
                         dir=t.dir, mode=t.mode, reinit=True)
        try:
            for h in history:
                run.log({k: v for k, v in h.items() if isinstance(v, (int, float))}, step=int(h.get("epoch", 0)))
            run.summary.update(summary)
        finally:
            run.finish()
    except Exception as exc:  # noqa: BLE001 - the server went away mid-sweep: the model and results/ are what count
        print(f"[sweep] wandb could not log {name} ({type(exc).__name__}: {exc}); results/ has everything",
              file=sys.stderr, flush=True)
