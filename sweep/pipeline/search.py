"""Phase 3 of a sweep: the trials, under Tune, with the console, wandb, the time limit and fail-fast listening.
A stop (Ctrl-C, the time limit, a scheduler's signal, the same user mistake in the first trials) ends the run here,
every finished epoch kept; otherwise the phase hands the trials on."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from trainables.errors import UserError

from .. import results, tracking
from ..api import SweepOutcome, SweepRequest
from ..console import Console, say
from ..deadline import Deadline
from ..eta import Eta, slots
from ..fail_fast import FailFast
from ..outcome import Listeners, StopReason
from . import lazy, segments
from .cluster import Ready
from .inputs import Inputs


@dataclass
class Searched:
    run: object  # sweep.outcome.SweepRun
    deadline: Deadline | None  # the same limit holds for the retrain
    wall_s: float


def search(req: SweepRequest, inputs: Inputs, ready: Ready, t_start: float) -> Searched | SweepOutcome:
    """The trials; a SweepOutcome when the run stopped before every trial ended."""
    spec, folder, adapter = ready.spec, inputs.folder, lazy.ray_adapter()
    deadline = Deadline(req.time_limit_s, adapter.request_stop, t0=t_start) if req.time_limit_s else None
    fail_fast = FailFast.for_spec(spec, adapter.request_stop)
    done = ended_before(folder) if inputs.restore else 0
    eta = Eta.for_spec(spec, inputs.plan, slots(spec, ready.cluster), len(ready.arrays.y_train), done)
    console = Console(spec.metric, spec.mode, inputs.plan, list(spec.param_names), req.status_every_s, done=done,
                      job_s=req.job_s, stopper=spec.trial_scheduler.type, eta=eta)
    live = lazy.report().journal.LiveJournal(folder, spec)  # first: a trial the console says ended is in the journal
    listeners = Listeners([live, console, tracking.trial_listener(ready.track), fail_fast]
                          + ([deadline] if deadline else []))
    t0 = time.time()
    run = segments.run(spec, inputs, ready, listeners)
    listeners.close(interrupted=run.stop_reason is not None)
    if run.stop_reason is StopReason.USER_ERROR:  # what finished is kept, readable, and --resume continues
        write_tables(folder, run, spec)
        lazy.report().write_report(folder)
        raise UserError(fail_fast.line(req.command if req.resume else f"{req.command} --resume"))
    ended = run.ended
    if run.stop_reason is not None or len(ended) < spec.trials.num_samples:
        reason = run.stop_reason or StopReason.CTRL_C
        say(f"{'interrupted' if reason is StopReason.CTRL_C else f'stopped ({reason})'} with {len(ended)} of "
            f"{spec.trials.num_samples} trials finished; {len(run.interrupted)} in flight keep their last "
            f"finished epoch")
        if reason is not StopReason.CTRL_C:
            # An unattended job's stop: leave what exists readable (interrupted trials marked so), never a best.json.
            write_tables(folder, run, spec)
            lazy.report().write_report(folder)
        return SweepOutcome(folder, True, False, reason, trials=len(ended), planned=spec.trials.num_samples)
    return Searched(run, deadline, time.time() - t0)


def ended_before(folder: str) -> int:
    """Trials a resumed sweep had already finished (from its last trials.csv, when one was written)."""
    path = os.path.join(folder, "trials.csv")
    if not os.path.exists(path):
        return 0
    return sum(r.get("status") in ("completed", "stopped_early", "errored") for r in results.read_csv(path))


def write_tables(folder: str, run_, spec) -> None:
    rows = results.trial_rows(run_, spec)
    results.write_trials_csv(os.path.join(folder, "trials.csv"), rows)
    results.write_history_csv(os.path.join(folder, "history.csv"), run_)
