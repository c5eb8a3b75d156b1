"""The trial function: the plain `train(config, report)` on Tune's `tune.report` / `tune.get_checkpoint`.

It runs in a Ray worker. Everything it keeps goes to its folder in the sweep's storage, which every retry of the
trial and the driver see on any node (sweep/ray_adapter/durability.py says what each file is for).
"""
from __future__ import annotations

import json
import os
import resource
import tempfile
import time

from trainables.config import TrainConfig
from trainables.errors import DivergedError, UserError, first_line

from . import compat
from . import durability as dur
from .profile import profile

from ray import tune  # noqa: E402,I001


def run(config: dict, data=None, extra_val=None, checkpoint_every: int = 1, record: tuple = (),
        protect_every: int = 0, active=dict) -> None:
    """One trial. `record`: the hyperparameters whose values go into every epoch's metrics (PBT mutates them);
    `protect_every`: under PBT, the epochs whose checkpoints another trial may be told to copy (pruning keeps them);
    `active`: the config without the parameters its own values switch off (SweepSpec.active)."""
    profile("trial_called")  # the worker process has imported Ray, Tune and this module
    import ray
    import torch

    from trainables.engine import train

    profile("trial_start")
    fs, folder = compat.storage_here()
    fs.create_dir(folder, recursive=True)
    diverged = os.path.join(folder, dur.DIVERGED_MARK)
    text = dur.read_file(fs, diverged)
    if text is not None:  # a retry would diverge again: fail at once, same reason (its ERROR_MARK stands)
        epoch, step, loss = text.split()
        raise DivergedError(int(epoch), int(step), float(loss))
    error_mark = os.path.join(folder, dur.ERROR_MARK)
    if dur.exists(fs, error_mark):  # an earlier attempt's: this one writes its own
        fs.delete_file(error_mark)
    cfg = TrainConfig.from_dict(active(config))
    if not cfg.threads:  # as many threads as CPUs this trial holds: concurrent trials must not oversubscribe
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
    trial_id = tune.get_context().get_trial_id()
    given = tune.get_checkpoint()
    given_fs, given_path = (given.filesystem, given.path) if given is not None else (None, None)
    start = dur.start(given_path, given_fs, fs, folder, trial_id)
    parent = [start.parent]
    note = {"exploited_from": start.exploited_from, "exploited_at": start.state["epoch"]} \
        if start.exploited_from and start.state else {}

    added: dict[int, dict] = {}

    def report(metrics: dict, state: dict) -> None:
        # Peak memory of this trial's process (Linux: KiB), so trials.csv shows what each one needs.
        metrics = {**metrics, **{f"hp_{k}": getattr(cfg, k) for k in record}, **note,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ended_at": time.time()}
        note.clear()  # an exploit is said once, with the first epoch trained after it
        t0 = t1 = time.time()
        epoch = int(metrics.get("epoch", 0))
        if epoch % checkpoint_every and epoch < cfg.epochs:
            tune.report(metrics)  # trials.checkpoint_every: a kill costs this trial the epochs since its last save
        else:
            tag = dur.new_lineage(parent[0], trial_id, epoch)
            if state.get("history"):  # what the sweep adds to an epoch is saved with it: a replay reports it whole
                added[epoch] = metrics  # (every epoch of this run: the engine's history holds its own rows only)
                state = {**state, "history": [{**h, **added.get(int(h.get("epoch", 0)), {})} for h in state["history"]]}
            with tempfile.TemporaryDirectory() as d:
                torch.save(state, os.path.join(d, dur.CKPT_FILE))
                with open(os.path.join(d, dur.LINEAGE_FILE), "w") as f:
                    json.dump(tag, f)
                t1 = time.time()
                compat.skip_taken_checkpoint_names(dur.exists)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            parent[0] = tag["id"]
            if protect_every:
                dur.prune(fs, folder, protect_every)
        profile("report", epoch=metrics.get("epoch"), save_s=t1 - t0, report_s=time.time() - t1,
                epoch_s=metrics.get("epoch_time_s"))

    if start.exploited_from and start.state and not start.replay and start.state["epoch"] >= cfg.epochs:
        # PBT gave it a donor's last epoch (the donor was ahead): nothing is left to train, so that epoch is reported
        # as this trial's, with the exploit, or history.csv would show neither. Saved under this trial's config (what
        # training on would have done first), so that a restart from it is a plain resume, not a mismatch.
        start.state = {**start.state, "config": cfg.to_dict()}
        start.replay = [start.state["history"][-1]]
    try:
        if start.replay:  # epochs Tune had not recorded: reported from the saved state, not trained again
            for metrics in start.replay[:-1]:
                tune.report(metrics)
            report(start.replay[-1], start.state)
        profile("train_start")
        if not start.finished:
            train(cfg, report, checkpoint=start.state, data=data, extra_val=extra_val,
                  progress=_progress_file(fs, folder), mutated=start.exploited_from is not None)
        profile("trial_end")
    except DivergedError as exc:
        dur.write_file(fs, diverged, f"{exc.epoch} {exc.step} {exc.loss}")
        dur.write_file(fs, error_mark, _error_mark(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - classified for the driver (sweep/fail_fast.py), then raised as it is
        dur.write_file(fs, error_mark, _error_mark(exc))
        raise


def _error_mark(exc: BaseException) -> str:
    return json.dumps({"kind": type(exc).__name__, "user": isinstance(exc, UserError), "message": first_line(exc)})


def _progress_file(fs, folder: str, every_s: float = 10.0):
    """The engine's per-step hook: every `every_s` the step reached in this epoch, in the trial's folder, so the
    driver can show progress inside a long epoch (a part-3 epoch on a CPU runs for many minutes)."""
    path = os.path.join(folder, dur.PROGRESS_FILE)

    def wrap(steps, epoch):
        last, total = time.time(), len(steps)
        for step in steps:
            yield step
            if time.time() - last >= every_s:
                last = time.time()
                dur.write_file(fs, path, json.dumps({"epoch": epoch, "step": step + 1, "steps": total, "t": last}))

    return wrap
