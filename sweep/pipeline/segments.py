"""More trials on a finished or stopped sweep (`--resume --num-samples N`, N more than before).

Ray Tune restores an experiment with the trial count it began with (Ray issues 18847, 42221), so a sweep is one or
more parts, each its own Tune experiment, listed in sweep.json (`segments`): the first named as the sweep, each
added one `<name>-more<k>`. A part that ended is read back as it is; one that stopped is resumed; a new one starts
with every trial of the parts before it told to its sampler, so the sampler keeps what it learned. The trials of
all parts are one sweep from there on: one ranking, one best.json, one report.
"""
from __future__ import annotations

import dataclasses
import os

from trainables.errors import UserError

from ..console import say
from ..outcome import SweepRun
from . import lazy


def plan(spec, before: dict | None, asked: bool) -> list[dict]:
    """The sweep's parts: [{name, num_samples}]; `before`: the sweep.json --resume continues; `asked`: whether the
    trial count was given (a flag or --set), else it is the sweep's own."""
    if before is None:
        return [{"name": spec.name, "num_samples": spec.trials.num_samples}]
    parts = [dict(p) for p in before.get("segments") or
             [{"name": spec.name, "num_samples": before["spec"]["trials"]["num_samples"]}]]
    had = total(parts)
    want = spec.trials.num_samples if asked else had
    if want < had:
        raise UserError(f"--num-samples {want}: this sweep has {had} trials already (sweep.json); allowed: {had} "
                        f"to continue it as it is, or more to add trials")
    if want > had:
        parts.append({"name": f"{spec.name}-more{len(parts)}", "num_samples": want - had})
        say(f"--resume: {want - had} more trials ({want} in all); the sampler is told every trial of the "
            f"{had} before")
    return parts


def total(parts: list[dict]) -> int:
    return sum(p["num_samples"] for p in parts)


def run(spec, inputs, ready, listeners) -> SweepRun:
    """Every part in order: read back, resumed, or run; stops at the first part that stops."""
    from .. import warm_start

    adapter, runs = lazy.ray_adapter(), []
    for part in inputs.segments:
        piece = dataclasses.replace(spec, name=part["name"], trials=dataclasses.replace(
            spec.trials, num_samples=part["num_samples"]))
        exists = adapter.experiment_exists(os.path.join(inputs.storage, part["name"]))
        if exists:
            done = adapter.load_run(piece, inputs.storage)
            if len(done.ended) == part["num_samples"]:  # this part ended: its trials as they are
                runs.append(done)
                continue
        warm = inputs.warm if not runs else warm_start.from_runs(runs, spec)
        runs.append(adapter.run_sweep(piece, storage_path=inputs.storage, data=ready.arrays, extra_val=ready.extra_val,
                                      resume=exists, listener=listeners, warm=warm))
        if runs[-1].stop_reason is not None:
            break
    return SweepRun([t for r in runs for t in r.trials], runs[-1].experiment_path, runs[-1].stop_reason)
