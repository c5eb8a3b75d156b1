"""Phase 1 of a sweep: every input checked, with no Ray and no torch (a bad input answers in a tenth of a second):
the space, the results folder (new, or one --resume continues), the warm start, and the data's sizes against every
config the space can produce (sweep/data_check.py)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from trainables.errors import UserError

from .. import results
from ..api import SweepRequest
from ..console import say
from ..deadline import reserve_s
from ..plan import Plan, make_plan
from ..space import load_space
from . import lazy


@dataclass
class Inputs:
    spec: object  # sweep.space.SweepSpec
    folder: str  # results/<name>, absolute
    storage: str  # where Tune keeps trial state (the folder's ray/, or --storage)
    plan: Plan
    restore: bool  # Ray state to restore (--resume of a sweep Tune had begun)
    warm: object  # sweep.warm_start.WarmStart told to the sampler, or None
    warmed: dict | None  # what sweep.json records of the warm start
    data_path: str
    arrays: object  # the data when its sizes could only be had by reading it (not a .npz), else None


def plan_only(req: SweepRequest) -> tuple[str, Plan]:
    spec = load_space(req.space, req.overrides, smoke=req.smoke)
    folder = os.path.abspath(os.path.join(req.results_dir, spec.name))
    return folder, make_plan(spec)


def prepare(req: SweepRequest, state: dict) -> Inputs:
    spec = load_space(req.space, req.overrides, smoke=req.smoke)  # file < smoke: section < flags and --set
    folder = state["folder"] = os.path.abspath(os.path.join(req.results_dir, spec.name))
    storage = req.storage or os.path.join(folder, "ray")
    plan = make_plan(spec)
    say(f"results folder: {folder}")
    epoch_s = measured_epoch_s(folder)
    if req.time_limit_s and epoch_s and epoch_s > req.time_limit_s - reserve_s(req.time_limit_s):
        raise UserError(f"--time-limit {req.time_limit_s:g} s: this sweep's epochs took {epoch_s:.0f} s on average "
                        f"(history.csv), so no epoch could end in time; allowed: more than "
                        f"{epoch_s + reserve_s(req.time_limit_s):.0f} s")
    restore = check_folder(folder, spec, req.resume, storage)
    warm, warmed = warm_start_for(req, spec, folder, restore)
    data_path = os.path.abspath(spec.data.path)
    if not spec.data.download and not os.path.exists(data_path):
        raise UserError(f"data.path {data_path}: no such file or folder; pass --data PATH (a .npz or a torchvision "
                        f"CIFAR-100 folder), or --download to fetch CIFAR-100 there")
    if "data.ood_dir" in req.overrides or os.path.isdir(spec.data.ood_dir or ""):  # fail now, not after the sweep
        from robustness.ood import check_ood_dir

        check_ood_dir(spec.data.ood_dir)
    arrays = check_data(spec, data_path, req)  # a space the data cannot hold: exit 2 before Ray starts
    return Inputs(spec, folder, storage, plan, restore, warm, warmed, data_path, arrays)


def spec_hash(spec) -> str:
    d = spec.to_dict()
    d.pop("source_path", None)
    d.pop("resources", None)  # where trials run, not what they search (a GPU-less laptop falls back to CPU)
    # How many trials and how many at once may change between runs of one sweep; what they search may not.
    d.get("trials", {}).pop("num_samples", None)
    d.get("trials", {}).pop("max_concurrent", None)
    d.get("trials", {}).pop("checkpoint_every", None)  # how often state is saved, not what is searched
    _as_before_the_table(d)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _as_before_the_table(d: dict) -> None:
    """Sweeps started before trial schedulers were a table hashed an `asha:` section of two settings: an ASHA sweep
    with one bracket hashes as it did then, so --resume still recognises it."""
    if d.get("asha", {}).get("brackets") == 1:
        d["asha"].pop("brackets")


def check_folder(folder: str, spec, resume: bool, storage: str) -> bool:
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
        restore = lazy.ray_adapter().experiment_exists(experiment)
        if old.get("spec_hash") != spec_hash(spec):
            if _trained(folder, experiment, restore):
                raise UserError(f"--resume: {folder} holds a sweep with a different search space "
                                f"(from {source}); resume it with the same YAML and flags")
            # Every trial so far errored before its first epoch (a mistake now fixed: the data, a path, a
            # setting): nothing computed would be mixed with the new settings, so the sweep starts again.
            say("--resume: the settings changed, and no trial of this sweep had finished an epoch (each one "
                "errored first): starting it again with the new settings")
            if restore:
                say(f"--resume: the failed trials' records are kept in {lazy.ray_adapter().set_aside(experiment)}")
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


def _trained(folder: str, experiment: str, restore: bool) -> bool:
    """Whether any trial of the sweep in `folder` finished an epoch: in Tune's state, or in the results files."""
    if restore and lazy.ray_adapter().trained_anything(experiment):
        return True
    history = os.path.join(folder, "history.csv")
    rows = results.read_csv(os.path.join(folder, "trials.csv")) if os.path.exists(os.path.join(folder, "trials.csv")) \
        else []
    return (os.path.exists(history) and bool(results.read_csv(history))) or \
        any(r.get("status") in ("completed", "stopped_early") for r in rows)


def check_data(spec, data_path: str, req: SweepRequest):
    """Every config the space can produce, against the data's sizes (sweep/data_check.py). A .npz's sizes come
    from its headers, so Ray still starts while the data is read; any other source is read now (returned)."""
    from .. import data_check

    shape = None if spec.data.download else data_check.probe(data_path)
    arrays = None
    if shape is None:
        from trainables.data import load_arrays

        say(f"reading {data_path}")
        arrays = load_arrays(data_path, download=spec.data.download)
        shape = data_check.DataShape.of(arrays, data_path)
    data_check.check_space(spec, shape, robustness=req.robustness and req.retrain)
    return arrays


def warm_start_for(req: SweepRequest, spec, folder: str, restore: bool):
    """(what to warm the sampler with, what sweep.json records). Checked before data or Ray: a bad folder is exit 2
    at once. A restored sweep's sampler state holds the earlier trials already: not told twice."""
    from .. import warm_start

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


def measured_epoch_s(folder: str) -> float | None:
    """Mean seconds per epoch in this sweep's history so far (a resumed or planned sweep), if any."""
    path = os.path.join(folder, "history.csv")
    if not os.path.exists(path):
        return None
    times = [float(r["epoch_time_s"]) for r in results.read_csv(path) if r.get("epoch_time_s")]
    return sum(times) / len(times) if times else None
