"""Starting Ray on this machine (bound to 127.0.0.1) or joining a cluster, where its log lines go, and running the
retrain where a GPU is."""
from __future__ import annotations

import logging
import os
import signal
from typing import Any

from trainables.errors import UserError

from . import compat  # noqa: F401 - Ray's environment, set before Ray is imported
from .profile import profile

import ray  # noqa: E402,I001


class ClusterError(UserError):
    pass


def start(address: str | None, num_cpus: int | None = None, runtime_env: dict | None = None,
          log_dir: str | None = None) -> dict:
    """Start local Ray (the default) or join a cluster; returns the cluster's total resources. Ray's and
    Optuna's own log lines go to log_dir/ray.log, not the console."""
    if ray.is_initialized():
        if log_dir:
            _log_to_file(os.path.join(log_dir, "ray.log"))
        return cluster_resources()
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                              configure_logging=not log_dir)
    sigterm = signal.getsignal(signal.SIGTERM)
    if log_dir:  # ray.init clears the "ray" logger's handlers; what it logs while starting goes there through this
        _log_to_file(os.path.join(log_dir, "ray.log"), roots=("ray._private", "optuna"))
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"--address {address!r}: could not connect to a Ray cluster ({exc})") from None
    finally:
        # ray.init sets SIGTERM to sys.exit(15): a scheduler's TERM would end the driver with status 15 instead of
        # stopping resumably (exit 75). The handler the caller had stays.
        if sigterm is not None and signal.getsignal(signal.SIGTERM) is not sigterm:
            try:
                signal.signal(signal.SIGTERM, sigterm)
            except ValueError:  # not the main thread (pipeline starts Ray in the background): Ray set nothing
                pass
    if log_dir:  # after ray.init, which resets the "ray" logger's handlers
        _log_to_file(os.path.join(log_dir, "ray.log"))
    profile("ray_started")
    return cluster_resources()


def started() -> bool:
    return ray.is_initialized()


def _log_to_file(path: str, roots=("ray", "optuna")) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    children = [n for n in logging.root.manager.loggerDict if n.startswith(("ray.", "optuna."))]
    for name in [*children, *roots]:  # e.g. ray.tune's own console handler: its lines reach the file through "ray"
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
            if isinstance(h, logging.FileHandler):  # ours, from the call before ray.init
                h.close()
        lg.propagate = True
    for name in roots:
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    import optuna

    optuna.logging.disable_default_handler()


def call_where_gpu(fn, *args, **kwargs):
    """fn(*args, **kwargs) where a GPU is: here when this process has one (or the cluster has none), else as a
    Ray task holding one GPU (a cluster whose head node has no GPU: the retrain must not run on its CPU).
    Exceptions come back as fn raised them; Ctrl-C here cancels the task."""
    import torch

    if torch.cuda.is_available() or not ray.is_initialized() or cluster_resources()["gpu"] < 1:
        return fn(*args, **kwargs)
    ref = ray.remote(num_gpus=1, max_retries=0)(fn).remote(*args, **kwargs)
    done = False
    try:
        result = ray.get(ref)
        done = True
        return result
    except ray.exceptions.RayTaskError as exc:
        done = True
        raise exc.cause from None
    finally:
        if not done:
            ray.cancel(ref, force=True)


def cluster_resources() -> dict:
    res = ray.cluster_resources()
    return {"cpu": float(res.get("CPU", 0)), "gpu": float(res.get("GPU", 0)), "nodes": len(ray.nodes())}
