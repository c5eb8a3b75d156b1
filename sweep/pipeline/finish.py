"""Phase 4 of a sweep: its result files and best.json, the retrain (where a GPU is), submission and robustness,
the report. A sweep that produced no model says so (SweepOutcome.no_model) instead of finishing."""
from __future__ import annotations

import dataclasses
import os

from trainables import atomic
from trainables.errors import DivergedError

from .. import results
from ..api import SweepOutcome, SweepRequest
from ..console import fmt, say
from ..ranking import Rule
from . import lazy
from .cluster import Ready
from .inputs import Inputs
from .search import Searched, write_tables


def finish(req: SweepRequest, inputs: Inputs, ready: Ready, searched: Searched) -> SweepOutcome:
    spec, folder, run, adapter = ready.spec, inputs.folder, searched.run, lazy.ray_adapter()
    best = write_results(folder, run, spec, ready.manifest)
    adapter.drop_weights(run.trials, keep={best["trial_id"]} if best else set())
    lazy.report().record_trials(folder)  # optuna-dashboard works from here on, even if the retrain is stopped
    say(f"sweep finished in {searched.wall_s:.0f}s: {len(run.trials)} trials")
    done = SweepOutcome(folder, True, True, best=best, trials=len(run.ended), planned=spec.trials.num_samples)
    if best is None:  # the report says what each trial did; the CLI exits 3 (a job chain stops, `&&` does too)
        lazy.report().write_report(folder)
        return dataclasses.replace(done, finished=False, no_model=results.no_model_line(run, spec, folder))
    if req.retrain and spec.retrain.enabled:
        from ..final import finalize

        if not torch_has_gpu() and ready.cluster["gpu"] >= 1:
            say(f"retrain and OOD prediction run on a GPU node; progress: {os.path.join(folder, 'logs', 'final.log')}")
        try:
            adapter.call_where_gpu(finalize, folder, spec, ready.arrays, ready.track, robustness=req.robustness,
                                   deadline=searched.deadline)
        except DivergedError as exc:
            lazy.report().write_report(folder)
            return dataclasses.replace(done, finished=False, no_model=(
                f"the retrain of trial {best['trial_id']}'s config diverged ({exc}): no final model, no submission; "
                f"the sweep's results and report are in {folder}"))
    lazy.report().write_report(folder)
    say(f"report: {os.path.join(folder, 'report.md')}")
    say(f"results folder: {folder}")
    return done


def torch_has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def write_results(folder: str, run_, spec, manifest: dict) -> dict | None:
    write_tables(folder, run_, spec)
    best = results.best_trial(run_, spec)
    if best is None:
        return None
    cfg = spec.trial_config(best.config).to_dict()
    value, rule = results.rank_value(best, spec), Rule.of(spec)
    best_json = {
        "trial_id": best.trial_id, "status": str(best.status), "metric": rule.metric, "mode": rule.mode,
        "value": value, "rule": rule.text(),
        "metrics": {k: v for k, v in best.metrics.items() if isinstance(v, (int, float, str))},
        "config": cfg, "seed": cfg["seed"], "commit": manifest["commit"], "data": manifest["data"],
        "checkpoint": best.checkpoint, "sweep_command": manifest["command"],
        "retrain_command": f"python -m trainables --config {os.path.join(folder, 'best.json')} "
                           f"--data {manifest['data']['path']} --out {os.path.join(folder, 'alone')}",
    }
    atomic.write_json(os.path.join(folder, "best.json"), best_json)
    say(f"best trial {best.trial_id}: {rule.metric} {fmt(rule.metric, value)} ({rule.text()})")
    return best_json
